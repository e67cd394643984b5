// The live loss chart of the Training tab: train loss (raw and EMA-smoothed) and validation
// loss on a <canvas>, by step or by time, linear or log y, with vertical markers for events
// (training resumed, layers added, data added, engine changed) and a legend.
//
// Drawn with plain canvas calls. Every colour comes from the theme's CSS variables (resolved
// through a hidden probe element, so any CSS colour a theme writes works) and the chart is
// drawn again when the theme or the size of the window changes.
//
//   const chart = createLossChart(container);
//   chart.update({ points, markers });   // the shape of GET /api/models/<name>/loss-history
//   chart.clear();
//
// The chart element tells tests what it shows: data-points (train points), data-val-points,
// data-markers and data-marker-kinds.
//
// With `modelName` (a function: the model shown, or null) its toolbar has Save PNG (the canvas
// as drawn, on the theme's panel colour) and Save CSV (GET /api/models/<name>/loss-history.csv);
// createSaveButtons() and lossHistoryCsv() serve the Research tab's chart as well.

import * as api from "../api.js";
import { saveFile } from "../bridge.js";
import { formatInt, h, toast, toastError } from "../ui.js";

const PREFS_KEY = "cllm-loss-chart";
const MARKERS = {
  training_resumed: { label: "Training resumed", cls: "resumed" },
  layers_grown: { label: "Layers added", cls: "layers" },
  data_added: { label: "Data added", cls: "data" },
  engine_changed: { label: "Engine changed", cls: "engine" },
  trained_outside: { label: "Trained outside the app", cls: "engine" },
  new_cycle: { label: "New learning-rate cycle", cls: "resumed" },
};
const COLOR_VARS = {
  train: "--_chart-train",
  val: "--_chart-val",
  grid: "--_chart-grid",
  axis: "--_chart-axis",
  text: "--text",
  panel: "--panel",
  resumed: "--_chart-resumed",
  layers: "--_chart-layers",
  data: "--_chart-data",
  engine: "--_chart-engine",
};
// markers placed at the step they name rather than at their time
const STEP_MARKERS = new Set(["training_resumed", "engine_changed", "trained_outside", "new_cycle"]);
const TIME_STEPS = [
  1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800,
].map((s) => s * 1000);

function loadPrefs() {
  const prefs = { smoothing: 0.6, log: false, x: "step" };
  try {
    Object.assign(prefs, JSON.parse(localStorage.getItem(PREFS_KEY) || "{}"));
  } catch {
    /* no storage or a bad value: the defaults */
  }
  prefs.smoothing = Math.min(0.99, Math.max(0, Number(prefs.smoothing) || 0));
  prefs.log = Boolean(prefs.log);
  prefs.x = prefs.x === "time" ? "time" : "step";
  return prefs;
}

function savePrefs(prefs) {
  try {
    localStorage.setItem(PREFS_KEY, JSON.stringify(prefs));
  } catch {
    /* storage may be off */
  }
}

/** A loss value for people: 3 decimals above 1, 3 significant digits below. */
export function formatLoss(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  return Math.abs(v) >= 1 ? v.toFixed(3) : v.toPrecision(3);
}

/** Exponential moving average with the start-up bias removed (as TensorBoard smooths). */
export function smooth(values, weight) {
  if (!weight) return values.slice();
  const out = new Array(values.length);
  let last = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    last = last * weight + (1 - weight) * values[i];
    n += 1;
    out[i] = last / (1 - weight ** n);
  }
  return out;
}

/** About `count` round numbers between min and max. */
function niceTicks(min, max, count, integer = false) {
  const span = max - min;
  if (!(span > 0) || count < 1) return [min];
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  let step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  if (integer) step = Math.max(1, Math.round(step));
  const ticks = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function logTicks(min, max, count) {
  if (max / min < 20) return niceTicks(min, max, count);
  const ticks = [];
  for (let k = Math.floor(Math.log10(min)); k <= Math.ceil(Math.log10(max)); k++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** k;
      if (v >= min && v <= max) ticks.push(Number(v.toPrecision(12)));
    }
  }
  return ticks;
}

