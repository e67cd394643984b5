"""The training settings are declared once (cllm_app/training_settings.py) and every floor reads
that declaration: the store's columns, the checks, the trainer, the CLI, the API's schema and
the form (GET /api/training-settings). Adding a setting is one line there."""

import json
import sqlite3
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner

from cllm_app import training_settings
from cllm_app.cli import cli
from cllm_app.engine.trainer import TrainSettings
from cllm_app.errors import InvalidInput
from cllm_app.services.studio import Studio
from cllm_app.store import LanguageModel

NAMES = [s.name for s in training_settings.SETTINGS]


def test_the_trainer_the_store_and_the_api_have_every_setting(studio, client):
    trainer = {f.name: f.default for f in fields(TrainSettings)}
    assert {n: trainer[n] for n in NAMES} == training_settings.DEFAULTS
    for s in training_settings.SETTINGS:
        column = LanguageModel._meta.fields[s.name]
        assert column.field_type == {int: "INT", float: "FLOAT", str: "VARCHAR"}[s.type]
    columns = {row[1] for row in studio.database.execute_sql("PRAGMA table_info(models)")}
    assert set(NAMES) <= columns

    listed = client.get("/api/training-settings").get_json()["settings"]
    assert listed == [s.as_json() for s in training_settings.SETTINGS]
    body = client.get("/api/openapi.json").get_json()["paths"]["/api/models/{model_name}"]["patch"]
    schema = body["requestBody"]["content"]["application/json"]["schema"]["properties"]
    for s in training_settings.SETTINGS:
        if s.type is str:
            assert (schema[s.name]["enum"], schema[s.name]["description"]) == (list(s.choices), s.help)
            continue
        low = "exclusiveMinimum" if s.exclusive_minimum else "minimum"
        assert (schema[s.name][low], schema[s.name]["maximum"], schema[s.name]["description"]) == (
            s.minimum, s.maximum, s.help)

    made = client.post("/api/models", json={"model_name": "m", "block_size": 64}).get_json()
    assert {n: made[n] for n in NAMES} == training_settings.defaults_for(64)


@pytest.mark.parametrize("command", [["models", "create"], ["models", "set"], ["train"]])
def test_the_cli_offers_every_setting_with_its_range(command):
    text = CliRunner().invoke(cli, [*command, "--help"], terminal_width=200).output
    for s in training_settings.SETTINGS:
        assert s.flag in text and s.help in text
    assert "(1 to 1,024; default 8)" in text  # batch_size's range, from the declaration


def test_every_bound_is_enforced_at_its_edge(studio):
    studio.models.create("m", block_size=8192)
    for s in training_settings.SETTINGS:
        if s.type is str:
            for choice in s.choices:
                studio.models.configure("m", **{s.name: choice})
            for bad in ("quantum", "", 3, None):
                with pytest.raises(InvalidInput) as refused:
                    studio.models.configure("m", **{s.name: bad})
                assert refused.value.code == f"invalid_{s.name}"
            continue
        step = 1 if s.type is int else 1e-9
        studio.models.configure("m", **{s.name: s.maximum})
        if not s.exclusive_minimum:
            studio.models.configure("m", **{s.name: s.minimum})
        if s.name == "target_epochs":
            continue  # its floor is epochs_trained, checked on its own
        below = s.minimum if s.exclusive_minimum else s.minimum - step
        for bad in (below, s.maximum + step):
            with pytest.raises(InvalidInput) as refused:
                studio.models.configure("m", **{s.name: bad})
            assert refused.value.code == f"invalid_{s.name}"


def test_a_data_root_missing_a_setting_s_column_gets_it_with_the_default(home):
    studio = Studio(home)
    studio.models.create("m", seed=7, batch_size=4)
    db_path = studio.root.db_path
    studio.close()
    with sqlite3.connect(db_path) as con:  # as if `seed` had been added in a later version
        con.execute("ALTER TABLE models DROP COLUMN seed")
    studio = Studio(home)
    shown = studio.models.show("m")
    studio.close()
    assert shown["seed"] == training_settings.DEFAULTS["seed"] and shown["batch_size"] == 4


ONE_MORE_LINE = '''    Setting("label_smoothing", float, 0.0, 0.0, 0.5, "probability moved to the other tokens", "--label-smoothing"),\n'''


def test_a_new_setting_is_one_line(tmp_path):
    """Add one line to the declaration (in a separate interpreter) and the new setting is stored,
    checked, shown, offered by the CLI, described by the API and handed to the trainer."""
    source = Path(training_settings.__file__).read_text()
    anchor = source.index("    Setting(\"seed\"")
    changed = source[:anchor] + ONE_MORE_LINE + source[anchor:]
    script = f'''
import importlib.util, json, sys
spec = importlib.util.spec_from_loader("cllm_app.training_settings", loader=None)
module = importlib.util.module_from_spec(spec)
exec(compile({changed!r}, "training_settings.py", "exec"), module.__dict__)
sys.modules["cllm_app.training_settings"] = module
from click.testing import CliRunner
from cllm_app.api import create_app
from cllm_app.cli import cli
from cllm_app.jobs.train import settings_of
from cllm_app.services.studio import Studio
from cllm_app.store import LanguageModel
out = {{}}
studio = Studio({str(tmp_path / "home")!r})
app = create_app(studio, "s", allowed_hosts={{"127.0.0.1:1"}})
app.config["SERVER_NAME"] = "127.0.0.1:1"
client = app.test_client()
client.environ_base.update(HTTP_X_CLLM_TOKEN="s")
made = client.post("/api/models", json={{"model_name": "m", "label_smoothing": 0.1}})
out["created"] = made.status_code, made.get_json().get("label_smoothing")
bad = client.patch("/api/models/m", json={{"label_smoothing": 0.9}})
out["refused"] = bad.status_code, bad.get_json()["error"]["code"]
out["listed"] = [s["name"] for s in client.get("/api/training-settings").get_json()["settings"]]
out["trainer"] = settings_of(LanguageModel.get(LanguageModel.model_name == "m")).label_smoothing
out["cli"] = "--label-smoothing" in CliRunner().invoke(cli, ["models", "set", "--help"]).output
studio.close()
print(json.dumps(out))
'''
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["created"] == [201, 0.1]
    assert out["refused"] == [400, "invalid_label_smoothing"]
    assert out["listed"][out["listed"].index("seed") - 1] == "label_smoothing"
    assert out["trainer"] == 0.1 and out["cli"] is True
