"""Training from the Training tab: a real job in a real worker process on a tiny model.

Start with the settings in the form, watch progress and the live loss chart, Stop, Continue
from the checkpoint (steps go on, a training_resumed marker appears), reload mid-run and find
the run again with the saved settings. A screenshot of the tab mid-training is saved to
tests/artifacts/training-tab.png (and docs/screenshot-training.png with CLLM_SCREENSHOTS=1).
"""

import os
import re
import shutil

import pytest
from e2e_support import (
    ARTIFACTS,
    REPO,
    TINY_SETTINGS,
    TINY_SHAPE,
    eventually,
    open_tab,
    sample_text,
)
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

ACTIVE = ("queued", "running", "stopping", "paused")


def points_of(app, name: str, since: int = 0) -> list[dict]:
    return app.api("GET", f"/api/models/{name}/loss-history?since_step={since}", expect_status=200)[
        1
    ]["points"]


def job_of(app, name: str) -> dict | None:
    jobs = app.api("GET", f"/api/jobs?model_name={name}", expect_status=200)[1]["jobs"]
    return jobs[0] if jobs else None


def chart_points(page) -> int:
    return int(page.get_by_test_id("loss-chart").get_attribute("data-points"))


def wait_chart_points(page, at_least: int, timeout: float = 20_000) -> None:
    page.wait_for_function(
        "n => Number(document.querySelector('[data-testid=\"loss-chart\"]').dataset.points) >= n",
        arg=at_least,
        timeout=timeout,
    )


def prepare(page, app, name: str) -> None:
    """A tiny model with ~20 KB of text in two files (so there is a validation document)."""
    app.create(name, **TINY_SHAPE)
    app.upload(
        name,
        {
            "story.txt": sample_text(12_000, seed=11).encode(),
            "letters.txt": sample_text(8_000, seed=12).encode(),
        },
    )
    app.api("PUT", "/api/settings", {"selected_model": name}, expect_status=200)
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    open_tab(page, "training")
    expect(page.locator('#panel-training [data-testid="summary-name"]')).to_have_text(name)
    expect(page.get_by_test_id("info-queue")).to_have_text("2 items · 20,000 tokens")


def fill_settings(page, values: dict) -> None:
    panel = page.locator("#panel-training")
    for field, value in values.items():
        panel.get_by_label(field, exact=True).fill(str(value))


def stop_via_api(app, name: str) -> None:
    job = job_of(app, name)
    if job and job["state"] in ACTIVE:
        assert app.api("POST", f"/api/jobs/{job['id']}/stop")[0] == 200
        eventually(lambda: job_of(app, name)["state"] not in ACTIVE, timeout=15)


def test_start_watch_stop_and_continue(page, app):
    prepare(page, app, "Tiny")
    start = page.get_by_test_id("training-start")
    cont = page.get_by_test_id("training-continue")
    stop = page.get_by_test_id("training-stop")
    expect(start).to_be_enabled()
    expect(cont).to_be_disabled()
    expect(stop).to_be_disabled()
    expect(page.get_by_test_id("chart-empty")).to_be_visible()

    fill_settings(
        page, {**TINY_SETTINGS, "target_epochs": 40, "learning_rate": 0.01, "warmup_steps": 10}
    )
    start.click()
    try:
        state = page.get_by_test_id("job-state")
        expect(state).to_have_attribute("data-state", "running")
        expect(start).to_be_disabled()
        expect(stop).to_be_enabled()
        model = app.api("GET", "/api/models/Tiny", expect_status=200)[1]
        assert {k: model[k] for k in TINY_SETTINGS} == TINY_SETTINGS
        assert model["target_epochs"] == 40

        # Points arrive: the API's history grows and the chart draws them.
        wait_chart_points(page, 15)
        first = len(points_of(app, "Tiny"))
        eventually(lambda: len(points_of(app, "Tiny")) > first + 10)
        wait_chart_points(page, first + 10)
        page.wait_for_function(
            "Number(document.querySelector('[data-testid=\"loss-chart\"]').dataset.valPoints) >= 1"
        )
        expect(page.get_by_test_id("chart-empty")).to_be_hidden()
        # each evaluation writes a sample of the model's text, shown under the figures
        expect(page.get_by_test_id("job-sample")).to_contain_text("Sample at step")
        expect(page.get_by_test_id("stat-step")).to_have_text(_step_of_total())
        expect(page.get_by_test_id("stat-epoch")).to_contain_text("/ 40")
        expect(page.get_by_test_id("stat-eta")).to_have_text(_duration())
        progress = page.get_by_test_id("job-progress-bar")
        eventually(lambda: float(progress.get_attribute("aria-valuenow")) > 0)
        expect(page.get_by_test_id("jobs-list").locator('li[data-model="Tiny"]')).to_be_visible()

        # Stop: stopping, then stopped, with a checkpoint at the step it reached.
        stop.click()
        expect(state).to_have_attribute("data-state", "stopped", timeout=15_000)
        expect(page.get_by_test_id("job-message")).to_contain_text("Continue resumes from here")
        stopped_at = app.api("GET", "/api/models/Tiny", expect_status=200)[1]["steps_trained"]
        assert stopped_at > 0
        assert job_of(app, "Tiny")["state"] == "stopped"
        expect(page.get_by_test_id("jobs-empty")).to_be_visible()
        expect(start).to_be_disabled()
        expect(cont).to_be_enabled()
        expect(page.get_by_test_id("run-hint")).to_contain_text(f"step {stopped_at:,}")

        # Continue: the same POST; the worker resumes from the checkpoint.
        cont.click()
        expect(state).to_have_attribute("data-state", "running")
        eventually(
            lambda: max(p["step"] for p in points_of(app, "Tiny")) > stopped_at + 20, timeout=30
        )
        history = app.api("GET", "/api/models/Tiny/loss-history?since_step=0", expect_status=200)[1]
        steps = [p["step"] for p in history["points"]]
        assert steps == list(range(1, len(steps) + 1))  # one point per step, none lost, none twice
        resumed = [m for m in history["markers"] if m["kind"] == "training_resumed"]
        assert [m["detail"]["step"] for m in resumed] == [stopped_at]
        expect(page.get_by_test_id("legend-training_resumed")).to_be_visible()
        chart = page.get_by_test_id("loss-chart")
        expect(chart).to_have_attribute("data-marker-kinds", _contains("training_resumed"))
        wait_chart_points(page, stopped_at + 20)

        # The chart's controls: log scale, time axis, smoothing (kept for the next visit).
        page.get_by_test_id("chart-log").check()
        page.get_by_test_id("chart-x-time").click()
        expect(page.get_by_test_id("chart-x-time")).to_have_attribute("aria-pressed", "true")
        page.get_by_test_id("chart-x-step").click()
        page.get_by_test_id("chart-smoothing").evaluate(
            "el => { el.value = '0.8'; el.dispatchEvent(new Event('input', { bubbles: true })); }"
        )
        prefs = page.evaluate("JSON.parse(localStorage.getItem('cllm-loss-chart'))")
        assert prefs == {"smoothing": 0.8, "log": True, "x": "step"}
        page.get_by_test_id("chart-log").uncheck()

        screenshot(page)
    finally:
        stop_via_api(app, "Tiny")
    expect(page.get_by_test_id("job-state")).to_have_attribute("data-state", "stopped")


