"""The Models tab creates a BPE model from files uploaded in the browser and shows its tokenizer."""

import pytest
from e2e_support import create_in_ui, eventually, open_tab, sample_text
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_create_a_bpe_model_from_uploaded_files(page, app, tmp_path):
    files = []
    for i in range(2):
        path = tmp_path / f"story{i}.txt"
        path.write_text(sample_text(60_000, seed=i), encoding="utf-8")
        files.append(str(path))
    open_tab(page, "models")
    page.get_by_test_id("create-name").fill("Byte pairs")
    for key, value in {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 32}.items():
        page.get_by_test_id(f"create-{key}").fill(str(value))
    expect(page.get_by_test_id("bpe-fields")).to_be_hidden()
    page.get_by_test_id("create-tokenizer").select_option("bpe")
    expect(page.get_by_test_id("bpe-fields")).to_be_visible()
    page.get_by_test_id("create-vocab_size").fill("512")
    expect(page.get_by_test_id("create-tokenizer-note")).to_contain_text("512")

    # Without files the form says what is missing and nothing is created.
    page.get_by_test_id("create-button").click()
    expect(page.get_by_test_id("create-error")).to_contain_text("Choose the text files")
    assert app.model_names() == []

    page.get_by_test_id("tokenizer-file-input").set_input_files(files)
    expect(page.get_by_test_id("tokenizer-files")).to_contain_text("2 files: story0.txt, story1.txt")
    page.get_by_test_id("create-button").click()
    expect(page.get_by_test_id("details-name")).to_have_text("Byte pairs", timeout=60_000)
    expect(page.get_by_test_id("details-tokenizer")).to_have_text("BPE (512 tokens)")
    expect(page.get_by_test_id("details-vocab_size")).to_have_text("512")

    _, model = app.api("GET", "/api/models/Byte pairs", expect_status=200)
    assert (model["tokenizer"], model["vocab_size"]) == ("bpe", 512)
    assert (app.home / "models" / "Byte pairs" / "tokenizer.json").is_file()
    staged = app.home / "staging" / "tokenizer"
    eventually(lambda: not any(staged.iterdir()))  # uploads are removed once the model exists
    expect(page.get_by_test_id("tokenizer-files")).to_have_text("No files chosen")


def test_a_bpe_model_from_another_models_queue_and_a_refusal(page, app):
    create_in_ui(page, "source", n_layer=1, n_head=2, n_embd=16, block_size=16)
    page.get_by_test_id("create-name").fill("from queue")
    page.get_by_test_id("create-tokenizer").select_option("bpe")
    page.get_by_test_id("create-tokenizer-source").select_option("queue")
    page.get_by_test_id("create-tokenizer-from").select_option("source")
    page.get_by_test_id("create-button").click()
    expect(page.get_by_test_id("create-error")).to_contain_text("queue of 'source' is empty")
    assert app.model_names() == ["source"]
