"""The model card written beside an export: the Hub's YAML header, the facts the store holds
(shape, tokenizer, data by source, training, losses, bits per byte, lineage), how to run the
files, and user strings that cannot break the header or the markdown."""

import io
import math
import re

import pytest
import yaml
from bpe_support import corpus_files

from cllm_app.jobs.evaluate import run_evaluation
from cllm_app.jobs.train import run_training
from cllm_app.services.model_card import CardFacts, card_facts, model_card, render_card
from cllm_app.store import LossPoint

SHAPE = {"n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 16}
SETTINGS = {"batch_size": 4, "sequence_length": 16, "target_epochs": 1, "eval_interval": 2,
            "checkpoint_interval": 5, "warmup_steps": 1}


def _header(card: str) -> dict:
    lines = card.split("\n")
    assert lines[0] == "---"
    end = lines.index("---", 1)
    return yaml.safe_load("\n".join(lines[1:end]))


def _body(card: str) -> str:
    lines = card.split("\n")
    return "\n".join(lines[lines.index("---", 1) + 1:])


def _outside_fences(card: str) -> str:
    """The card without its fenced code blocks (a fence closes with one at least as long)."""
    kept, fence = [], None
    for line in card.split("\n"):
        run = re.match(r"`{3,}", line)
        if fence is None and run:
            fence = run.group()
        elif fence is not None and run and line.strip() == "`" * len(line.strip()) and len(line.strip()) >= len(fence):
            fence = None
        elif fence is None:
            kept.append(line)
    return "\n".join(kept)


def _train(studio, name: str, **settings) -> None:
    job = studio.training.start(name, {**SETTINGS, **settings}, foreground=True)
    assert run_training(studio, job["id"]) == "done"


@pytest.fixture
def trained(studio):
    """'m': eight files, four crawled pages on two sites, a pasted text and an item copied from
    'donor', trained one epoch."""
    studio.models.create("donor", **SHAPE)
    studio.queue.add_text("donor", "the donor's words about rivers " * 16, origin="/home/alice/donor.txt",
                          source_kind="file")
    studio.models.create("m", **SHAPE)
    for i in range(8):
        studio.queue.add_stream("m", io.BytesIO((f"file {i} of light and gardens " * 24).encode()),
                                f"/home/alice/private/notes_{i}.txt")
    for i in range(3):
        studio.queue.add_text("m", f"page {i} about winter roads " * 20, origin=f"https://example.com/p/{i}",
                              source_kind="crawl", title=f"Page {i}")
    studio.queue.add_text("m", "a page on another site " * 20, origin="https://Blog.Example.org/post",
                          source_kind="crawl")
    studio.queue.add_text("m", "some pasted words to learn " * 20, origin="pasted", source_kind="text")
    studio.queue.import_entries("m", "donor")
    _train(studio, "m")
    return studio


def test_the_header_parses_and_leaves_the_license_to_the_person(studio):
    studio.models.create("m", **SHAPE)
    row = studio.models.get("m")
    hf, gguf = model_card(studio.models, row, "hf"), model_card(studio.models, row, "gguf", "m.gguf")
    assert _header(hf) == {"library_name": "transformers", "pipeline_tag": "text-generation",
                           "tags": ["cllm-studio", "gpt2", "text-generation"]}
    assert _header(gguf) == {"library_name": "gguf", "pipeline_tag": "text-generation",
                             "tags": ["cllm-studio", "gpt2", "text-generation", "gguf"]}
    for card in (hf, gguf):
        header = card.split("\n---\n", 1)[0]
        assert "\n# license:" in header  # a comment: the Hub reads no license until the person sets one
        assert "None chosen yet" in _body(card)


def test_a_trained_model_card_names_what_made_it(trained):
    studio = trained
    row = studio.models.get("m")
    studio.queue.add_text("m", "added after training " * 20, origin="late.txt", source_kind="file")
    card = model_card(studio.models, row, "hf", "m-export")
    body = _body(card)
    assert "# m\n" in body
    for line in ("| Layers (n_layer) | 2 |", "| Attention heads (n_head) | 2 |", "| Width (n_embd) | 16 |",
                 "| Context (block_size) | 16 tokens |", "| Vocabulary (vocab_size) | 257 |",
                 f"| Parameters | {studio.models.config_of(row).n_params:,} |"):
        assert line in body
    assert "Tokenizer: bytes" in body
    # data: files by name (capped, no folders), sites with page counts, pasted text, the model copied from
    assert "- Files: 9 (“notes\\_0.txt”, “notes\\_1.txt”, “notes\\_2.txt”, “notes\\_3.txt”, “notes\\_4.txt” and 4 more)" in body
    assert "/home/alice" not in card
    assert "- Crawled web pages: 4 from 2 sites: example.com (3 pages); blog.example.org (1 page)" in body
    assert "- Pasted text: 1 item" in body
    assert "- Copied from the model “donor”: 1 item" in body
    assert "1 item was added after its last training step and not trained on yet." in body
    # training, final losses (at the exported weights' step) and bits per byte
    row = studio.models.get("m")
    assert f"Trained for {row.steps_trained:,} steps (1 complete epoch of a target of 1), {row.tokens_trained:,} tokens seen." in body
    points = list(row.loss_history.order_by(LossPoint.step))
    train = points[-1]
    val = [p for p in points if p.val_loss is not None][-1]
    facts = card_facts(studio.models, row)
    ratio = facts.data_tokens / facts.data_bytes
    assert facts.data_tokens == facts.data_bytes  # the byte tokenizer: one token a byte
    assert facts.train.bits_per_byte == pytest.approx(train.train_loss / math.log(2) * ratio)
    assert (f"- Train loss at step {train.step:,}: {train.train_loss:.4f} nats per token, "
            f"about {train.train_loss / math.log(2) * ratio:.4f} bits per byte") in body
    assert (f"- Validation loss at step {val.step:,}: {val.val_loss:.4f} nats per token, "
            f"about {val.val_loss / math.log(2) * ratio:.4f} bits per byte") in body
    assert "Bits per byte here are estimates" in body and f"{facts.data_tokens:,} tokens over" in body
    # lineage and use
    assert "- Created from scratch in CLLM Studio" in body and "- Took training data from “donor”." in body
    assert "path = 'm-export'" in body and "AutoModelForCausalLM.from_pretrained(path)" in body
    assert "AutoTokenizer.from_pretrained(path)" in body and "model.generate(" in body
    assert "max_new_tokens=13" in body  # "The" and the reply fit the 16-token context


def test_the_gguf_card_says_how_to_run_the_file(trained):
    studio = trained
    row = studio.models.get("m")
    card = model_card(studio.models, row, "gguf", "m f16.gguf")
    assert "llama-cli -m 'm f16.gguf' -c 16 -n 13 -p The" in card
    assert "FROM ./m f16.gguf" in card and "ollama create m -f Modelfile\nollama run m" in card
    assert "lms import 'm f16.gguf'" in card and "Validation loss at step" in card
    with_modelfile = model_card(studio.models, row, "gguf", "m.gguf", modelfile="Modelfile")
    assert "ollama create m -f Modelfile" in with_modelfile and "FROM ./" not in with_modelfile
    assert "from_pretrained" not in card


def test_an_untrained_model_says_so(studio):
    studio.models.create("fresh", **SHAPE)
    card = model_card(studio.models, studio.models.get("fresh"), "hf")
    assert "**This model has not been trained.** Its weights are random" in card and "**Not trained.**" in card
    assert "No loss was measured." in card and "Train loss" not in card and "bits per byte" not in card
    assert "Its training-data queue is empty." in card
    assert 'path = "path/to/this/folder"' in card


def test_a_bpe_tokenizer_says_what_it_learned_from(studio, tmp_path):
    texts = corpus_files(tmp_path)
    studio.models.create("b", tokenizer="bpe", vocab_size=512, tokenizer_data=[str(p) for p in texts], **SHAPE)
    card = model_card(studio.models, studio.models.get("b"), "hf")
    assert f"Tokenizer: byte-level BPE with 512 tokens, trained in CLLM Studio on {len(texts)} files." in card
    assert "| Vocabulary (vocab_size) | 512 |" in card


def test_no_validation_loss_is_said_and_losses_past_the_saved_weights_are_not_used(studio):
    studio.models.create("m", **SHAPE)
    studio.queue.add_text("m", "one document only " * 30, origin="a.txt", source_kind="file")
    row = studio.models.get("m")
    row.steps_trained, row.tokens_trained, row.epochs_trained = 3, 192, 0
    row.save()
    for step, loss in [(1, 5.0), (2, 4.0), (3, 3.5), (4, 3.0)]:  # step 4 ran after the last checkpoint
        LossPoint.create(model=row, step=step, epoch=step / 8, train_loss=loss)
    card = model_card(studio.models, row, "hf")
    assert "- Train loss at step 3: 3.5000 nats per token, about 5.0494 bits per byte" in card
    assert "- No validation loss was measured." in card
    assert "(0 complete epochs of a target of 1), 192 tokens seen" in card


def test_a_measured_bits_per_byte_is_used_until_the_weights_change(trained):
    studio = trained
    job, is_job = studio.research.evaluate("m", {"source": "validation", "run": "job"})
    assert is_job and run_evaluation(studio, job["id"]) == "done"
    result = studio.jobs.get(job["id"])["detail"]
    card = model_card(studio.models, studio.models.get("m"), "hf")
    assert (f"- Measured with Research > Evaluate on the validation split over {result['tokens']:,} tokens: "
            f"{result['bits_per_byte']:.4f} bits per byte.") in card
    studio.models.configure("m", n_layer=3)
    assert "Measured with" not in model_card(studio.models, studio.models.get("m"), "hf")


def test_lineage_copies_grown_layers_and_a_hugging_face_import(studio, tmp_path):
    studio.models.create("root", **SHAPE)
    studio.models.configure("root", n_layer=3)
    studio.models.duplicate("root", "child")
    studio.models.duplicate("child", "grandchild")
    studio.models.configure("child", n_layer=4)  # after grandchild was copied: not grandchild's
    studio.models.delete("root", confirm=True)
    grandchild = _body(model_card(studio.models, studio.models.get("grandchild"), "hf"))
    assert "- A copy of “child”, a copy of “root” (since deleted), with its weights" in grandchild
    assert "- Layers added to “root” before it was copied, before training: 2 to 3" in grandchild
    assert "3 to 4" not in grandchild and "Created from scratch" not in grandchild
    child = _body(model_card(studio.models, studio.models.get("child"), "hf"))
    assert "- Layers added, before training: 3 to 4" in child
    assert "- Layers added to “root” before it was copied, before training: 2 to 3" in child

    folder = tmp_path / "private" / "hf-child"
    folder.parent.mkdir()
    studio.exports.export("child", "hf", str(folder))
    assert _header((folder / "README.md").read_text(encoding="utf-8"))["library_name"] == "transformers"
    studio.models.import_hf(folder, "back")
    back = model_card(studio.models, studio.models.get("back"), "gguf", "back.gguf")
    assert "- Imported from a Hugging Face GPT-2 folder named “hf-child”." in back
    assert "**Not trained in CLLM Studio.** Its weights are those of the Hugging Face folder" in back
    assert "random" not in back and str(tmp_path) not in back
    studio.models.duplicate("back", "back copy")
    copy = model_card(studio.models, studio.models.get("back copy"), "hf")
    assert "- “back” was imported from a Hugging Face GPT-2 folder named “hf-child”." in copy
    assert "random" not in copy and "Created from scratch" not in copy


def test_hostile_strings_break_neither_the_header_nor_the_markdown(studio):
    name = "--- __init__ -"
    studio.models.create(name, **SHAPE)
    studio.queue.add_text(name, "text one " * 20, origin="/tmp/a: b\n---\n<script>x<!-- [l](javascript:1) `q`.txt",
                          source_kind="file")
    studio.queue.add_text(name, "text two " * 20, origin="https://evil.example/x?a=<b>|c", source_kind="crawl")
    row = studio.models.get(name)
    gguf_name = "x ``` y\n---\nlicense: mit.gguf"
    for card in (model_card(studio.models, row, "hf", "a: b\n---"), model_card(studio.models, row, "gguf", gguf_name)):
        header = _header(card)
        assert "license" not in header and header["pipeline_tag"] == "text-generation"
        assert _outside_fences(card).count("\n---\n") == 1  # the header's end; no user string makes another rule
        body = _body(card)
        assert body.split("\n")[1] == "# --- \\_\\_init\\_\\_ -"
        assert "<script>" not in body and "[l](javascript" not in body
        assert "a: b --- \\<script\\>x\\<\\!-- \\[l\\]\\(javascript:1\\) \\`q\\`.txt" in body
    gguf = model_card(studio.models, row, "gguf", gguf_name)
    assert "\n````sh\nllama-cli -m 'x ``` y\n---\nlicense: mit.gguf'" in gguf  # a fence longer than its backticks
    assert "ollama create __init__ -f Modelfile" in gguf  # Ollama's names: lower case, digits and - _ .


def test_the_renderer_alone(studio):
    facts = CardFacts(model_name="t", n_layer=1, n_head=1, n_embd=8, block_size=8, vocab_size=257, n_params=1,
                      tokenizer="bpe", tokenizer_trained_on="3 files", steps_trained=0,
                      sites=[(f"s{i}.example", 20 - i) for i in range(13)], items=13 * 10)
    card = render_card(facts, "hf")
    assert "byte-level BPE with 257 tokens, trained in CLLM Studio on 3 files" in card
    assert "s9.example (11 pages); 3 more sites (27 pages)" in card
    assert re.search(r"max_new_tokens=5\b", card)  # "The" in an 8-token context
    with pytest.raises(ValueError):
        render_card(facts, "onnx")
    with pytest.raises(ValueError):
        render_card(facts, "gguf")
