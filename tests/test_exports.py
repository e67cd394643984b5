"""Exports (services/exports.py, jobs/export.py): a GGUF file, an Ollama folder or a Hugging Face
folder, each with its model card; the checks before anything is written; a model never changed
by its export; the export job with progress and Stop; the CLI. That llama.cpp runs the GGUF as
we do is tests/test_gguf.py's."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import gguf
import pytest

from cllm_app.engine.bpe import EOT_TEXT
from cllm_app.engine.tokenizer import tokenizer_for
from cllm_app.engine.weights import load_weights, save_weights
from cllm_app.errors import Conflict, InvalidInput
from cllm_app.jobs.export import run_export
from cllm_app.services import exports as exports_service
from cllm_app.services.chat import build_prompt
from cllm_app.services.export_paths import discard_partial
from tests.conftest import snapshot

SHAPE = {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32}


def _model(studio, name="m"):
    studio.models.create(name, **SHAPE)
    return studio.models.root.model_dir(name)


def _model_files(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_gguf_export_writes_the_file_and_its_card_and_leaves_the_model_as_it_was(studio, tmp_path):
    folder = _model(studio, "Story Teller")
    before_files = _model_files(folder)
    before_row = studio.models.describe(studio.models.get("Story Teller"))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = studio.exports.export("Story Teller", "gguf", str(out_dir), "f16")
    path = Path(out["path"])
    assert path == out_dir / "story-teller-f16.gguf"
    assert [Path(f) for f in out["files"]] == [path, out_dir / "story-teller-f16.md"]
    assert sorted(p.name for p in out_dir.iterdir()) == ["story-teller-f16.gguf", "story-teller-f16.md"]  # no temporary left
    reader = gguf.GGUFReader(str(path))
    arch = reader.get_field("general.architecture")
    assert bytes(arch.parts[arch.data[0]]).decode() == "gpt2"
    assert "story-teller-f16.gguf" in (out_dir / "story-teller-f16.md").read_text()
    assert out["command"].startswith(f"llama-cli -m {path} ")
    assert out["checkpoint"] is None and out["training"] is None  # never trained: the weights it was made with
    assert _model_files(folder) == before_files
    assert studio.models.describe(studio.models.get("Story Teller")) == before_row


def test_an_existing_file_is_refused_unless_overwrite_and_bad_requests_are_refused_before_writing(studio, tmp_path):
    _model(studio)
    target = tmp_path / "m.gguf"
    studio.exports.export("m", "gguf", str(target))
    first = target.read_bytes()
    with pytest.raises(Conflict) as e:
        studio.exports.export("m", "gguf", str(target), "f16")
    assert e.value.code == "file_exists" and "overwrite" in e.value.message
    assert target.read_bytes() == first
    studio.exports.export("m", "gguf", str(target), "f16", overwrite=True)
    assert target.read_bytes() != first
    refused = [
        (("gguf", "relative/m.gguf"), "invalid_path"),
        (("gguf", str(tmp_path / "missing" / "m.gguf")), "invalid_path"),
        (("gguf", str(tmp_path / "m.bin")), "invalid_path"),
        (("gguf", ""), "invalid_path"),
        (("gguf", str(tmp_path / "x.gguf"), "q4"), "invalid_dtype"),
        (("onnx", str(tmp_path / "x")), "invalid_format"),
        (("hf", str(target)), "invalid_path"),  # a file, not a folder
    ]
    for args, code in refused:
        with pytest.raises(InvalidInput) as e:
            studio.exports.export("m", *args)
        assert e.value.code == code, args
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    for fmt in ("hf", "ollama"):
        with pytest.raises(Conflict) as e:
            studio.exports.export("m", fmt, str(busy))
        assert e.value.code == "folder_not_empty"
    assert sorted(p.name for p in busy.iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith((".gguf", ".md"))) == ["m.gguf", "m.md"]


def test_an_export_during_training_says_which_checkpoint_it_read(studio, tmp_path):
    folder = _model(studio)
    weights = load_weights(folder / "model.safetensors")
    # What training's on_checkpoint writes (jobs/train.py): the weights with the step they reached.
    save_weights(folder / "model.safetensors", weights, {"step": 120, "epoch": 3, "tokens": 4096, "saved_at": "now"})
    job = studio.jobs.submit("train", "m", {}, state="running")
    out = studio.exports.export("m", "gguf", str(tmp_path / "m.gguf"))
    assert out["checkpoint"] == {"step": 120, "epoch": 3, "tokens": 4096, "saved_at": "now"}
    assert out["training"] == {"job_id": job["id"]}
    # The card beside it speaks of that checkpoint too, not of the store's count (still 0 here).
    assert "Trained for 120 steps" in (tmp_path / "m.md").read_text()
    studio.jobs.finish(job["id"], "done")


def test_weights_that_do_not_match_the_config_are_refused_not_exported(studio, tmp_path, monkeypatch):
    _model(studio)
    real = exports_service.read_weights

    def one_layer_short(path):
        w, meta = real(path)
        return {k: v for k, v in w.items() if not k.startswith("h.1.")}, meta

    monkeypatch.setattr(exports_service, "read_weights", one_layer_short)
    with pytest.raises(Conflict) as e:
        studio.exports.export("m", "gguf", str(tmp_path / "m.gguf"))
    assert e.value.code == "model_changed"
    assert not any(tmp_path.glob("*.gguf"))


# ---- the Ollama folder ------------------------------------------------------------------------


def _modelfile_commands(text: str) -> list[tuple[str, str]]:
    """(COMMAND, value) pairs of a Modelfile, read as its format says: a value is the rest of
    the line, or a quoted string ("..." or \"\"\"...\"\"\") that may run over several lines."""
    out, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        m = re.match(r"([A-Za-z]+) +", text[i:])
        assert m, f"not a command at {text[i:i + 30]!r}"
        name, i = m.group(1).upper(), i + m.end()
        if name == "PARAMETER":
            m = re.match(r"([a-z_]+) +", text[i:])
            name, i = f"PARAMETER {m.group(1)}", i + m.end()
        for quote in ('"""', '"'):
            if text.startswith(quote, i):
                end = text.index(quote, i + len(quote))
                out.append((name, text[i + len(quote):end]))
                i = end + len(quote)
                break
        else:
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            out.append((name, text[i:end].strip()))
            i = end
    return out


def _render_go_template(template: str, messages: list[dict]) -> str:
    """The part of Go's text/template the Modelfile uses: text, {{ .Field }}, {{ range .Messages }}
    and {{ if eq .Role "..." }} / {{ else if ... }} / {{ end }}."""
    assert "{{-" not in template and "-}}" not in template
    tokens = [t for t in re.split(r"(\{\{.*?\}\})", template, flags=re.S) if t]

    def parse(i):
        nodes = []
        while i < len(tokens):
            t, i = tokens[i], i + 1
            if not t.startswith("{{"):
                nodes.append(("text", t))
                continue
            action = t[2:-2].strip()
            if action == "end" or action.startswith("else"):
                return nodes, i, action
            if action.startswith("range "):
                body, i, _ = parse(i)
                nodes.append(("range", action[6:].strip(), body))
            elif action.startswith("if "):
                branches, cond = [], action[3:]
                while True:
                    body, i, stop = parse(i)
                    branches.append((cond, body))
                    if stop == "end":
                        break
                    cond = stop[len("else if "):] if stop.startswith("else if ") else "true"
                nodes.append(("if", branches))
            else:
                nodes.append(("field", action))
        return nodes, i, None

    def holds(cond, ctx):
        if cond == "true":
            return True
        m = re.fullmatch(r'eq \.(\w+) "([^"]*)"', cond.strip())
        assert m, cond
        return ctx[m.group(1)] == m.group(2)

    def run(nodes, ctx):
        out = ""
        for node in nodes:
            if node[0] == "text":
                out += node[1]
            elif node[0] == "field":
                out += ctx[node[1].lstrip(".")]
            elif node[0] == "range":
                assert node[1] == ".Messages"
                out += "".join(run(node[2], {k.capitalize(): v for k, v in m.items()}) for m in messages)
            else:
                out += next((run(body, ctx) for cond, body in node[1] if holds(cond, ctx)), "")
        return out

    return run(parse(0)[0], {})


def test_the_ollama_folder_holds_the_gguf_a_modelfile_in_the_apps_chat_format_and_the_card(studio, tmp_path):
    _model(studio, "Chatty")
    studio.chat.save_sampling_settings("Chatty", "Custom", {"temperature": 0.3, "top_k": 7, "top_p": 0.9,
                                                             "repetition_penalty": 1.2, "max_new_tokens": 64,
                                                             "seed": 11})
    out = studio.exports.export("Chatty", "ollama", str(tmp_path / "ollama"), "q8_0")
    folder = Path(out["path"])
    assert sorted(p.name for p in folder.iterdir()) == ["Modelfile", "README.md", "chatty.gguf"]
    assert out["command"] == f"cd {folder} && ollama create chatty -f Modelfile && ollama run chatty"
    commands = _modelfile_commands((folder / "Modelfile").read_text())
    values = {}
    for name, value in commands:
        values.setdefault(name, []).append(value)
    assert values["FROM"] == ["./chatty.gguf"]
    assert values["PARAMETER stop"] == [EOT_TEXT, "\nUser:"]
    assert values["PARAMETER num_ctx"] == [str(SHAPE["block_size"])]
    assert {k: v for k, v in values.items() if k.startswith("PARAMETER") and k not in (
        "PARAMETER stop", "PARAMETER num_ctx")} == {
        "PARAMETER temperature": ["0.3"], "PARAMETER top_k": ["7"], "PARAMETER top_p": ["0.9"],
        "PARAMETER repeat_penalty": ["1.2"], "PARAMETER num_predict": ["64"], "PARAMETER seed": ["11"]}
    # The TEMPLATE renders a conversation to exactly the prompt the LLM tab sends the model.
    turns = [("system", "Be brief."), ("user", "Hi there"), ("assistant", "Hello!"), ("user", "How are you?")]
    rendered = _render_go_template(values["TEMPLATE"][0], [{"role": r, "content": c} for r, c in turns])
    tok = tokenizer_for("byte")
    ours = EOT_TEXT + tok.decode(build_prompt(tok, turns, block_size=4096, max_new_tokens=16))
    assert rendered == ours
    assert rendered.endswith("User: How are you?\nAssistant: ")
    card = (folder / "README.md").read_text()
    assert "chatty.gguf" in card and "ollama create" in card


def test_an_ollama_folder_is_replaced_only_when_told_and_keeps_what_is_not_ours(studio, tmp_path):
    _model(studio)
    folder = tmp_path / "ollama"
    studio.exports.export("m", "ollama", str(folder))
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(Conflict):
        studio.exports.export("m", "ollama", str(folder), "f16")
    studio.exports.export("m", "ollama", str(folder), "f16", overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["Modelfile", "README.md", "m.gguf", "notes.txt"]


def test_a_hugging_face_folder_gets_its_model_card(studio, tmp_path):
    _model(studio)
    out = studio.exports.export("m", "hf", str(tmp_path / "hf"))
    folder = Path(out["path"])
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in folder.iterdir()}
    assert (folder / "README.md").read_text().startswith("---\n")
    assert "transformers" in out["command"]


# ---- the job, over HTTP -------------------------------------------------------------------------


def test_the_export_job_reports_progress_and_what_it_wrote(studio, client, tmp_path):
    _model(studio)
    r = client.post("/api/models/m/export", json={"format": "gguf", "path": str(tmp_path), "dtype": "f16"})
    assert r.status_code == 202, r.get_json()
    job = r.get_json()
    assert job["kind"] == "export" and job["state"] == "queued"
    assert studio.jobs.start(job["id"], os.getpid())
    assert run_export(studio, job["id"]) == "done"
    done = studio.jobs.get(job["id"])
    assert done["state"] == "done" and done["progress"] == 1.0
    assert done["message"] == f"exported to {tmp_path / 'm-f16.gguf'}"
    assert done["detail"]["command"].startswith("llama-cli -m ")
    assert (tmp_path / "m-f16.gguf").exists()
    # refused before any job: the same file again, a bad format
    r = client.post("/api/models/m/export", json={"format": "gguf", "path": str(tmp_path), "dtype": "f16"})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "file_exists"
    r = client.post("/api/models/m/export", json={"format": "zip", "path": str(tmp_path)})
    assert r.status_code == 400
    formats = client.get("/api/export-formats").get_json()["formats"]
    assert [f["format"] for f in formats] == ["gguf", "ollama", "hf"]
    assert studio.jobs.list("m", active=True) == []


def test_a_stopped_export_writes_nothing_and_a_killed_one_leaves_no_temporary_file(studio, tmp_path):
    _model(studio)
    out = tmp_path / "out"
    out.mkdir()
    job = studio.exports.submit("m", "gguf", str(out))
    assert studio.jobs.start(job["id"], os.getpid())
    studio.jobs.stop(job["id"])
    assert run_export(studio, job["id"]) == "stopped"
    assert list(out.iterdir()) == []
    # A process killed mid-write leaves its temporary file; the job's end takes it away.
    params = json.loads(json.dumps(studio.exports.check("m", "gguf", str(out))))
    left = out / ".m-f32.gguf.tmp-1234abcd"
    left.write_bytes(b"half")
    discard_partial(params)
    assert not left.exists()


def test_a_model_being_exported_cannot_be_renamed_or_deleted(studio, tmp_path):
    _model(studio)
    job = studio.exports.submit("m", "gguf", str(tmp_path))
    with pytest.raises(Conflict) as e:
        studio.models.rename("m", "n")
    assert "export job" in e.value.message
    studio.jobs.stop(job["id"])  # queued: cancelled at once
    studio.models.rename("m", "n")


# ---- the CLI ------------------------------------------------------------------------------------


def _cllm(home, *args):
    env = {**os.environ, "CLLM_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "cllm_app", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_the_cli_exports_gguf_and_ollama(home, studio, tmp_path):
    _model(studio)
    before = snapshot(studio.root.path / "models")
    p = _cllm(home, "export", "m", str(tmp_path / "m.gguf"), "--format", "gguf", "--dtype", "q8_0")
    assert p.returncode == 0, p.stderr
    assert f"exported m to {tmp_path / 'm.gguf'}" in p.stdout
    assert f"llama-cli -m {tmp_path / 'm.gguf'}" in p.stdout
    p = _cllm(home, "export", "m", str(tmp_path / "m.gguf"), "--format", "gguf")
    assert p.returncode != 0 and "already exists" in p.stderr
    p = _cllm(home, "export", "m", str(tmp_path / "ol"), "--format", "ollama")
    assert p.returncode == 0, p.stderr
    assert "ollama create m -f Modelfile" in p.stdout
    assert (tmp_path / "ol" / "Modelfile").exists()
    assert snapshot(studio.root.path / "models") == before
