"""The loss charts as files: Save PNG and Save CSV on the Training tab's chart and on the Research
tab's Compare chart download the picture at its drawn size on an opaque background, and every
loss point as the API gives it; in the desktop window the native save dialog gets the file."""

import base64
import csv
import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from urllib.parse import quote

import pytest
from e2e_support import TINY_SHAPE, fake_desktop_bridge, open_tab, open_training, sample_text
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

NAME = "Kurve Ü 2"  # a space and a letter beyond ASCII, in the file names too
HEADER = ["step", "epoch", "train_loss", "val_loss", "learning_rate", "tokens_per_sec", "time"]
PANEL_JS = """() => {
  const probe = document.createElement("span");
  probe.style.color = "var(--panel)";
  document.body.append(probe);
  const color = getComputedStyle(probe).color;
  probe.remove();
  return color.match(/\\d+/g).slice(0, 3).map(Number);
}"""


def _train(app, tmp_path, name: str) -> None:
    """Train a tiny model for an epoch with the CLI: loss points, some with a validation loss."""
    app.create(name, **TINY_SHAPE)
    text = tmp_path / "book.txt"
    text.write_text(sample_text(3000, seed=4))
    env = {**os.environ, "CLLM_HOME": str(app.home)}
    for args in (("data", "add", name, str(text)),
                 ("train", name, "--epochs", "1", "--batch-size", "2", "--context", "16",
                  "--eval-interval", "10", "--checkpoint-interval", "50")):
        done = subprocess.run([sys.executable, "-m", "cllm_app", *args], env=env, capture_output=True, text=True,
                              timeout=180)
        assert done.returncode == 0, done.stderr


def _history_rows(app, name: str) -> list[list[str]]:
    """The JSON history's points as the CSV's cells should read (an empty cell for null)."""
    points = app.api("GET", f"/api/models/{quote(name)}/loss-history", expect_status=200)[1]["points"]
    assert points, "no loss points to save"
    return [["" if p[c] is None else str(p[c]) for c in HEADER] for p in points]