/** The decimals that tell a chart's ticks apart and no more (5, 5.5, 6 rather than 5.000). */
export function decimalsFor(ticks) {
  if (ticks.length < 2) return 2;
  const step = Math.min(...ticks.slice(1).map((t, i) => Math.abs(t - ticks[i])).filter((d) => d > 0));
  return Math.min(6, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
}

function pad2(n) {
  return String(n).padStart(2, "0");
}

function clock(ms, { seconds, day }) {
  const d = new Date(ms);
  const time = `${pad2(d.getHours())}:${pad2(d.getMinutes())}${seconds ? `:${pad2(d.getSeconds())}` : ""}`;
  return day ? `${d.toLocaleDateString(undefined, { month: "short", day: "numeric" })} ${time}` : time;
}

function timeTicks(min, max, count) {
  const span = max - min;
  const step = TIME_STEPS.find((s) => span / s <= count) || TIME_STEPS[TIME_STEPS.length - 1];
  const offset = new Date(min).getTimezoneOffset() * 60000; // round to local hours and days
  const ticks = [];
  for (let v = Math.ceil((min - offset) / step) * step + offset; v <= max; v += step) ticks.push(v);
  return { ticks, seconds: step < 60000, day: span >= 86400000 };
}

/** The index of the item of `xs` (sorted) nearest to x. */
function nearest(xs, x) {
  let lo = 0;
  let hi = xs.length - 1;
  if (hi < 0) return -1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid;
    else hi = mid;
  }
  return Math.abs(xs[lo] - x) <= Math.abs(xs[hi] - x) ? lo : hi;
}

/** A theme variable's colour as canvas takes it (a theme may write any CSS colour, or var()). */
export function themeColor(name, within = document.body) {
  const probe = h("span", { class: "chart-probe", "aria-hidden": "true", style: { color: `var(${name})` } });
  within.append(probe);
  const color = getComputedStyle(probe).color;
  probe.remove();
  return color;
}

/** A PNG Blob of `width` x `height` pixels: `draw(ctx)` on an opaque `background` (a PNG keeps
 * transparency, and a chart on none would show the viewer's own background instead). */
export function pngOf(width, height, background, draw) {
  const out = h("canvas", { width, height });
  const ctx = out.getContext("2d");
  ctx.fillStyle = background;
  ctx.fillRect(0, 0, width, height);
  draw(ctx);
  return new Promise((resolve, reject) => out.toBlob(
    (blob) => (blob ? resolve(blob) : reject(new Error("The chart could not be made into a PNG picture"))), "image/png"));
}

/** GET /api/models/<name>/loss-history.csv as a Blob. */
export function lossHistoryCsv(modelName) {
  return api.getBlob(`/api/models/${api.seg(modelName)}/loss-history.csv`);
}

/**
 * "Save PNG" and "Save CSV" buttons (test ids `<prefix>-save-png` and `-csv`). Each awaits its
 * function for {blob, filename} and saves that (a download, or the desktop's save dialog); a
 * failure is a toast. Disabled until setEnabled(true), and while its save is under way.
 */
export function createSaveButtons(prefix, { png, csv }) {
  let enabled = false;
  const busy = new Set();
  const buttons = {};
  const sync = () => {
    for (const [kind, button] of Object.entries(buttons)) button.disabled = !enabled || busy.has(kind);
  };
  const button = (kind, label, title, make) => h("button", {
    type: "button", class: "btn btn-small", title, disabled: true, dataset: { testid: `${prefix}-save-${kind}` },
    onclick: async () => {
      busy.add(kind);
      sync();
      try {
        const { blob, filename } = await make();
        const path = await saveFile(blob, filename);
        if (path) toast(`Saved ${path}`, { kind: "ok" }); // a browser shows its downloads itself
      } catch (err) {
        toastError(err);
      } finally {
        busy.delete(kind);
        sync();
      }
    },
  }, label);
  buttons.png = button("png", "Save PNG", "Save the chart as a PNG picture", png);
  buttons.csv = button("csv", "Save CSV", "Save every loss point as a CSV file", csv);
  return {
    element: h("div", { class: "chart-control chart-save" }, buttons.png, buttons.csv),
    setEnabled(on) {
      enabled = Boolean(on);
      sync();
    },
  };
}

/** `toolbarHost`: where the controls go (e.g. the card's heading row); else above the chart.
 * `modelName`: the model shown (a function; null for none): with it, the chart can be saved. */
