"""The window tells the truth (issue 12): every tab shows the store's current numbers, pushed by
the change feed, whoever changed them, without a reload. (How fast a change by another process
shows is test_two_of_us.py's bar, 2 s; these tests wait the default 10 s, since a loaded CI
machine is not what they are about.) One test a defect seen on an earlier
main, and one that runs a crawl, a training job and an ingest at once and checks every tab
against the API at the end."""

import os
import re
import subprocess
import sys

import pytest
from crawl_site import CrawlSite
from e2e_support import TINY_SETTINGS, TINY_SHAPE, open_tab, panel_select, sample_text
from playwright.sync_api import expect

pytestmark = pytest.mark.browser



def cllm(app, *args) -> str:
    done = subprocess.run([sys.executable, "-m", "cllm_app", *args], env={**os.environ, "CLLM_HOME": str(app.home)},
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def ready(page, app, selected: str | None = None):
    if selected is not None:
        app.api("PUT", "/api/settings", {"selected_model": selected}, expect_status=200)
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    expect(page.locator("body")).to_have_attribute("data-events", "open")


def trained(app, name: str, text_seed: int = 1, **settings) -> dict:
    """A model with a queue, trained to its target through the API; returns the final job."""
    app.create(name, **TINY_SHAPE)
    app.upload(name, {f"{name}.txt": sample_text(3_000, seed=text_seed).encode()})
    job = app.api("POST", f"/api/models/{name}/train", {**TINY_SETTINGS, "target_epochs": 1, **settings},
                  expect_status=202)[1]
    return app.wait_job(job["id"], timeout=120)


def counted(queue: dict) -> str:
    return f"{queue['items']} {'item' if queue['items'] == 1 else 'items'} · {queue['tokens']:,} tokens"


def model(app, name: str) -> dict:
    return app.api("GET", f"/api/models/{name}", expect_status=200)[1]


def test_a_model_never_shows_another_model_s_run(page, app):
    """1. Train A; then pick B, never trained, on the Training tab: B's card, hint and summary
    are B's, whichever tab B was picked on."""
    assert trained(app, "A")["state"] == "done"
    app.create("B", **TINY_SHAPE)
    ready(page, app, "A")
    open_tab(page, "training")
    expect(page.get_by_test_id("job-progress")).to_have_attribute("data-state", "done")
    steps_a = model(app, "A")["steps_trained"]
    assert steps_a > 0

    panel_select(page, "training").select_option("B")
    expect(page.locator('#panel-training [data-testid="summary-name"]')).to_have_text("B")
    expect(page.get_by_test_id("job-none")).to_have_text(
        "No training run yet. Add training data, check the settings, and press Start.")
    expect(page.get_by_test_id("job-progress")).to_have_attribute("data-state", "")
    expect(page.get_by_test_id("info-trained")).to_have_text("0 steps · 0 tokens")
    expect(page.get_by_test_id("run-hint")).not_to_contain_text("trained")

    # Picked on another tab, and back: still B's own state, and A's again when A is picked.
    open_tab(page, "llm")
    panel_select(page, "llm").select_option("A")
    open_tab(page, "training")
    expect(page.get_by_test_id("job-progress")).to_have_attribute("data-state", "done")
    expect(page.get_by_test_id("info-trained")).to_contain_text(f"{steps_a:,} steps")
    open_tab(page, "crawler")
    panel_select(page, "crawler").select_option("B")
    open_tab(page, "training")
    expect(page.get_by_test_id("job-none")).to_be_visible()
    expect(page.get_by_test_id("info-trained")).to_have_text("0 steps · 0 tokens")


def test_counts_added_elsewhere_catch_up_on_every_card(page, app, tmp_path):
    """2. Items added by another process show at once in the Training tab's data card, its
    selected-model card, its hint and the Models tab's details, all the same numbers."""
    app.create("Counts", **TINY_SHAPE)
    ready(page, app, "Counts")
    open_tab(page, "training")
    expect(page.get_by_test_id("queue-summary")).to_have_text("0 items · 0 tokens")
    expect(page.get_by_test_id("run-hint")).to_contain_text("The training-data queue is empty")

    files = []
    for i in range(3):
        path = tmp_path / f"page{i}.txt"
        path.write_text(sample_text(2_000, seed=10 + i))
        files.append(str(path))
    cllm(app, "data", "add", "Counts", *files)
    q = model(app, "Counts")["queue"]
    shown = f"{q['items']} items · {q['tokens']:,} tokens"
    assert q["items"] == 3
    expect(page.get_by_test_id("queue-summary")).to_have_text(shown)
    expect(page.get_by_test_id("info-queue")).to_have_text(shown)
    expect(page.get_by_test_id("run-hint")).to_contain_text(f"Start trains on the {q['tokens']:,} tokens")
    open_tab(page, "models")
    expect(page.get_by_test_id("details-queue")).to_have_text(shown)

    # 8. The queue's search box shows its whole placeholder.
    open_tab(page, "training")
    room = page.get_by_test_id("queue-search").evaluate("""el => {
      const style = getComputedStyle(el);
      const ctx = document.createElement("canvas").getContext("2d");
      ctx.font = `${style.fontSize} ${style.fontFamily}`;
      const inner = el.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
      return inner - ctx.measureText(el.placeholder).width;
    }""")
    assert room >= 0, room


def test_steps_follow_a_running_job_and_stop_agrees_with_the_checkpoint(page, app):
    """2. While a job trains, the Models tab's Steps follow its checkpoints; after Stop the run's
    message and the hint name the same step."""
    app.create("Steps", **TINY_SHAPE)
    app.upload("Steps", {"s.txt": sample_text(20_000, seed=4).encode()})
    ready(page, app, "Steps")
    open_tab(page, "training")
    job = app.api("POST", "/api/models/Steps/train", {**TINY_SETTINGS, "target_epochs": 200,
                                                       "checkpoint_interval": 3}, expect_status=202)[1]
    progress = page.get_by_test_id("job-progress")
    expect(progress).to_have_attribute("data-state", "running", timeout=30_000)
    open_tab(page, "models")
    details_steps = page.get_by_test_id("details-steps")
    expect(details_steps).not_to_have_text("0", timeout=30_000)  # a checkpoint was written
    stop = app.api("POST", f"/api/jobs/{job['id']}/stop", {}, expect_status=200)[1]
    assert stop["state"] in ("stopping", "stopped")
    final = app.wait_job(job["id"])
    steps = model(app, "Steps")["steps_trained"]
    expect(details_steps).to_have_text(f"{steps:,}")
    open_tab(page, "training")
    expect(progress).to_have_attribute("data-state", final["state"])
    expect(page.get_by_test_id("job-message")).to_contain_text(f"step {final['detail']['step']}")
    expect(page.get_by_test_id("run-hint")).to_contain_text(f"(step {steps:,})")
    assert final["detail"]["step"] == steps


@pytest.fixture
def site():
    with CrawlSite(slow_seconds=3.0, wide=20) as s:
        yield s


def test_a_paused_crawl_reads_paused_and_a_finished_one_a_full_bar(page, app, site):
    """3. After Pause the card says Paused, as Past crawls does; a crawl that ran out of links
    before max_pages ends with a full bar."""
    app.create("Web", **TINY_SHAPE)
    ready(page, app, "Web")
    open_tab(page, "crawler")
    page.get_by_test_id("crawl-start-urls").fill(site.url("/wide/"))
    page.get_by_test_id("crawl-rate").fill("2")
    page.get_by_test_id("crawl-max_pages").fill("40")
    page.get_by_test_id("crawl-start").click()
    state = page.get_by_test_id("crawl-status").get_by_test_id("crawl-state")
    expect(state).to_have_attribute("data-state", "running", timeout=10_000)
    expect(page.get_by_test_id("crawl-count-fetched")).not_to_have_text("0", timeout=15_000)
    page.get_by_test_id("crawl-pause").click()
    expect(state).to_have_attribute("data-state", "paused", timeout=10_000)
    history = page.get_by_test_id("crawl-history-item").first.get_by_test_id("crawl-state")
    expect(history).to_have_attribute("data-state", "paused")
    crawl = app.api("GET", "/api/models/Web/crawls", expect_status=200)[1]["crawls"][0]
    assert crawl["state"] == "paused"
    expect(page.get_by_test_id("crawl-count-fetched")).to_have_text(f"{crawl['fetched']:,}")

    page.get_by_test_id("crawl-resume").click()
    expect(state).to_have_attribute("data-state", "done", timeout=30_000)
    done = app.api("GET", "/api/models/Web/crawls", expect_status=200)[1]["crawls"][0]
    assert done["state"] == "done" and done["requested"] < 40
    bar = page.locator('[data-testid="crawl-status"] [role="progressbar"]')
    expect(bar).to_have_attribute("aria-valuenow", "100.0")
    expect(page.get_by_test_id("crawl-pages")).to_have_text(f"{done['requested']} pages (of at most 40)")

    # 8. A long title and URL wrap inside their cell: nothing runs over Outcome, Reason, Tokens.
    cells = page.locator('[data-testid="crawl-urls-table"] td.path')
    expect(cells.first).to_be_visible()
    cells.first.evaluate("td => { td.textContent = 'A page title of many words '.repeat(12) + td.textContent; }")
    overflowing = cells.evaluate_all("tds => tds.filter((td) => td.scrollWidth > td.clientWidth + 1).length")
    assert overflowing == 0


def test_what_a_running_job_forbids_is_disabled_with_the_reason(page, app):
    """5. Rename, Delete and Add layers are not offered while a model trains; the details say
    why; they come back when the job ends."""
    app.create("Busy", **TINY_SHAPE)
    app.upload("Busy", {"b.txt": sample_text(20_000, seed=5).encode()})
    ready(page, app, "Busy")
    open_tab(page, "models")
    rename = page.get_by_test_id("rename-button")
    delete = page.get_by_test_id("delete-button")
    layers = page.get_by_test_id("add-layers-input")
    expect(rename).to_be_enabled()
    job = app.api("POST", "/api/models/Busy/train", {**TINY_SETTINGS, "target_epochs": 500}, expect_status=202)[1]
    expect(rename).to_be_disabled()
    expect(delete).to_be_disabled()
    expect(layers).to_be_disabled()
    reason = page.get_by_test_id("details-busy")
    expect(reason).to_contain_text(f"Busy is training (job #{job['id']}")
    expect(reason).to_contain_text("rename, delete and add layers wait until it ends or is stopped")
    assert "training" in delete.get_attribute("title")
    app.api("POST", f"/api/jobs/{job['id']}/stop", {}, expect_status=200)
    app.wait_job(job["id"])
    expect(rename).to_be_enabled()
    expect(delete).to_be_enabled()
    expect(layers).to_be_enabled()
    expect(reason).to_have_count(0)


@pytest.mark.parametrize("field,value,code_word", [("max_new_tokens", "100001", "max_new_tokens"),
                                                    ("temperature", "-1", "temperature")])
def test_a_refused_chat_message_keeps_its_error_and_leaves_no_empty_conversation(page, app, field, value, code_word):
    """6. A sampling setting out of range: the refusal stays under the chat, the message stays
    in the box, and no empty conversation is left behind."""
    app.create("Talk", **TINY_SHAPE)
    ready(page, app, "Talk")
    open_tab(page, "llm")
    page.get_by_test_id(f"sampling-{field}").fill(value)
    page.get_by_test_id("chat-input").fill("hello there")
    page.get_by_test_id("chat-send").click()
    error = page.get_by_test_id("chat-error")
    expect(error).to_contain_text(re.compile(code_word, re.I))
    expect(page.get_by_test_id("chat-input")).to_have_value("hello there")
    expect(page.get_by_test_id("conversation-item")).to_have_count(0)
    listing = app.api("GET", "/api/models/Talk/conversations", expect_status=200)[1]
    assert listing["conversations"] == []
    expect(error).to_contain_text(re.compile(code_word, re.I))  # still there once everything has settled


def test_deleting_the_selected_model_selects_the_next(page, app):
    """7. Delete the selected model: every tab goes on with the next model in the list."""
    for name in ("m1", "m2", "m3"):
        app.create(name, **TINY_SHAPE)
    ready(page, app, "m2")
    open_tab(page, "models")
    expect(page.get_by_test_id("details-name")).to_have_text("m2")
    page.get_by_test_id("delete-button").click()
    page.get_by_role("button", name="Move to trash").click()
    expect(page.get_by_test_id("details-name")).to_have_text("m3")
    for tab in ("training", "crawler", "llm"):
        open_tab(page, tab)
        expect(panel_select(page, tab)).to_have_value("m3")
    assert app.api("GET", "/api/settings", expect_status=200)[1]["selected_model"] == "m3"


def test_a_crawl_a_training_and_an_ingest_at_once_end_with_every_tab_equal_to_the_api(page, app, site, tmp_path):
    """Three jobs at once, on three models, while the window watches: at the end every tab's
    numbers equal the API's, without a reload."""
    for name in ("Crawl", "Train", "Ingest"):
        app.create(name, **TINY_SHAPE)
    app.upload("Train", {"t.txt": sample_text(6_000, seed=8).encode()})
    ready(page, app, "Train")
    open_tab(page, "training")

    crawl = app.api("POST", "/api/models/Crawl/crawls",
                    {"start_urls": [site.url("/wide/")], "rate": 0, "max_depth": 1, "max_pages": 10},
                    expect_status=202)[1]
    job = app.api("POST", "/api/models/Train/train", {**TINY_SETTINGS, "target_epochs": 2}, expect_status=202)[1]
    files = []
    for i in range(4):
        path = tmp_path / f"in{i}.txt"
        path.write_text(sample_text(3_000, seed=20 + i))
        files.append(str(path))
    ingest = app.api("POST", "/api/models/Ingest/queue/files", {"paths": files}, expect_status=202)[1]
    for j in (job, ingest):
        assert app.wait_job(j["id"], timeout=120)["state"] == "done"
    crawl_job = app.wait_job(crawl["job_id"], timeout=120)
    assert crawl_job["state"] == "done"

    models = {m["model_name"]: m for m in app.api("GET", "/api/models", expect_status=200)[1]["models"]}
    train = models["Train"]
    expect(page.get_by_test_id("job-progress")).to_have_attribute("data-state", "done")
    expect(page.get_by_test_id("info-epochs")).to_have_text(f"{train['epochs_trained']} trained of {train['target_epochs']} target")
    expect(page.get_by_test_id("info-trained")).to_have_text(f"{train['steps_trained']:,} steps · {train['tokens_trained']:,} tokens")
    jobs = page.get_by_test_id("jobs")
    expect(jobs).not_to_contain_text("Ingest")  # the Jobs list holds no job that has ended
    for name, m in models.items():
        shown = counted(m["queue"])
        panel_select(page, "training").select_option(name)
        expect(page.get_by_test_id("info-queue")).to_have_text(shown)
        expect(page.get_by_test_id("queue-summary")).to_have_text(shown)
    open_tab(page, "models")
    for name, m in models.items():
        row = page.locator(f'#panel-models tr[data-model="{name}"]')
        expect(row).to_contain_text(f"{m['queue']['items']}")
        page.locator(f'#panel-models tr[data-model="{name}"]').click()
        expect(page.get_by_test_id("details-name")).to_have_text(name)
        expect(page.get_by_test_id("details-queue")).to_have_text(counted(m["queue"]))
        expect(page.get_by_test_id("details-epochs")).to_have_text(f"{m['epochs_trained']} trained of {m['target_epochs']} target")
    open_tab(page, "crawler")
    panel_select(page, "crawler").select_option("Crawl")
    final = app.api("GET", f"/api/crawls/{crawl['id']}", expect_status=200)[1]
    for key in ("fetched", "skipped", "failed", "queued", "tokens"):
        expect(page.get_by_test_id(f"crawl-count-{key}")).to_have_text(f"{final[key]:,}")


def test_small_slips_say_what_is_wrong_once_and_where(page, app):
    """8. A long name is refused with its length, not cut; a backslash reads as one; a refused
    name is said once; a refusal of Start leaves once its field is fixed; an empty number is
    flagged on its field; a target of 0 reads as reached against 0."""
    app.create("Slips", **TINY_SHAPE)
    ready(page, app, "Slips")
    open_tab(page, "models")
    name = page.get_by_test_id("create-name")
    message = page.get_by_test_id("create-name-message")
    name.fill("x" * 70)
    expect(message).to_contain_text("The name is 70 characters long")
    assert len(name.input_value()) == 70
    name.fill("a\\b")
    expect(message).to_contain_text("The name contains '\\'.")
    name.press("Enter")
    expect(page.get_by_test_id("create-error")).to_have_text("")
    expect(page.get_by_text("The name contains '\\'.")).to_have_count(1)

    open_tab(page, "training")
    seq = page.get_by_test_id("training-sequence_length")
    expect(seq).to_have_value("16")
    seq.fill("64")
    app.upload("Slips", {"s.txt": sample_text(2_000, seed=2).encode()})
    page.get_by_test_id("training-start").click()
    run_error = page.get_by_test_id("run-error")
    expect(run_error).to_contain_text("sequence_length (64) cannot exceed the model's block_size (16)")
    expect(seq).to_have_attribute("aria-invalid", "true")
    seq.fill("16")
    expect(run_error).to_have_text("")

    lr = page.get_by_test_id("training-learning_rate")
    lr.fill("")
    expect(page.get_by_test_id("training-error")).to_have_text("learning_rate needs a number.")
    expect(page.get_by_test_id("training-save")).to_be_disabled()
    expect(lr).to_have_attribute("aria-invalid", "true")
    lr.fill("0.001")

    target = page.get_by_test_id("training-target_epochs")
    target.fill("0")
    expect(page.get_by_test_id("target-reached")).to_contain_text("The target is reached: 0 of 0 target epochs trained.")
