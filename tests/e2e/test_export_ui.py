"""The Models tab's Export… dialog (issue 14) against the real app: a GGUF, an Ollama folder and
a Hugging Face folder written by export jobs, refusals said in the dialog, the command with
Copy, the checkpoint an export came from, a reloaded window finding a running export (live,
with Stop), and the native folder dialog in the desktop window."""

import pytest
from e2e_support import (
    TINY_SETTINGS,
    TINY_SHAPE,
    eventually,
    fake_desktop_bridge,
    open_tab,
    sample_text,
)
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


def _show(page: Page, app, name: str) -> None:
    """Select `name` (as a remembered selection) and show its details on the Models tab."""
    app.api("PUT", "/api/settings", {"selected_model": name}, expect_status=200)
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    open_tab(page, "models")
    expect(page.get_by_test_id("details-name")).to_have_text(name)


def _export(page: Page, fmt: str, path, dtype: str | None = None) -> None:
    """Fill the dialog's form and press Export."""
    page.get_by_test_id(f"export-format-{fmt}").check()
    if dtype:
        page.get_by_test_id("export-dtype").select_option(dtype)
    page.get_by_test_id("export-path").fill(str(path))
    page.get_by_test_id("export-submit").click()


def _finished(page: Page):
    job = page.get_by_test_id("export-job")
    expect(job).to_have_attribute("data-state", "done", timeout=60_000)
    return job


