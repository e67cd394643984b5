"""Evaluate: the numbers against an independent numpy computation, the bits-per-byte
definition, the trainer's validation split, cross-model evaluation and the job path."""

import math
import time

import numpy as np
import pytest
from research_support import EOT, SHAPE, make_model, numpy_nats, weights_of

from cllm_app.engine import heldout
from cllm_app.engine.trainer import split_documents
from cllm_app.errors import InvalidInput, NotFound
from cllm_app.jobs.evaluate import run_evaluation
from cllm_app.jobs.runner import JobRunner
from cllm_app.jobs.train import run_training
from cllm_app.services.research import evaluate as ev
from cllm_app.store import LossPoint


def test_pasted_text_matches_numpy_and_bpb_counts_utf8_bytes(studio):
    make_model(studio, "m")
    text = "Grüße aus Köln — a text of several windows, with multibyte letters: ñ, ü, 日本. " * 2
    result, is_job = studio.research.evaluate("m", {"source": "text", "text": text})
    assert not is_job
    tokens = np.frombuffer(text.encode(), np.uint8)
    nats, count = numpy_nats(weights_of(studio, "m"), 2, 2, 16, [tokens])
    assert result["tokens"] == count == len(text.encode("utf-8"))
    assert result["bytes"] == len(text.encode("utf-8"))
    assert result["windows"] == math.ceil(count / SHAPE["block_size"])
    assert result["total_nats"] == pytest.approx(nats, rel=1e-5)
    assert result["loss"] == pytest.approx(nats / count, rel=1e-5)
    assert result["perplexity"] == pytest.approx(math.exp(nats / count), rel=1e-5)
    assert result["bits_per_byte"] == pytest.approx(nats / math.log(2) / len(text.encode()), rel=1e-5)
    assert result["truncated"] is False


def test_max_tokens_caps_and_says_so(studio):
    make_model(studio, "m")
    text = "abcdefghij" * 10
    result, _ = studio.research.evaluate("m", {"source": "text", "text": text, "max_tokens": 37})
    nats, count = numpy_nats(weights_of(studio, "m"), 2, 2, 16, [np.frombuffer(text.encode()[:37], np.uint8)])
    assert result["tokens"] == count == 37 and result["tokens_available"] == 100
    assert result["truncated"] is True
    assert result["total_nats"] == pytest.approx(nats, rel=1e-5)


def test_own_validation_split_is_the_trainers(studio):
    make_model(studio, "m", docs=6)
    row = studio.models.get("m")
    _, val = split_documents(studio.training.documents(row), row.validation_split, row.validation_share)
    result, _ = studio.research.evaluate("m", {"source": "validation"})
    assert result["documents"] == len(val) == 6  # six documents: the tail of each
    stream = heldout.stream([d.tokens for d in val], EOT)  # the trainer's layout: one stream, pieces after eot
    assert result["tokens"] == result["tokens_available"] == stream.size - 1 and result["whole_split"]
    nats, _ = numpy_nats(weights_of(studio, "m"), 2, 2, 16, [stream[1:]])
    assert result["total_nats"] == pytest.approx(nats, rel=1e-5)


def test_the_trainers_validation_loss_is_evaluates_for_the_same_checkpoint(studio):
    # The issue: Compare said 2.388 (the trainer's first 8 batches), Evaluate 3.078 (the whole split).
    make_model(studio, "m", docs=8, seed=3)
    job = studio.training.start("m", {"batch_size": 2, "sequence_length": 16, "eval_interval": 3,
                                      "checkpoint_interval": 3, "target_epochs": 5}, foreground=True)
    assert run_training(studio, job["id"], max_steps=3) == "stopped"  # weights saved at step 3
    point = LossPoint.get((LossPoint.model == studio.models.get("m").id) & (LossPoint.step == 3))
    result, _ = studio.research.evaluate("m", {"source": "validation"})
    assert point.val_loss is not None and result["loss"] == pytest.approx(point.val_loss, abs=1e-9)
    validation = studio.jobs.get(job["id"])["detail"]["validation"]
    assert validation["tokens"] == result["tokens"] and validation["whole"] is True


def test_cross_model_evaluation_on_another_models_queue(studio):
    make_model(studio, "a", docs=5, seed=1)
    studio.models.create("b", **SHAPE, seed=99)  # other weights, empty queue
    docs = studio.training.documents(studio.models.get("a"))
    everything, _ = studio.research.evaluate("b", {"source": "queue", "from_model": "a", "split": "all"})
    assert everything["source"]["from_model"] == "a"
    assert everything["tokens"] == sum(d.tokens.size for d in docs)
    nats, _ = numpy_nats(weights_of(studio, "b"), 2, 2, 16, [d.tokens for d in docs])
    assert everything["total_nats"] == pytest.approx(nats, rel=1e-5)
    own_a, _ = studio.research.evaluate("a", {"source": "queue", "split": "all"})
    assert own_a["total_nats"] != pytest.approx(everything["total_nats"], rel=1e-6)
    val_only, _ = studio.research.evaluate("b", {"source": "queue", "from_model": "a", "split": "validation"})
    _, val = split_documents(docs, "auto", 0.1)
    assert val_only["tokens"] == sum(d.tokens.size for d in val)