export function createLossChart(container, { toolbarHost = null, modelName = null } = {}) {
  const prefs = loadPrefs();
  let points = [];
  let markers = [];
  let layout = null;
  let hoverX = null;
  let frameRequest = 0;

  const smoothing = h("input", {
    type: "range", min: "0", max: "0.99", step: "0.01", value: String(prefs.smoothing),
    class: "chart-range", id: "chart-smoothing", dataset: { testid: "chart-smoothing" },
  });
  const smoothingValue = h("output", { for: "chart-smoothing", class: "chart-range-value mono" }, prefs.smoothing.toFixed(2));
  const logBox = h("input", { type: "checkbox", id: "chart-log", checked: prefs.log, dataset: { testid: "chart-log" } });
  const xButtons = ["step", "time"].map((mode) => h("button", {
    type: "button", class: "segment", dataset: { x: mode, testid: `chart-x-${mode}` },
    "aria-pressed": String(prefs.x === mode),
  }, mode === "step" ? "Step" : "Time"));
  const readout = h("p", { class: "chart-readout small", dataset: { testid: "chart-readout" } });
  const canvas = h("canvas", { class: "chart-canvas", role: "img", "aria-label": "Loss chart: no training yet" });
  const empty = h("p", { class: "chart-empty", dataset: { testid: "chart-empty" } }, "No training yet");
  const frame = h("div", { class: "chart-frame" }, canvas, empty);
  // Why there is no validation line, when there is none (the server says: no split, or not yet).
  const valNote = h("p", { class: "chart-val-note muted small", dataset: { testid: "chart-val-note" }, hidden: true });
  const probe = h("span", { class: "chart-probe", "aria-hidden": "true" });
  const legendItem = (cls, label, testid) => h("li", { class: `legend-item legend-${cls}`, dataset: { testid } },
    h("span", { class: `swatch swatch-${cls}`, "aria-hidden": "true" }), label);
  const legendMarkers = Object.fromEntries(Object.entries(MARKERS).map(([kind, m]) =>
    [kind, legendItem(`marker swatch-${m.cls}`, m.label, `legend-${kind}`)]));
  for (const item of Object.values(legendMarkers)) item.hidden = true;
  const legend = h("ul", { class: "chart-legend small", dataset: { testid: "chart-legend" } },
    legendItem("train", "Train loss", "legend-train"),
    legendItem("val", "Validation loss", "legend-val"),
    Object.values(legendMarkers),
  );
  const toolbar = h("div", { class: "chart-toolbar" },
    h("label", { class: "chart-control", for: "chart-smoothing" }, h("span", { class: "field-label" }, "Smoothing"), smoothing, smoothingValue),
    h("label", { class: "chart-control chart-check", for: "chart-log" }, logBox, h("span", {}, "Log scale")),
    h("div", { class: "chart-control" },
      h("span", { class: "field-label", id: "chart-x-label" }, "X axis"),
      h("div", { class: "segmented", role: "group", "aria-labelledby": "chart-x-label" }, xButtons)),
  );
  const saver = modelName ? createSaveButtons("chart", {
    png: async () => {
      draw(); // what the canvas shows now, not a frame still waiting
      const blob = await pngOf(canvas.width, canvas.height, colors().panel, (ctx) => ctx.drawImage(canvas, 0, 0));
      return { blob, filename: `${modelName()}-loss-chart.png` };
    },
    csv: async () => {
      const name = modelName();
      return { blob: await lossHistoryCsv(name), filename: `${name}-loss-history.csv` };
    },
  }) : null;
  if (saver) toolbar.append(saver.element);
  const root = h("div", { class: "loss-chart", dataset: { testid: "loss-chart", points: "0", valPoints: "0", markers: "0", markerKinds: "" } },
    toolbarHost ? null : toolbar,
    h("div", { class: "chart-meta" }, readout, legend),
    frame,
    valNote,
    probe,
  );
  if (toolbarHost) toolbarHost.append(toolbar);
  container.append(root);

  smoothing.addEventListener("input", () => {
    prefs.smoothing = Number(smoothing.value);
    smoothingValue.textContent = prefs.smoothing.toFixed(2);
    savePrefs(prefs);
    schedule();
  });
  logBox.addEventListener("change", () => {
    prefs.log = logBox.checked;
    savePrefs(prefs);
    schedule();
  });
  for (const button of xButtons) {
    button.addEventListener("click", () => {
      prefs.x = button.dataset.x;
      for (const b of xButtons) b.setAttribute("aria-pressed", String(b === button));
      savePrefs(prefs);
      schedule();
    });
  }
  canvas.addEventListener("mousemove", (e) => {
    const rect = canvas.getBoundingClientRect();
    hoverX = e.clientX - rect.left;
    schedule();
  });
  canvas.addEventListener("mouseleave", () => {
    hoverX = null;
    schedule();
  });

  // Size and theme changes: draw again.
  new ResizeObserver(() => schedule()).observe(frame);
  const themeLink = document.getElementById("theme-css");
  themeLink?.addEventListener("load", () => schedule());
  new MutationObserver(() => {
    schedule();
    setTimeout(schedule, 250); // the new stylesheet may still be loading
  }).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  window.addEventListener("cllm:themes", () => setTimeout(schedule, 50));

  function schedule() {
    if (frameRequest) return;
    frameRequest = requestAnimationFrame(() => {
      frameRequest = 0;
      draw();
    });
  }

  function colors() {
    const out = {};
    for (const [key, name] of Object.entries(COLOR_VARS)) {
      probe.style.color = `var(${name})`;
      out[key] = getComputedStyle(probe).color;
    }
    return out;
  }

  /** Train and validation series in the current x mode. */
  function series() {
    const xOf = prefs.x === "time" ? (p) => p.t : (p) => p.step;
    const train = points.filter((p) => Number.isFinite(p.train_loss));
    const val = points.filter((p) => Number.isFinite(p.val_loss));
    const trainY = train.map((p) => p.train_loss);
    return {
      xOf,
      train,
      trainX: train.map(xOf),
      trainY,
      smoothY: smooth(trainY, prefs.smoothing),
      val,
      valX: val.map(xOf),
      valY: val.map((p) => p.val_loss),
    };
  }

  /** Where each marker goes on the x axis (null: outside the run shown). */
  function markerX(marker, s) {
    if (!points.length) return null;
    const t = Date.parse(marker.time);
    const first = points[0];
    const last = points[points.length - 1];
    if (prefs.x === "time") return t >= first.t && t <= last.t ? t : null;
    if (STEP_MARKERS.has(marker.kind) && Number.isFinite(marker.detail?.step)) {
      return marker.detail.step >= first.step && marker.detail.step <= last.step ? marker.detail.step : null;
    }
    if (!(t >= first.t && t <= last.t)) return null;
    const i = points.findIndex((p) => p.t >= t);
    if (i <= 0) return first.step;
    const a = points[i - 1];
    const b = points[i];
    return a.step + ((b.step - a.step) * (t - a.t)) / Math.max(1, b.t - a.t);
  }

  function draw() {
    const width = frame.clientWidth;
    const height = frame.clientHeight;
    if (!width || !height) return; // hidden tab: drawn when it shows (the observer fires)
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const s = series();
    const hasData = s.train.length + s.val.length > 0;
    empty.hidden = hasData;
    if (!hasData) {
      layout = null;
      readout.textContent = "";
      return;
    }
    const c = colors();
    const style = getComputedStyle(root);
    const fontSize = parseFloat(style.getPropertyValue("--font-size-small")) || 12;
    ctx.font = `${fontSize}px ${style.fontFamily}`;
    ctx.textBaseline = "middle";

    // ranges
    const xs = [...s.trainX, ...s.valX];
    let x0 = Math.min(...xs);
    let x1 = Math.max(...xs);
    if (x1 === x0) {
      const padX = prefs.x === "time" ? 30000 : 1;
      x0 -= padX;
      x1 += padX;
    }
    const ys = [...s.trainY, ...s.smoothY, ...s.valY].filter((v) => Number.isFinite(v) && (!prefs.log || v > 0));
    let yMin = Math.min(...ys);
    let yMax = Math.max(...ys);
    const fy = prefs.log ? (v) => Math.log10(Math.max(v, 1e-12)) : (v) => v;
    if (!(yMax > yMin)) {
      yMin = prefs.log ? yMin / 1.2 : yMin - 0.5;
      yMax = prefs.log ? yMax * 1.2 : yMax + 0.5;
    }
    let ly0 = fy(yMin);
    let ly1 = fy(yMax);
    const padY = (ly1 - ly0) * 0.06;
    ly0 -= padY;
    ly1 += padY;
    const vMin = prefs.log ? 10 ** ly0 : ly0;
    const vMax = prefs.log ? 10 ** ly1 : ly1;

    const top = 10;
    const bottom = height - fontSize - 12;
    const yCount = Math.max(2, Math.floor((bottom - top) / 42));
    const yTicks = prefs.log ? logTicks(vMin, vMax, yCount) : niceTicks(vMin, vMax, yCount);
    const decimals = decimalsFor(yTicks);
    const yLabels = yTicks.map((v) => v.toFixed(decimals));
    const left = Math.ceil(Math.max(...yLabels.map((l) => ctx.measureText(l).width), 16)) + 14;
    const right = width - 12;
    const px = (x) => left + ((x - x0) / (x1 - x0)) * (right - left);
    const py = (v) => bottom - ((fy(v) - ly0) / (ly1 - ly0)) * (bottom - top);
    layout = { left, right, top, bottom, x0, x1, s };

    // grid and y labels
    ctx.lineWidth = 1;
    ctx.strokeStyle = c.grid;
    ctx.fillStyle = c.axis;
    ctx.textAlign = "right";
    yTicks.forEach((v, i) => {
      const y = Math.round(py(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(right, y);
      ctx.stroke();
      ctx.fillText(yLabels[i], left - 8, y);
    });
    // x labels
    const xCount = Math.max(2, Math.floor((right - left) / (prefs.x === "time" ? 90 : 70)));
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    let xTicks;
    let xLabel;
    if (prefs.x === "time") {
      const t = timeTicks(x0, x1, xCount);
      xTicks = t.ticks;
      xLabel = (v) => clock(v, t);
    } else {
      xTicks = niceTicks(x0, x1, xCount, true);
      xLabel = (v) => formatInt(v);
    }
    for (const v of xTicks) {
      const x = Math.round(px(v)) + 0.5;
      if (x < left - 1 || x > right + 1) continue;
      ctx.beginPath();
      ctx.moveTo(x, bottom);
      ctx.lineTo(x, bottom + 4);
      ctx.stroke();
      ctx.fillText(xLabel(v), Math.min(Math.max(x, left + 12), right - 12), bottom + 6);
    }
    ctx.strokeStyle = c.axis;
    ctx.beginPath();
    ctx.moveTo(left, bottom + 0.5);
    ctx.lineTo(right, bottom + 0.5);
    ctx.stroke();

    // markers
    const kinds = new Set();
    ctx.save();
    ctx.setLineDash([4, 4]);
    ctx.lineWidth = 1.25;
    for (const m of markers) {
      const spec = MARKERS[m.kind];
      if (!spec) continue;
      const mx = markerX(m, s);
      if (mx === null) continue;
      kinds.add(m.kind);
      const x = Math.round(px(mx)) + 0.5;
      ctx.strokeStyle = c[spec.cls];
      ctx.fillStyle = c[spec.cls];
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, bottom);
      ctx.stroke();
      ctx.beginPath();
      ctx.moveTo(x - 4, top - 6);
      ctx.lineTo(x + 4, top - 6);
      ctx.lineTo(x, top);
      ctx.closePath();
      ctx.fill();
    }
    ctx.restore();

    // lines
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top - 2, right - left, bottom - top + 4);
    ctx.clip();
    const line = (xsArr, ysArr, color, widthPx, alpha) => {
      ctx.strokeStyle = color;
      ctx.lineWidth = widthPx;
      ctx.globalAlpha = alpha;
      ctx.lineJoin = "round";
      ctx.beginPath();
      let lastX = -Infinity;
      let started = false;
      for (let i = 0; i < xsArr.length; i++) {
        const v = ysArr[i];
        if (!Number.isFinite(v) || (prefs.log && v <= 0)) continue;
        const x = px(xsArr[i]);
        const y = py(v);
        if (!started) {
          ctx.moveTo(x, y);
          started = true;
        } else if (x - lastX >= 0.5 || i === xsArr.length - 1) {
          ctx.lineTo(x, y);
        } else {
          continue;
        }
        lastX = x;
      }
      ctx.stroke();
      ctx.globalAlpha = 1;
    };
    const smoothed = prefs.smoothing > 0;
    line(s.trainX, s.trainY, c.train, smoothed ? 1 : 1.75, smoothed ? 0.3 : 1);
    if (smoothed) line(s.trainX, s.smoothY, c.train, 2, 1);
    if (s.val.length) {
      line(s.valX, s.valY, c.val, 1.75, 1);
      if (s.val.length <= (right - left) / 5) {
        ctx.fillStyle = c.val;
        for (let i = 0; i < s.val.length; i++) {
          ctx.beginPath();
          ctx.arc(px(s.valX[i]), py(s.valY[i]), 2.75, 0, Math.PI * 2);
          ctx.fill();
        }
      }
    }
    ctx.restore();

    // hover: a crosshair on the nearest step, its values in the readout
    let shown = s.train.length ? s.train.length - 1 : -1;
    if (hoverX !== null && hoverX >= left - 4 && hoverX <= right + 4 && s.train.length) {
      const x = x0 + ((hoverX - left) / (right - left)) * (x1 - x0);
      shown = nearest(s.trainX, x);
      const cx = Math.round(px(s.trainX[shown])) + 0.5;
      ctx.strokeStyle = c.axis;
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(cx, top);
      ctx.lineTo(cx, bottom);
      ctx.stroke();
      ctx.fillStyle = c.train;
      ctx.beginPath();
      ctx.arc(cx, py(smoothed ? s.smoothY[shown] : s.trainY[shown]), 3.5, 0, Math.PI * 2);
      ctx.fill();
    }
    describe(s, shown, hoverX !== null);
    root.dataset.markerKinds = [...kinds].sort().join(" ");
    for (const [kind, item] of Object.entries(legendMarkers)) item.hidden = !kinds.has(kind);
  }

  function describe(s, i, hovering) {
    if (i < 0) {
      const v = s.val[s.val.length - 1];
      readout.textContent = v ? `Step ${formatInt(v.step)} · val ${formatLoss(v.val_loss)}` : "";
      return;
    }
    const p = s.train[i];
    const val = p.val_loss ?? [...s.val].reverse().find((q) => q.step <= p.step)?.val_loss;
    const parts = [
      `${hovering ? "" : "Latest: "}step ${formatInt(p.step)}`,
      `epoch ${p.epoch.toFixed(2)}`,
      `train ${formatLoss(p.train_loss)}${prefs.smoothing > 0 ? ` (smoothed ${formatLoss(s.smoothY[i])})` : ""}`,
      val !== undefined && val !== null ? `val ${formatLoss(val)}` : null,
      p.learning_rate ? `lr ${p.learning_rate.toExponential(1)}` : null,
      hovering && p.time ? clock(p.t, { seconds: true, day: Date.now() - p.t > 86400000 }) : null,
    ].filter(Boolean);
    const text = parts.join(" · ");
    readout.textContent = text.charAt(0).toUpperCase() + text.slice(1);
  }

  function update(data) {
    points = data.points || [];
    for (const p of points) if (p.t === undefined) p.t = Date.parse(p.time);
    markers = data.markers || [];
    const val = points.filter((p) => Number.isFinite(p.val_loss)).length;
    const train = points.filter((p) => Number.isFinite(p.train_loss)).length;
    root.dataset.points = String(train);
    root.dataset.valPoints = String(val);
    root.dataset.markers = String(markers.length);
    const last = points[points.length - 1];
    canvas.setAttribute("aria-label", last
      ? `Loss chart: ${formatInt(train)} steps up to step ${formatInt(last.step)}, latest train loss ${formatLoss(last.train_loss)}`
      : "Loss chart: no training yet");
    empty.hidden = points.length > 0;
    valNote.textContent = val ? "" : data.validationNote || "";
    valNote.hidden = !valNote.textContent;
    saver?.setEnabled(points.length > 0 && Boolean(modelName()));
    schedule();
  }

  return {
    element: root,
    update,
    clear: () => update({ points: [], markers: [] }),
    redraw: schedule,
  };
}