def test_reload_reattaches_and_keeps_settings(page, app):
    prepare(page, app, "Resumer")
    fill_settings(page, {**TINY_SETTINGS, "target_epochs": 10, "learning_rate": 0.002})
    page.get_by_test_id("training-start").click()
    try:
        expect(page.get_by_test_id("job-state")).to_have_attribute("data-state", "running")
        wait_chart_points(page, 10)
        before = len(points_of(app, "Resumer"))

        page.reload()
        expect(page.locator("body")).to_have_attribute("data-ready", "1")
        expect(page.locator("#panel-training")).to_be_visible()  # the open tab is remembered
        panel = page.locator("#panel-training")
        for field, value in {**TINY_SETTINGS, "target_epochs": 10, "learning_rate": 0.002}.items():
            expect(panel.get_by_label(field, exact=True)).to_have_value(str(value))
        # The active job is found again: its progress and the chart go on.
        expect(page.get_by_test_id("job-state")).to_have_attribute("data-state", "running")
        expect(page.get_by_test_id("training-stop")).to_be_enabled()
        wait_chart_points(page, before + 10)
        expect(page.get_by_test_id("stat-step")).to_have_text(_step_of_total())

        # Switching to another model and back re-attaches too.
        app.create("Other", **TINY_SHAPE)
        page.evaluate("() => window.cllmStudio.selection.refresh()")
        page.locator('#panel-training [data-testid="model-select"]').select_option("Other")
        expect(page.get_by_test_id("job-none")).to_be_visible()
        expect(page.get_by_test_id("loss-chart")).to_have_attribute("data-points", "0")
        jobs = page.get_by_test_id("jobs-list")
        expect(jobs.locator('li[data-model="Resumer"]')).to_be_visible()
        jobs.locator('li[data-model="Resumer"] button.link').click()
        expect(page.get_by_test_id("job-state")).to_have_attribute("data-state", "running")
        wait_chart_points(page, before + 15)
    finally:
        stop_via_api(app, "Resumer")


# ---- small matchers and the screenshot -------------------------------------------------------


def _step_of_total():
    return re.compile(r"^[\d,]+ / [\d,]+$")


def _duration():
    return re.compile(r"^(\d+ (s|min|h|d))( \d+ (s|min|h))?$")


def _contains(word: str):
    return re.compile(rf"\b{word}\b")


def screenshot(page) -> None:
    page.mouse.move(0, 0)
    page.evaluate("document.querySelectorAll('#toasts .toast').forEach((t) => t.remove())")
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.locator(".panels").evaluate("el => el.scrollTo(0, 0)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / "training-tab.png"
    page.screenshot(path=str(target))
    assert target.stat().st_size > 10_000
    if os.environ.get("CLLM_SCREENSHOTS") == "1":
        docs = REPO / "docs" / "screenshot-training.png"
        docs.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, docs)
