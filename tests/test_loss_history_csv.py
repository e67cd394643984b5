"""GET /api/models/<name>/loss-history.csv: every loss point as a file to save, the same values
as the JSON history, named after the model whatever letters its name holds."""

import csv
import io
from datetime import datetime, timedelta
from urllib.parse import quote

import pytest

from cllm_app.store import LanguageModel, LossPoint

HEADER = ["step", "epoch", "train_loss", "val_loss", "learning_rate", "tokens_per_sec", "time"]
START = datetime(2024, 5, 1, 12, 0, 0)  # the store keeps UTC without a zone


def _model(studio, name: str, points: list[tuple]) -> LanguageModel:
    """A model with loss points (step, epoch, train, val, lr, tokens/s), one second apart."""
    row = LanguageModel.get_by_id(studio.models.create(name, n_layer=1, n_head=2, n_embd=16, block_size=16)["id"])
    for i, (step, epoch, train, val, lr, tps) in enumerate(points):
        LossPoint.create(model=row, step=step, epoch=epoch, train_loss=train, val_loss=val, learning_rate=lr,
                         tokens_per_sec=tps, created_at=START + timedelta(seconds=i, microseconds=250_000))
    return row


def _csv(answer) -> list[list[str]]:
    return list(csv.reader(io.StringIO(answer.get_data(as_text=True))))


def _cell(value) -> str:
    return "" if value is None else str(value)


def test_the_csv_holds_every_point_as_the_history_gives_it(client, studio):
    points = [
        (3, 0.375, 3.5, None, 2.5e-4, 1234.5),  # written out of order: the file is by step
        (1, 0.125, 5.25, None, 1e-4, None),
        (2, 0.25, 4.0, 4.5, None, 980.0),
        (4, 0.5, None, 3.875, 3e-4, 1500.25),
    ]
    row = _model(studio, "plotted", points)
    answer = client.get("/api/models/plotted/loss-history.csv")
    assert answer.status_code == 200
    assert answer.mimetype == "text/csv"
    assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = _csv(answer)
    assert rows[0] == HEADER
    stored = list(row.loss_history.order_by(LossPoint.step))
    assert [int(r[0]) for r in rows[1:]] == [p.step for p in stored] == [1, 2, 3, 4]
    for r, p in zip(rows[1:], stored, strict=True):
        assert float(r[1]) == p.epoch
        for cell, value in zip(r[2:6], (p.train_loss, p.val_loss, p.learning_rate, p.tokens_per_sec), strict=True):
            assert cell == ("" if value is None else repr(value))  # no value: an empty cell, not "None"
    assert rows[1][3] == "" and rows[1][5] == "" and rows[4][2] == ""
    assert rows[1][6] == "2024-05-01T12:00:01.250Z"  # step 1 was written second

    # the same values, cell for cell, as the JSON history (which the chart draws)
    history = client.get("/api/models/plotted/loss-history").get_json()["points"]
    assert rows[1:] == [[_cell(p[c]) for c in HEADER] for p in history]


def test_a_model_without_points_is_a_header_only(client, studio):
    _model(studio, "untrained", [])
    answer = client.get("/api/models/untrained/loss-history.csv")
    assert answer.status_code == 200
    assert answer.get_data(as_text=True) == ",".join(HEADER) + "\r\n"


@pytest.mark.parametrize("name, ascii_name", [
    ("My Model 2", None),
    ("Grüße Ω.v2", "Grue .v2"),  # the letters with an ASCII base keep it, the rest go
])
def test_the_file_is_named_after_the_model(client, studio, name, ascii_name):
    _model(studio, name, [(1, 0.1, 4.0, None, None, None)])
    answer = client.get(f"/api/models/{quote(name)}/loss-history.csv")
    assert answer.status_code == 200
    disposition = answer.headers["Content-Disposition"]
    filename = f"{name}-loss-history.csv"
    if ascii_name is None:
        assert disposition == f'attachment; filename="{filename}"'
    else:
        # RFC 6266: an ASCII stand-in for old clients, and the real name percent-encoded in UTF-8
        assert disposition == (f'attachment; filename="{ascii_name}-loss-history.csv"; '
                               f"filename*=UTF-8''{quote(filename)}")
    # asked for by another spelling (names are told apart without case), named as the model is
    other = client.get(f"/api/models/{quote(name.upper())}/loss-history.csv")
    assert other.headers["Content-Disposition"] == disposition


def test_an_unknown_model_is_a_json_404(client):
    answer = client.get("/api/models/nobody/loss-history.csv")
    assert answer.status_code == 404
    assert answer.mimetype == "application/json"
    assert answer.get_json()["error"]["code"] == "model_not_found"


def test_the_description_says_it_answers_csv(client):
    spec = client.get("/api/openapi.json").get_json()
    ok = spec["paths"]["/api/models/{model_name}/loss-history.csv"]["get"]["responses"]["200"]
    assert list(ok["content"]) == ["text/csv"]


# The desktop window allows no downloads: its bridge's save_file puts the file where the
# person chooses in a native save dialog (a stand-in for pywebview's window here, no Qt needed).


class FakeWindow:
    def __init__(self, answer):
        self.answer = answer
        self.calls = []

    def create_file_dialog(self, dialog_type, directory="", allow_multiple=False, save_filename="", file_types=()):
        self.calls.append({"dialog_type": dialog_type, "save_filename": save_filename, "file_types": tuple(file_types)})
        return self.answer


def test_the_window_saves_a_file_where_the_person_chooses(studio, monkeypatch, tmp_path):
    import base64

    import webview
    from webview.util import parse_file_type

    from cllm_app.desktop.bridge import Bridge

    window = FakeWindow(None)
    monkeypatch.setattr(webview, "windows", [window])
    bridge = Bridge(studio)
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    data = base64.b64encode(png).decode()
    assert bridge.save_file("Grüße-loss-chart.png", data) is None  # cancelled: nothing written
    call = window.calls[-1]
    assert call["dialog_type"] == webview.FileDialog.SAVE
    assert call["save_filename"] == "Grüße-loss-chart.png"
    assert call["file_types"] == ("PNG files (*.png)", "All files (*.*)")
    for file_type in call["file_types"]:
        parse_file_type(file_type)  # what pywebview checks before opening the dialog

    target = tmp_path / "chosen" / "chart.png"
    target.parent.mkdir()
    window.answer = (str(target),)
    assert bridge.save_file("Grüße-loss-chart.png", data) == str(target)
    assert target.read_bytes() == png
    window.answer = str(target)  # some platforms answer a string
    assert bridge.save_file("../../elsewhere/x.csv", base64.b64encode(b"step\r\n").decode()) == str(target)
    assert window.calls[-1]["save_filename"] == "x.csv"  # a name, never a path the page picks
    assert target.read_bytes() == b"step\r\n"

    assert bridge.save_file("a.png", "not base64!")["error"]["code"] == "invalid_input"
    assert bridge.save_file(None, data)["error"]["code"] == "invalid_input"
    monkeypatch.setattr(webview, "windows", [])
    assert bridge.save_file("a.png", data)["error"]["code"] == "no_window"