def test_refusals_are_clear(studio):
    make_model(studio, "m", docs=1)
    make_model(studio, "unmarked", docs=2)
    studio.models.configure("unmarked", validation_split="marked")  # and no item is marked
    studio.models.create("empty", **SHAPE)
    cases = [
        ("unmarked", {"source": "validation"}, "no_validation_split"),
        ("empty", {"source": "validation"}, "empty_queue"),
        ("m", {"source": "text", "text": "   "}, "empty_text"),
        ("m", {"source": "text", "text": "a\x00b"}, "binary_text"),
        ("m", {"source": "nope"}, "invalid_source"),
        ("m", {"source": "queue", "split": "half"}, "invalid_split"),
        ("m", {"source": "text", "text": "x", "max_tokens": 0}, "invalid_max_tokens"),
        ("m", {"source": "text", "text": "x", "run": "later"}, "invalid_run"),
    ]
    for name, body, code in cases:
        with pytest.raises(InvalidInput) as e:
            studio.research.evaluate(name, body)
        assert e.value.code == code, (body, e.value.message)
    with pytest.raises(NotFound):
        studio.research.evaluate("m", {"source": "queue", "from_model": "ghost"})


def test_upload_reading_refuses_binary_broken_and_empty():
    import io

    assert ev.read_upload(io.BytesIO(b"\xef\xbb\xbfhello"), "a.txt") == "hello"
    for data, code in [(b"\x00\x01", "binary_file"), (b"ok \xff\xfe", "not_utf8"), (b"  \n", "empty_file")]:
        with pytest.raises(InvalidInput) as e:
            ev.read_upload(io.BytesIO(data), "f.bin")
        assert e.value.code == code


def _wait(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_large_text_runs_as_a_job_in_its_own_process(studio):
    make_model(studio, "m")
    text = "The quick brown fox jumps over the lazy dog. " * 40
    now, _ = studio.research.evaluate("m", {"source": "text", "text": text})
    job, is_job = studio.research.evaluate("m", {"source": "text", "text": text, "run": "job"})
    assert is_job and job["kind"] == "evaluate" and job["state"] == "queued"
    pending = list((studio.root.path / ev.PENDING_DIR).iterdir())
    assert len(pending) == 1  # the text waits on disk, not in the job's params
    assert "text" not in job["params"]
    runner = JobRunner(studio).start()
    try:
        final = _wait(lambda: (j := studio.jobs.get(job["id"]))["state"] in ("done", "failed") and j)
    finally:
        runner.shutdown()
    assert final["state"] == "done", final["error"]
    assert final["progress"] == 1.0
    assert final["detail"]["tokens"] == now["tokens"]
    assert final["detail"]["total_nats"] == pytest.approx(now["total_nats"], rel=1e-6)
    assert not list((studio.root.path / ev.PENDING_DIR).iterdir())  # cleaned up


def test_a_job_whose_source_model_is_gone_fails_plainly(studio):
    make_model(studio, "a", docs=3)
    studio.models.create("b", **SHAPE)
    job, _ = studio.research.evaluate("b", {"source": "queue", "from_model": "a", "run": "job"})
    studio.models.delete("a", confirm=True)
    assert run_evaluation(studio, job["id"]) == "failed"
    assert "gone" in studio.jobs.get(job["id"])["error"]


def test_bits_per_byte_counts_a_character_split_between_windows_once():
    # A byte-level BPE may split a character over two tokens; a window ending between them must
    # count that character's bytes, not a replacement character.
    from cllm_app.engine.bpe import BPETokenizer, train_bpe
    from cllm_app.services.research.sources import text_bytes

    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=rng.integers(2, 9))) for _ in range(30_000)]
    for k, i in enumerate(range(0, len(words), 97)):  # rare characters stay as their bytes' tokens
        words[i] = chr(0x1F300 + k) + words[i]
    text = " ".join(words)
    tok = BPETokenizer.from_hf(train_bpe([text], 512))
    ids = tok.encode(text)
    total = sum(text_bytes(tok, ids[i : i + 7]) for i in range(0, ids.size, 7))
    assert total == text_bytes(tok, ids) == len(text.encode("utf-8"))
