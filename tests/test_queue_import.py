"""Cross-model training data: another model's queue copied in, whole or chosen items,
re-tokenized where the tokenizers differ; lineage on both; the source unchanged byte for byte."""

import re

import numpy as np
import pytest
from data_files import folder_bytes as snapshot

from cllm_app.errors import InvalidInput, NotFound
from cllm_app.services import queue as queue_module

SMALL = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}


class PairTokenizer:
    """A tokenizer unlike the byte one: two bytes per token (an odd tail byte alone)."""

    kind = "pairs"
    vocab_size = 65536 + 257
    eot = 65535
    fingerprint = "pairs-v1"

    def encode(self, text: str) -> np.ndarray:
        data = text.encode("utf-8")
        pairs = [data[i] * 256 + data[i + 1] if i + 1 < len(data) else data[i] for i in range(0, len(data), 2)]
        return np.array(pairs, dtype=np.uint16)

    def encode_batch(self, texts):
        return [self.encode(t) for t in texts]


@pytest.fixture
def models(studio):
    studio.models.create("source", **SMALL)
    studio.models.create("target", **SMALL)
    for i, text in enumerate(["first text of the source", "second text", "third one, longer than the rest"]):
        studio.queue.add_text("source", text, origin=f"s{i}.txt", source_kind="file" if i else "crawl",
                              title=f"T{i}")
    return studio


def test_whole_queue_is_copied_with_lineage_and_the_source_is_unchanged(models, home):
    studio = models
    studio.queue.add_text("target", "second text", origin="mine.txt", source_kind="file")  # already there
    before = snapshot(home / "models" / "source")
    listing_before = studio.queue.list("source")
    report = studio.queue.import_entries("target", "source")
    assert report["added"] == 2 and report["duplicates"] == 1 and report["files_total"] == 3
    items = studio.queue.list("target")["items"]
    copied = [e for e in items if e["imported_from"] == "source"]
    assert sorted(e["origin"] for e in copied) == ["s0.txt", "s2.txt"]
    assert {e["origin"]: e["source_kind"] for e in copied} == {"s0.txt": "crawl", "s2.txt": "file"}
    assert {e["origin"]: e["title"] for e in copied} == {"s0.txt": "T0", "s2.txt": "T2"}
    assert studio.queue.preview("target", copied[0]["id"])["text"] == "first text of the source"
    assert snapshot(home / "models" / "source") == before
    assert studio.queue.list("source") == listing_before
    target_events = studio.models.show("target")["lineage"]["events"]
    source_events = studio.models.show("source")["lineage"]["events"]
    imported = [e for e in target_events if e["kind"] == "data_imported"][0]
    assert imported["detail"]["source_name"] == "source" and imported["detail"]["added"] == 2
    copied_to = [e for e in source_events if e["kind"] == "data_copied_to"][0]
    assert copied_to["detail"]["target_name"] == "target"
    studio.models.rename("source", "origin model")  # events keep ids, so the new name shows
    imported = [e for e in studio.models.show("target")["lineage"]["events"] if e["kind"] == "data_imported"][0]
    assert imported["detail"]["source_name"] == "origin model"
    assert studio.queue.stats("target")["imported_from"] == [{"model_name": "origin model", "items": 2,
                                                             "tokens": copied[0]["token_count"] + copied[1]["token_count"]}]
    again = studio.queue.import_entries("target", "origin model")
    assert again["added"] == 0 and again["duplicates"] == 3


def test_chosen_entries_only(models):
    studio = models
    ids = [e["id"] for e in studio.queue.list("source")["items"]]
    report = studio.queue.import_entries("target", "source", [ids[2]])
    assert report["added"] == 1 and [e["origin"] for e in studio.queue.list("target")["items"]] == ["s2.txt"]
    with pytest.raises(NotFound):
        studio.queue.import_entries("target", "source", [ids[0], 99999])
    with pytest.raises(InvalidInput):
        studio.queue.import_entries("target", "source", "all")


def test_self_import_and_empty_source_are_refused(models):
    studio = models
    with pytest.raises(InvalidInput) as e:
        studio.queue.import_entries("source", "SOURCE")  # names ignore case: the same model
    assert e.value.code == "self_import"
    with pytest.raises(InvalidInput) as e:
        studio.ingest.start_import("target", "")
    assert e.value.code == "invalid_source"
    studio.models.create("blank", **SMALL)
    with pytest.raises(InvalidInput) as e:
        studio.queue.import_entries("target", "blank")
    assert e.value.code == "empty_queue"
    with pytest.raises(NotFound):
        studio.queue.import_entries("target", "nobody")


def test_differing_tokenizers_re_tokenize_for_the_target(models, monkeypatch, home):
    studio = models
    real = queue_module.load_tokenizer

    def by_model(folder, kind):
        return PairTokenizer() if folder.name == "target" else real(folder, kind)

    monkeypatch.setattr(queue_module, "load_tokenizer", by_model)
    before = snapshot(home / "models" / "source")
    report = studio.queue.import_entries("target", "source")
    assert report["added"] == 3
    tok = PairTokenizer()
    for e in studio.queue.list("target")["items"]:
        text = studio.queue.preview("target", e["id"])["text"]
        assert e["token_fingerprint"] == "pairs-v1" and e["token_count"] == len(tok.encode(text))
        cache = home / "models" / "target" / "queue" / "tokens" / "pairs-v1" / (e["content_hash"][:24] + ".u16")
        assert np.array_equal(np.fromfile(cache, dtype=np.uint16), tok.encode(text))
    docs = studio.queue.documents(studio.models.get("target"))
    assert [d[2].dtype for d in docs] == [np.uint16] * 3
    assert snapshot(home / "models" / "source") == before
    # The source, with its own (byte) tokenizer, still trains on its bytes.
    assert [d[2].dtype for d in studio.queue.documents(studio.models.get("source"))] == [np.uint8] * 3


class SegmentPairs(PairTokenizer):
    """Pairs that never cross a newline followed by a non-space, as BPE's pre-tokenizer never does."""

    fingerprint = "segment-pairs-v1"

    def encode(self, text: str) -> np.ndarray:
        segments = [s for s in re.split(r"(?<=\n)(?=\S)", text) if s]
        return np.concatenate([PairTokenizer.encode(self, s) for s in segments]) if segments else np.zeros(0, np.uint16)


def test_long_texts_tokenize_the_same_in_chunks(studio, monkeypatch):
    """Ingest cuts text only where such tokenizers never merge, so a text tokenized chunk by
    chunk gives exactly the tokens of the whole text."""
    from cllm_app.data import limits, textstore

    monkeypatch.setattr(limits, "CHUNK", 1000)
    monkeypatch.setattr(textstore, "PIECE_CHARS", 300)
    studio.models.create("pairs", **SMALL)
    tok = SegmentPairs()
    monkeypatch.setattr(queue_module, "load_tokenizer", lambda folder, kind: tok)
    lines = [("word " * (i % 17)) + f"line {i}" for i in range(400)]
    text = "\n".join(lines) + "\n  indented\n\nend " + "x" * 2500  # and one line longer than a piece
    chunks = [text[i : i + 777] for i in range(0, len(text), 777)]
    writer = textstore.EntryWriter(studio.root.model_dir("pairs") / "queue", tok)
    for c in chunks:
        writer.write(c)
    written = writer.finish()
    _, cache = writer.commit(written)
    writer.discard()
    assert np.array_equal(np.fromfile(cache, dtype=np.uint16), tok.encode(text))
    assert written.token_count == tok.encode(text).size
