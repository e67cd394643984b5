"""The `cllm` command in subprocesses, as a person runs it."""

import json
import os
import subprocess
import sys

import pytest


def cllm(*args, home, ok=True):
    env = {**os.environ, "CLLM_HOME": str(home)}
    p = subprocess.run([sys.executable, "-m", "cllm_app", *args], capture_output=True, text=True, env=env, timeout=60)
    if ok:
        assert p.returncode == 0, p.stderr
    return p


def refused(*args, home):
    p = cllm(*args, home=home, ok=False)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def test_models_lifecycle_from_the_command_line(home):
    assert "created model_1" in cllm("models", "create", "--layers", "2", "--heads", "2", "--dim", "16", "--context", "16", home=home).stdout
    assert "created Big One" in cllm("models", "create", "Big One", home=home).stdout
    listed = json.loads(cllm("models", "list", "--json", home=home).stdout)
    assert [m["model_name"] for m in listed["models"]] == ["Big One", "model_1"]
    assert [m["model_name"] for m in json.loads(cllm("models", "list", "--json", "--sort", "size", home=home).stdout)["models"]] == ["model_1", "Big One"]
    table = cllm("models", "list", home=home).stdout
    assert table.splitlines()[0].split()[:3] == ["NAME", "LAYERS", "PARAMS"]
    shown = json.loads(cllm("models", "show", "model_1", "--json", home=home).stdout)
    assert (shown["n_layer"], shown["n_head"], shown["n_embd"], shown["block_size"]) == (2, 2, 16, 16)
    assert "parameters" in cllm("models", "show", "model_1", home=home).stdout
    cllm("models", "rename", "model_1", "small", home=home)
    dup = json.loads(cllm("models", "duplicate", "small", "--json", home=home).stdout)
    assert dup["model_name"] == "small-copy" and dup["duplicated_from"] == "small"
    set_out = json.loads(cllm("models", "set", "small", "--layers", "3", "--target-epochs", "4", "--lr", "0.001", "--json", home=home).stdout)
    assert (set_out["n_layer"], set_out["target_epochs"], set_out["learning_rate"]) == (3, 4, 0.001)
    cllm("models", "delete", "small", "--yes", home=home)
    assert "small" in cllm("models", "trash", home=home).stdout
    cllm("models", "restore", "small", home=home)
    assert (home / "models" / "small" / "model.safetensors").exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("models", "create", "bad/name"), "1 to 64 characters"),
        (("models", "show", "nobody"), "no model named 'nobody'"),
        (("models", "rename", "nobody", "x"), "no model named"),
        (("models", "delete", "m"), "needs confirmation"),
        (("models", "set", "m", "--layers", "1"), "never removed"),
        (("models", "set", "m", "--heads", "3"), "multiple of n_head"),
        (("models", "restore", "nobody"), "trash"),
        (("models", "create", "M"), "already exists"),
        (("models", "trash", "--empty"), "confirmation"),
    ],
)
def test_refusals_exit_2_with_one_plain_line(home, args, fragment):
    cllm("models", "create", "m", "--layers", "2", "--heads", "2", "--dim", "16", "--context", "16", home=home)
    line = refused(*args, home=home)
    assert fragment in line


def test_usage_errors_exit_2(home):
    p = cllm("models", "create", "--layers", "many", home=home, ok=False)
    assert p.returncode == 2


def test_json_output_is_stable(home):
    """The --json shape the README documents."""
    cllm("models", "create", "doc", home=home)
    m = json.loads(cllm("models", "show", "doc", "--json", home=home).stdout)
    for key in (
        "id", "model_name", "created_at", "updated_at", "tokenizer", "vocab_size", "n_layer", "n_head",
        "n_embd", "block_size", "n_params", "batch_size", "sequence_length", "learning_rate",
        "target_epochs", "epochs_trained", "queue", "queue_directory", "disk_bytes", "busy",
        "duplicated_from", "lineage",
    ):
        assert key in m, key


def test_serve_prints_a_url_with_the_secret(home):
    env = {**os.environ, "CLLM_HOME": str(home)}
    p = subprocess.Popen([sys.executable, "-m", "cllm_app", "serve", "--port", "0"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = p.stdout.readline()
        assert line.startswith("CLLM Studio is serving at http://127.0.0.1:")
        url = line.split()[-1]
        import requests

        origin, token = url.split("/#token=")
        assert requests.get(origin + "/api/models", headers={"X-CLLM-Token": token}, timeout=10).status_code == 200
        assert requests.get(origin + "/api/models", timeout=10).status_code == 403
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_data_add_list_show_remove_import_clear(home, tmp_path):
    for name in ("d", "e"):
        cllm("models", "create", name, "--layers", "1", "--heads", "2", "--dim", "16", "--context", "16", home=home)
    good = tmp_path / "good.txt"
    good.write_text("some training text")
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00\x01\x02")
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"q": "question", "a": "a longer answer"}\n')
    p = cllm("data", "add", "d", str(good), str(bad), home=home)
    assert "added" in p.stdout and "18 tokens" in p.stdout
    assert "refused" in p.stderr and "binary" in p.stderr
    report = json.loads(cllm("data", "add", "d", str(rows), "--field", "q", "--json", home=home).stdout)
    assert report["added"] == 1 and report["report"][0]["token_count"] == len("question")
    listed = json.loads(cllm("data", "list", "d", "--json", home=home).stdout)
    assert listed["tokens"] == 18 + 8 and listed["items"][0]["origin"] == str(good)
    assert "some training text" in cllm("data", "show", "d", str(listed["items"][0]["id"]), home=home).stdout
    p = cllm("data", "add", "d", str(bad), home=home, ok=False)
    assert p.returncode == 2 and "binary" in p.stderr
    p = cllm("data", "import", "e", "--from", "d", "--entry", str(listed["items"][0]["id"]), home=home)
    assert "added" in p.stdout
    assert json.loads(cllm("data", "list", "e", "--json", home=home).stdout)["items"][0]["imported_from"] == "d"
    assert "cannot import its own queue" in refused("data", "import", "d", "--from", "d", home=home)
    assert "needs confirmation" in refused("data", "clear", "d", home=home)
    cllm("data", "remove", "d", str(listed["items"][0]["id"]), home=home)
    assert json.loads(cllm("data", "list", "d", "--json", home=home).stdout)["queue"]["items"] == 1
    assert "1 items" in cllm("data", "stats", "d", home=home).stdout
    assert "removed 1 items" in cllm("data", "clear", "d", "--yes", home=home).stdout
    assert json.loads(cllm("data", "list", "d", "--json", home=home).stdout)["items"] == []


def test_generate_streams_and_refuses_bad_sampling(home):
    cllm("models", "create", "g", "--layers", "1", "--heads", "2", "--dim", "16", "--context", "32", home=home)
    a = cllm("generate", "g", "Hi", "--max-tokens", "12", "--seed", "3", home=home).stdout
    b = cllm("generate", "g", "Hi", "--max-tokens", "12", "--seed", "3", home=home).stdout
    assert a == b and a.startswith("Hi")
    line = refused("generate", "g", "Hi", "--top-p", "0", home=home)
    assert "top_p" in line
