"""Raising a reached target in the Training tab says the added epochs would train at the
learning rate's floor, and offers a new warmup-and-decay cycle; Continue sends the choice."""

import os
import subprocess
import sys

import pytest
from e2e_support import TINY_SHAPE, eventually, open_training, sample_text
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_raising_a_reached_target_offers_a_new_cycle(page, app, tmp_path):
    app.create("Cycler", **TINY_SHAPE)
    text = tmp_path / "book.txt"
    text.write_text(sample_text(3000, seed=4))
    env = {**os.environ, "CLLM_HOME": str(app.home)}
    for args in (("data", "add", "Cycler", str(text)),
                 ("train", "Cycler", "--epochs", "1", "--batch-size", "2", "--context", "16",
                  "--warmup-steps", "2", "--eval-interval", "50", "--checkpoint-interval", "50")):
        done = subprocess.run([sys.executable, "-m", "cllm_app", *args], env=env, capture_output=True, text=True,
                              timeout=180)
        assert done.returncode == 0, done.stderr
    open_training(page, app, "Cycler")
    panel = page.locator("#panel-training")
    expect(page.get_by_test_id("target-reached")).to_be_visible()
    note = page.get_by_test_id("new-cycle-note")
    expect(note).to_be_hidden()

    panel.get_by_label("target_epochs", exact=True).fill("3")
    expect(note).to_be_visible()
    expect(note).to_contain_text("ended its decay at its floor")
    expect(note).to_contain_text("the added epochs train at the floor unless a new cycle starts")
    page.get_by_test_id("new-cycle").check()
    page.get_by_test_id("training-continue").click()

    def cycle_job():
        jobs = app.api("GET", "/api/jobs?model_name=Cycler", expect_status=200)[1]["jobs"]
        return jobs and jobs[0]["params"].get("new_cycle") is True

    eventually(cycle_job, timeout=20)
    assert app.api("GET", "/api/models/Cycler", expect_status=200)[1]["target_epochs"] == 3
