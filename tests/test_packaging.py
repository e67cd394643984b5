"""The PyInstaller one-folder binary: it builds, opens the window offscreen, and serves.

The build takes about a minute and makes a bundle of about 600 MB in a
temporary folder, once per session.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from test_window_smoke import (
    assert_window_summary,
    no_display_env,
    offscreen_env,
    self_check_summary,
    start_and_check_serving,
)

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT = 600

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def binary(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pyinstaller")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "packaging" / "build.py"),
         "--dist", str(out / "dist"), "--work", str(out / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-8000:]}"
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path == out / "dist" / "cllm-studio" / "cllm-studio"
    assert path.is_file()
    return path


def test_bundle_carries_the_ui_and_the_kernels(binary):
    internal = binary.parent / "_internal"
    static = internal / "cllm_app" / "static"
    assert (static / "index.html").is_file()
    assert {p.name for p in (static / "themes").glob("*.css")} >= {"light.css", "dark.css"}
    built = {p.name.split(".")[0] for p in (ROOT / "cllm_app" / "kernels").glob("*.so")}
    bundled = {p.name.split(".")[0] for p in (internal / "cllm_app" / "kernels").glob("*.so")}
    assert built and built <= bundled
    assert (internal / "PyQt6" / "Qt6" / "libexec" / "QtWebEngineProcess").is_file()


def test_binary_opens_the_window(binary, tmp_path):
    summary = self_check_summary([str(binary), "window", "--self-check"], offscreen_env(tmp_path))
    assert_window_summary(summary)


def test_binary_serves_the_ui(binary, tmp_path):
    start_and_check_serving(
        [str(binary), "serve", "--port", "0"],
        no_display_env(tmp_path),
        expect_no_display_notice=False,
    )


def test_binary_without_a_display_serves(binary, tmp_path):
    start_and_check_serving(
        [str(binary)], no_display_env(tmp_path), expect_no_display_notice=True
    )


def test_binary_reads_every_format_and_makes_a_bpe_model(binary, tmp_path):
    """The libraries behind ingest (trafilatura, pypdf, charset-normalizer, zstandard) and BPE
    (tokenizers, tiktoken) are in the bundle with their data files, not only importable here."""
    import json
    import os

    from data_files import make_pdf

    from tests.bpe_support import corpus

    env = {**os.environ, "CLLM_HOME": str(tmp_path / "home")}
    (tmp_path / "page.html").write_text(
        "<html><head><title>Rivers</title></head><body><nav>menu</nav><article><h1>Rivers</h1>"
        + "<p>The river runs past the old mill and on towards the sea, slow and wide.</p>" * 8
        + "</article></body></html>", encoding="utf-8")
    (tmp_path / "latin.txt").write_bytes("Déjà vu à Paris, naïve café. ".encode("cp1252") * 40)
    (tmp_path / "doc.pdf").write_bytes(make_pdf("A short document about gardens in the morning light."))
    (tmp_path / "corpus.txt").write_text("\n".join(corpus()), encoding="utf-8")

    def cllm(*args):
        proc = subprocess.run([str(binary), *args], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    cllm("models", "create", "m", "--json")
    report = json.loads(cllm("data", "add", "m", str(tmp_path / "page.html"), str(tmp_path / "latin.txt"),
                             str(tmp_path / "doc.pdf"), "--json"))
    assert report["added"] == 3, report
    shown = cllm("models", "create", "b", "--tokenizer", "bpe", "--vocab-size", "600",
                 "--tokenizer-data", str(tmp_path / "corpus.txt"), "--json")
    assert json.loads(shown)["tokenizer"] == "bpe"
    text = cllm("generate", "b", "the", "--max-tokens", "5", "--seed", "1")
    assert isinstance(text, str)
    # a training bundle: the binary carries the kit and the source of what trains
    cllm("bundle", "m", str(tmp_path / "bundle"))
    assert (tmp_path / "bundle" / "launch.sh").is_file() and (tmp_path / "bundle" / "train.py").is_file()
    assert (tmp_path / "bundle" / "cllm_app" / "engine" / "trainer.py").is_file()


def test_binary_writes_a_reply_in_its_generator_process(binary, tmp_path):
    """The LLM tab's path in the bundle: the server starts `cllm-studio generator` (the process
    replies are written in, services/generator_process.py) and streams its tokens."""
    import json

    import requests
    from test_window_smoke import URL_LINE, LineReader, stop

    proc = subprocess.Popen([str(binary), "serve", "--port", "0"], env=no_display_env(tmp_path),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        match = LineReader(proc.stdout).until(URL_LINE, timeout=60)
        origin, h = f"http://127.0.0.1:{match.group(2)}", {"X-CLLM-Token": match.group(3)}
        created = requests.post(origin + "/api/models", json={"model_name": "m", "n_layer": 1, "n_head": 2,
                                                              "n_embd": 16, "block_size": 32}, headers=h, timeout=30)
        assert created.status_code == 201, created.text
        events, event = [], None
        with requests.post(origin + "/api/models/m/complete", headers={**h, "Accept": "text/event-stream"},
                           json={"prompt": "Once", "sampling": {"max_new_tokens": 8, "seed": 1}},
                           stream=True, timeout=120) as r:
            assert r.status_code == 200, r.text
            for line in r.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    events.append((event, json.loads(line[6:])))
        kinds = [k for k, _ in events]
        assert kinds[0] == "start" and kinds[-1] == "done" and "error" not in kinds, events
        assert events[-1][1]["completion_tokens"] >= 1
    finally:
        stop(proc)
