"""The recipe chooser: a proposal fitted to the minutes and the queue, from this machine's
measured speed, with its reasons; applied before a model trains (shape and tokenizer too), only
batch, context and learning rate once it has."""

import io
import os
import re
import subprocess
import sys

import pytest

from cllm_app.services import recipe
from cllm_app.services.recipe import expected_loss
from cllm_app.store import LanguageModel

SMALL = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}


@pytest.fixture(autouse=True)
def few_candidates(monkeypatch):
    # Timing every shape costs seconds: three small ones show the choosing.
    monkeypatch.setattr(recipe, "CANDIDATES", ((1, 2, 32), (2, 2, 64), (2, 4, 96)))


def _queue(studio, name, n_bytes):
    studio.models.create(name, **SMALL)
    words = b"the river ran past the mill and under the old stone bridge to the sea while "
    studio.queue.add_stream(name, io.BytesIO((words * (n_bytes // len(words) + 1))[:n_bytes]), "text.txt")


def test_the_expected_loss_falls_with_parameters_and_tokens_and_repeats_count_less():
    assert expected_loss(2e6, 1e7, 1e9) < expected_loss(1e6, 1e7, 1e9)
    assert expected_loss(1e6, 2e7, 1e9) < expected_loss(1e6, 1e7, 1e9)
    fresh, repeated = expected_loss(1e6, 4e7, 1e9), expected_loss(1e6, 4e7, 1e6)
    assert repeated > fresh  # forty passes over a million tokens teach less than forty million new ones


def test_a_proposal_is_measured_fitted_and_explained(studio):
    _queue(studio, "m", 60_000)
    p = studio.recipes.propose("m", 2)
    assert p["applies_shape"] and p["tokenizer"] == {"tokenizer": "byte", "vocab_size": 257}  # 60 KB: bytes
    assert {c["n_embd"] for c in p["candidates"]} == {32, 64, 96}
    chosen = min(p["candidates"], key=lambda c: c["expected_loss"])
    assert p["shape"]["n_embd"] == chosen["n_embd"] and all(c["tokens_per_sec"] > 0 for c in p["candidates"])
    assert p["settings"]["minutes"] == 2 and p["expected"]["tokens"] == chosen["tokens"]
    assert any("tokens/s" in line for line in p["why"])
    speeds = studio.root.path / recipe.CACHE_FILE
    assert speeds.exists()  # measured once per CPU and kernel build, kept


def test_apply_sets_shape_tokenizer_and_settings_before_training_and_the_cli_trains_for_the_minutes(studio, home):
    _queue(studio, "m", 40_000)
    env = {**os.environ, "CLLM_HOME": str(home)}
    p = subprocess.run([sys.executable, "-m", "cllm_app", "train", "m", "--minutes", "0.05", "--eval-interval", "5"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "recipe for 0.05 minutes:" in p.stdout and "tokens/s" in p.stdout
    shown = studio.models.show("m")
    assert shown["minutes"] == 0.05 and shown["eval_interval"] == 5  # the option given wins over the recipe
    width = int(re.search(r"width (\d+)", p.stdout).group(1))  # the subprocess weighs every candidate
    assert shown["n_embd"] == width and shown["steps_trained"] > 0
    # trained: the shape stays, only what can change is proposed, and nothing is applied
    p2 = studio.recipes.propose("m", 1)
    assert p2["shape"] is None and p2["tokenizer"] is None and "has trained" in p2["why"][0]


def test_keep_shape_keeps_the_shape(studio):
    _queue(studio, "k", 20_000)
    p = studio.recipes.apply("k", 1, keep_shape=True)
    shown = studio.models.show("k")
    assert p["shape"] is None and (shown["n_layer"], shown["n_embd"]) == (1, 16)
    assert shown["sequence_length"] <= 16 and shown["minutes"] == 1


def test_refusals(studio, client):
    studio.models.create("empty", **SMALL)
    r = client.get("/api/models/empty/recipe?minutes=10")
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "empty_queue"
    _queue(studio, "m", 5_000)
    for query, code in (("minutes=abc", "invalid_minutes"), ("minutes=0", "invalid_minutes"),
                        ("minutes=5&keep_shape=maybe", "invalid_keep_shape")):
        r = client.get(f"/api/models/m/recipe?{query}")
        assert r.status_code == 400 and r.get_json()["error"]["code"] == code, (query, r.get_json())
    r = client.post("/api/models/m/recipe", json={"minutes": "ten"})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_minutes"
    assert client.get("/api/models/nope/recipe?minutes=1").status_code == 404


def test_a_model_that_never_trained_may_get_fewer_layers_from_the_chooser_a_trained_one_never(studio, monkeypatch):
    from cllm_app.errors import InvalidInput

    monkeypatch.setattr(recipe, "CANDIDATES", ((2, 2, 64),))
    studio.models.create("deep", n_layer=4, n_head=2, n_embd=16, block_size=16)
    studio.queue.add_stream("deep", io.BytesIO(b"the river ran past the mill " * 400), "t.txt")
    studio.recipes.apply("deep", 1)
    assert (studio.models.show("deep")["n_layer"], studio.models.show("deep")["n_embd"]) == (2, 64)
    studio.models.configure("deep", n_layer=3)  # and layers still only grow by hand
    with pytest.raises(InvalidInput) as e:
        studio.models.configure("deep", n_layer=2)
    assert e.value.code == "layer_reduction"
    LanguageModel.update(steps_trained=5).where(LanguageModel.model_name == "deep").execute()
    with pytest.raises(InvalidInput) as e:
        studio.models.reshape_untrained("deep", n_layer=2)
    assert e.value.code == "shape_locked"