def _png(data: bytes) -> tuple[int, int, tuple[int, ...]]:
    """A PNG's width, height and top-left pixel (its first row's first pixel is stored as it
    is, whatever the row's filter: there is nothing left of it or above it to predict from)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height, depth, color_type = struct.unpack(">IIBB", data[16:26])
    assert depth == 8 and color_type in (2, 6), (depth, color_type)
    idat, pos = b"", 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        if data[pos + 4:pos + 8] == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    channels = 4 if color_type == 6 else 3
    raw = zlib.decompressobj().decompress(idat, 1 + channels)
    return width, height, tuple(raw[1:1 + channels])


def _download(page, testid: str):
    button = page.get_by_test_id(testid)
    expect(button).to_be_enabled()
    with page.expect_download() as info:
        button.click()
    download = info.value
    return download.suggested_filename, Path(download.path()).read_bytes()


def _opaque_panel(page, pixel) -> None:
    """The picture's corner (no line or label drawn there) is the theme's panel colour, opaque."""
    assert list(pixel[:3]) == page.evaluate(PANEL_JS)
    assert len(pixel) == 3 or pixel[3] == 255


def test_training_chart_saves_png_and_csv(page, app, tmp_path):
    app.create("Untrained", **TINY_SHAPE)
    open_training(page, app, "Untrained")
    # nothing to save before a model has loss points
    expect(page.get_by_test_id("chart-save-png")).to_be_disabled()
    expect(page.get_by_test_id("chart-save-csv")).to_be_disabled()

    _train(app, tmp_path, NAME)
    open_training(page, app, NAME)
    rows = _history_rows(app, NAME)
    chart = page.get_by_test_id("loss-chart")
    expect(chart).to_have_attribute("data-points", str(len(rows)))

    filename, data = _download(page, "chart-save-png")
    assert filename == f"{NAME}-loss-chart.png"
    width, height, corner = _png(data)
    assert [width, height] == chart.locator("canvas").evaluate("c => [c.width, c.height]")
    assert width > 100 and height > 100
    _opaque_panel(page, corner)

    filename, data = _download(page, "chart-save-csv")
    assert filename == f"{NAME}-loss-history.csv"
    saved = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    assert saved[0] == HEADER
    assert saved[1:] == rows
    assert any(r[3] == "" for r in rows) and any(r[3] != "" for r in rows)  # validation on some steps only


def _compare(page, names: list[str]) -> None:
    open_tab(page, "research")
    page.get_by_test_id("research-view-compare").click()
    picks = page.get_by_test_id("compare-pick")
    expect(picks).to_have_count(len(names))
    for box in picks.all():
        box.check()
    page.get_by_test_id("compare-run").click()
    expect(page.get_by_test_id("compare-chart")).to_have_attribute("data-series", str(2 * len(names)))


def test_research_compare_chart_saves_png_and_csv(page, app, tmp_path):
    expect(page.get_by_test_id("research-save-png")).to_be_disabled()  # nothing compared yet
    expect(page.get_by_test_id("research-save-csv")).to_be_disabled()
    _train(app, tmp_path, NAME)
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    _compare(page, [NAME])
    svg = page.get_by_test_id("compare-chart").locator("svg")
    drawn = svg.evaluate("s => [s.width.baseVal.value, s.height.baseVal.value, window.devicePixelRatio]")

    filename, data = _download(page, "research-save-png")
    assert filename == f"{NAME}-loss-chart.png"
    width, height, corner = _png(data)
    assert width == round(drawn[0] * drawn[2])
    assert height > drawn[1] * drawn[2]  # the chart, and its legend under it
    _opaque_panel(page, corner)

    filename, data = _download(page, "research-save-csv")
    assert filename == f"{NAME}-loss-history.csv"
    saved = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    assert saved[0] == HEADER
    assert saved[1:] == _history_rows(app, NAME)

    # two models compared: one file, the model's name first on every row
    app.api("POST", f"/api/models/{quote(NAME)}/duplicate", {"model_name": "Copy"}, expect_status=201)
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    _compare(page, ["Copy", NAME])
    order = page.get_by_test_id("compare-legend").locator("li").all_text_contents()[:2]  # as the chart has them
    assert sorted(order) == ["Copy", NAME]
    filename, data = _download(page, "research-save-csv")
    assert filename == f"{order[0]} vs {order[1]}-loss-history.csv"
    saved = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    assert saved[0] == ["model_name", *HEADER]
    assert saved[1:] == [[name, *r] for name in order for r in _history_rows(app, name)]
    filename, data = _download(page, "research-save-png")
    assert filename == f"{order[0]} vs {order[1]}-loss-chart.png"
    assert _png(data)[0] == round(drawn[2] * svg.evaluate("s => s.width.baseVal.value"))


FAKE_SAVE_DIALOG = fake_desktop_bridge(
    save_file="async (name, data) => { (window.__saved = window.__saved || []).push({ name, data }); "
              "return '/home/someone/' + name; }")


def test_the_desktop_window_saves_through_its_dialog(context, app, tmp_path):
    """The window allows no downloads: the chart's files go to the bridge's save dialog."""
    _train(app, tmp_path, NAME)
    app.api("PUT", "/api/settings", {"selected_model": NAME}, expect_status=200)
    context.add_init_script(FAKE_SAVE_DIALOG)
    page = context.new_page()
    downloads = []
    page.on("download", lambda d: downloads.append(d))
    page.goto(app.url)
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    open_tab(page, "training")
    expect(page.get_by_test_id("loss-chart")).not_to_have_attribute("data-points", "0")

    for kind in ("png", "csv"):
        page.get_by_test_id(f"chart-save-{kind}").click()
        expect(page.get_by_test_id("toast").filter(has_text=f"Saved /home/someone/{NAME}")).to_have_count(
            1 if kind == "png" else 2)
    saved = page.evaluate("window.__saved")
    assert [s["name"] for s in saved] == [f"{NAME}-loss-chart.png", f"{NAME}-loss-history.csv"]
    assert base64.b64decode(saved[0]["data"])[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.reader(io.StringIO(base64.b64decode(saved[1]["data"]).decode("utf-8"))))
    assert rows[1:] == _history_rows(app, NAME)
    assert downloads == []