def test_gguf_export_copy_then_refused_then_overwritten(page: Page, app, tmp_path):
    app.create("Story Teller", **TINY_SHAPE)
    _show(page, app, "Story Teller")
    out = tmp_path / "ggufs"
    out.mkdir()

    page.get_by_test_id("export-button").click()
    dialog = page.get_by_test_id("export-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("export-choose")).to_be_hidden()  # a browser types the path
    expect(dialog.get_by_text("GGUF (llama.cpp, Ollama, LM Studio)")).to_be_visible()
    _export(page, "gguf", out, "f16")

    _finished(page)
    gguf = out / "story-teller-f16.gguf"
    expect(page.get_by_test_id("export-path-written")).to_have_text(str(gguf))
    assert gguf.is_file() and gguf.read_bytes()[:4] == b"GGUF"
    assert (out / "story-teller-f16.md").is_file()  # the model card beside it
    expect(page.get_by_test_id("export-state")).to_have_text("Finished")
    expect(page.get_by_test_id("export-percent")).to_have_text("100%")
    expect(page.get_by_test_id("export-checkpoint")).to_contain_text("has not trained yet")
    command = page.get_by_test_id("export-command")
    expect(command).to_contain_text(f"llama-cli -m {gguf}")

    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app.origin)
    page.get_by_test_id("export-copy").click()
    expect(page.get_by_test_id("toast").filter(has_text="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == command.text_content()

    # The same place again: refused before any job, said in the dialog, with the form as it was.
    jobs_before = len(app.api("GET", "/api/jobs?model_name=Story%20Teller")[1]["jobs"])
    page.get_by_test_id("export-again").click()
    expect(page.get_by_test_id("export-path")).to_have_value(str(out))
    expect(page.get_by_test_id("export-dtype")).to_have_value("f16")
    page.get_by_test_id("export-submit").click()
    error = page.get_by_test_id("export-error")
    expect(error).to_contain_text(f"{gguf} already exists; choose another file or overwrite it")
    expect(dialog).to_be_visible()
    expect(page.get_by_test_id("export-path")).to_have_value(str(out))
    expect(page.get_by_test_id("export-path")).to_have_attribute("aria-invalid", "true")
    assert len(app.api("GET", "/api/jobs?model_name=Story%20Teller")[1]["jobs"]) == jobs_before

    before = gguf.stat().st_mtime_ns
    page.get_by_test_id("export-overwrite").check()
    page.get_by_test_id("export-submit").click()
    _finished(page)
    expect(page.get_by_test_id("export-path-written")).to_have_text(str(gguf))
    assert gguf.stat().st_mtime_ns != before

    page.get_by_test_id("export-close").click()
    expect(dialog).to_have_count(0)


def test_ollama_and_hugging_face_folders_of_a_trained_model(page: Page, app, tmp_path):
    app.create("Poet", **TINY_SHAPE)
    app.upload("Poet", {"t.txt": sample_text(4_000, seed=3).encode()})
    job = app.api(
        "POST", "/api/models/Poet/train", {**TINY_SETTINGS, "target_epochs": 1}, expect_status=202
    )[1]
    assert app.wait_job(job["id"], timeout=120)["state"] == "done"
    _show(page, app, "Poet")

    ollama = tmp_path / "poet-ollama"
    page.get_by_test_id("export-button").click()
    _export(page, "ollama", ollama, "q8_0")
    _finished(page)
    assert sorted(p.name for p in ollama.iterdir()) == ["Modelfile", "README.md", "poet.gguf"]
    expect(page.get_by_test_id("export-command")).to_contain_text("ollama create poet -f Modelfile")
    expect(page.get_by_test_id("export-files")).to_contain_text(str(ollama / "Modelfile"))
    done = app.api("GET", "/api/jobs?model_name=Poet")[1]["jobs"][0]
    ck = done["detail"]["checkpoint"]
    assert done["kind"] == "export" and ck["step"] > 0
    expect(page.get_by_test_id("export-checkpoint")).to_have_text(
        f"From the checkpoint at step {ck['step']:,}, epoch {ck['epoch']}."
    )

    # A Hugging Face folder: f32 only, no overwrite, and a folder that is not empty is refused.
    page.get_by_test_id("export-again").click()
    page.get_by_test_id("export-format-hf").check()
    expect(page.get_by_test_id("export-dtype")).to_be_disabled()
    expect(page.get_by_test_id("export-overwrite")).to_be_hidden()
    _export(page, "hf", ollama)
    expect(page.get_by_test_id("export-error")).to_contain_text(
        f"{ollama} is not empty; choose a new or empty folder"
    )

    hf = tmp_path / "poet-hf"
    _export(page, "hf", hf)
    _finished(page)
    assert (hf / "config.json").is_file() and (hf / "README.md").is_file()
    expect(page.get_by_test_id("export-command")).to_contain_text(
        "from transformers import pipeline"
    )

    # A relative path is refused by the server, in the dialog.
    page.get_by_test_id("export-again").click()
    _export(page, "hf", "poet-elsewhere")
    expect(page.get_by_test_id("export-error")).to_contain_text(
        "Give a full path (from the root of a disk), not 'poet-elsewhere'"
    )


def test_a_reloaded_window_follows_a_running_export_and_stops_it(page: Page, app, tmp_path):
    """The test plays the export's worker process (the real one is over in a fraction of a
    second): the job and its progress are in the app's store, as a worker writes them."""
    from cllm_app.services.studio import Studio

    app.create("Slow", **TINY_SHAPE)
    _show(page, app, "Slow")
    studio = Studio(app.home)
    try:
        params = {
            "model_name": "Slow",
            "format": "gguf",
            "dtype": "f16",
            "path": str(tmp_path / "slow-f16.gguf"),
            "overwrite": False,
        }
        job = studio.jobs.submit("export", "Slow", params, state="running")
        studio.jobs.report(job["id"], progress=0.25, message="writing slow-f16.gguf")
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-ready", "1")
        open_tab(page, "models")
        expect(page.get_by_test_id("details-busy")).to_contain_text(
            f"Slow is exporting (job #{job['id']}, running): rename, delete and add layers wait"
        )
        expect(page.locator('#panel-models tr[data-model="Slow"] .badge')).to_have_text("export")

        page.get_by_test_id("export-button").click()
        view = page.get_by_test_id("export-job")
        expect(view).to_have_attribute("data-job-id", str(job["id"]))
        expect(page.get_by_test_id("export-state")).to_have_text("Exporting")
        expect(page.get_by_test_id("export-percent")).to_have_text("25%")
        expect(page.get_by_test_id("export-message")).to_have_text("Writing slow-f16.gguf")
        studio.jobs.report(job["id"], progress=0.6)
        expect(page.get_by_test_id("export-percent")).to_have_text("60%")
        expect(page.get_by_test_id("export-progress")).to_have_attribute("aria-valuenow", "60.0")

        page.get_by_test_id("export-stop").click()
        eventually(lambda: studio.jobs.stop_requested(job["id"]))
        expect(view).to_have_attribute("data-state", "stopping")
        studio.jobs.finish(job["id"], "stopped", message="stopped; nothing was written")
        expect(view).to_have_attribute("data-state", "stopped")
        expect(page.get_by_test_id("export-message")).to_have_text("Stopped; nothing was written")
        expect(page.get_by_test_id("export-stop")).to_have_count(0)
        expect(page.get_by_test_id("details-busy")).to_have_count(0)
    finally:
        studio.close()

    # The form again, which offers the last export to look at.
    page.get_by_test_id("export-again").click()
    expect(page.get_by_test_id("export-last")).to_contain_text(
        "Last export: Stopped; nothing was written"
    )
    page.get_by_test_id("export-show-last").click()
    expect(page.get_by_test_id("export-job")).to_have_attribute("data-job-id", str(job["id"]))


FAKE_FOLDER_PICKER = fake_desktop_bridge(
    pick_folder="async (start) => { (window.__starts = window.__starts || []).push(start); return window.__folder; }")


def test_the_desktop_window_chooses_the_folder(context, app, tmp_path):
    """In the window, Choose… opens the native folder dialog; a folder export gets a folder of
    its own in the one chosen."""
    app.create("Desk Model", **TINY_SHAPE)
    app.api("PUT", "/api/settings", {"selected_model": "Desk Model"}, expect_status=200)
    context.add_init_script(FAKE_FOLDER_PICKER + f"window.__folder = {str(tmp_path)!r};")
    page = context.new_page()
    page.goto(app.url)
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    open_tab(page, "models")
    expect(page.get_by_test_id("details-name")).to_have_text("Desk Model")

    page.get_by_test_id("export-button").click()
    choose = page.get_by_test_id("export-choose")
    expect(choose).to_be_visible()
    choose.click()
    expect(page.get_by_test_id("export-path")).to_have_value(str(tmp_path))
    page.get_by_test_id("export-format-ollama").check()
    choose.click()
    expect(page.get_by_test_id("export-path")).to_have_value(str(tmp_path / "Desk-Model-ollama"))
    assert page.evaluate("window.__starts") == [None, str(tmp_path)]
    page.get_by_test_id("export-submit").click()
    expect(page.get_by_test_id("export-job")).to_have_attribute(
        "data-state", "done", timeout=60_000
    )
    assert (tmp_path / "Desk-Model-ollama" / "Modelfile").is_file()
