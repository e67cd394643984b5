// Compare: the loss curves (train solid, validation dashed) of several chosen models on one
// SVG chart, by step, tokens seen or time, linear or log y; and a table of what made them:
// shape, parameters, data, epochs, tokens seen, best validation loss and lineage. The chart
// saves as a PNG (with its legend) and the models' loss histories as one CSV.

import * as api from "../api.js";
import * as selection from "../selection.js";
import { errorText, fill, formatBytes, formatInt, formatParams, h } from "../ui.js";
import { createSaveButtons, decimalsFor, formatLoss, lossHistoryCsv, pngOf, themeColor } from "../components/loss-chart.js";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = 8; // --research-series-1 … 8 in research.css
let W = 760;
const H = 300;
const PAD = { left: 52, right: 16, top: 12, bottom: 30 };

let els = {};
let chosen = new Set();
let data = null;
const prefs = { x: "step", log: false };

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, v);
  for (const c of children) if (c) el.append(c);
  return el;
}

export function mount(box) {
  els.picker = h("div", { class: "research-picker", dataset: { testid: "compare-picker" } });
  els.go = h("button", { type: "button", class: "btn btn-primary", dataset: { testid: "compare-run" }, onclick: load }, "Compare");
  els.error = h("p", { class: "form-error", role: "alert", dataset: { testid: "compare-error" } });
  const xButtons = ["step", "tokens", "time"].map((mode) => h("button", {
    type: "button", class: "segment", "aria-pressed": String(prefs.x === mode), dataset: { x: mode, testid: `compare-x-${mode}` },
    onclick: (e) => {
      prefs.x = mode;
      for (const b of xButtons) b.setAttribute("aria-pressed", String(b === e.currentTarget));
      draw();
    },
  }, mode === "step" ? "Step" : mode === "tokens" ? "Tokens seen" : "Time"));
  els.log = h("input", { type: "checkbox", id: "compare-log", dataset: { testid: "compare-log" }, onchange: () => { prefs.log = els.log.checked; draw(); } });
  els.chart = h("div", { class: "research-chart", dataset: { testid: "compare-chart", series: "0" } });
  els.legend = h("ul", { class: "chart-legend small", dataset: { testid: "compare-legend" } });
  els.table = h("div", { class: "table-scroll", dataset: { testid: "compare-table" } });
  els.save = createSaveButtons("research", { png: savePng, csv: saveCsv });
  fill(box,
    h("section", { class: "card" },
      h("div", { class: "card-head" }, h("h3", {}, "Models to compare"), h("span", { class: "muted small" }, "tick two or more")),
      els.picker, h("div", { class: "form-actions" }, els.go), els.error),
    h("section", { class: "card" },
      h("div", { class: "card-head chart-head" }, h("h3", {}, "Loss"),
        h("div", { class: "chart-toolbar" },
          h("label", { class: "chart-control chart-check", for: "compare-log" }, els.log, h("span", {}, "Log scale")),
          h("div", { class: "segmented", role: "group", "aria-label": "X axis" }, xButtons),
          els.save.element)),
      els.legend, els.chart),
    h("section", { class: "card" }, h("div", { class: "card-head" }, h("h3", {}, "What made them")), els.table),
  );
}

export function selectionChanged({ models, current }) {
  const names = new Set(models.map((m) => m.model_name));
  chosen = new Set([...chosen].filter((n) => names.has(n)));
  if (current && !chosen.size) chosen.add(current);
  fill(els.picker, [...models].sort(selection.byName).map((m) => h("label", { class: "choice" },
    h("input", { type: "checkbox", value: m.model_name, checked: chosen.has(m.model_name),
      dataset: { testid: "compare-pick" }, onchange: (e) => {
        if (e.target.checked) chosen.add(m.model_name);
        else chosen.delete(m.model_name);
      } }),
    h("span", {}, m.model_name))));
  if (!models.length) fill(els.picker, h("p", { class: "muted" }, "No models yet."));
}

export function shown() {
  if (!data && chosen.size) load();
}

async function load() {
  els.error.textContent = "";
  const names = [...chosen];
  const params = new URLSearchParams();
  for (const n of names) params.append("model_name", n);
  try {
    data = await api.get(`/api/research/compare?${params}`);
  } catch (err) {
    els.error.textContent = errorText(err);
    return;
  }
  draw();
  table();
}

function xOf(p) {
  if (prefs.x === "tokens") return p.tokens;
  if (prefs.x === "time") return Date.parse(p.time);
  return p.step;
}

function ticks(min, max, count) {
  const span = max - min || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const n = raw / mag;
  const step = (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * mag;
  const out = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function draw() {
  if (!data) return;
  const models = data.models;
  W = Math.max(360, els.chart.clientWidth || 760); // drawn at its real width, so text keeps its size
  const fy = prefs.log ? (v) => Math.log10(v) : (v) => v;
  const all = [];
  for (const m of models) for (const p of m.points) {
    for (const key of ["train_loss", "val_loss"]) {
      if (Number.isFinite(p[key]) && (!prefs.log || p[key] > 0)) all.push([xOf(p), fy(p[key])]);
    }
  }
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "research-svg", role: "img",
    "aria-label": `Loss of ${models.map((m) => m.model_name).join(", ")}` });
  let series = 0;
  if (!all.length) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "svg-muted" }));
    root.lastChild.textContent = "None of these models has trained yet";
  } else {
    let [x0, x1] = [Math.min(...all.map((a) => a[0])), Math.max(...all.map((a) => a[0]))];
    let [y0, y1] = [Math.min(...all.map((a) => a[1])), Math.max(...all.map((a) => a[1]))];
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
    const pad = (y1 - y0) * 0.06;
    y0 -= pad; y1 += pad;
    const px = (x) => PAD.left + ((x - x0) / (x1 - x0)) * (W - PAD.left - PAD.right);
    const py = (y) => H - PAD.bottom - ((y - y0) / (y1 - y0)) * (H - PAD.top - PAD.bottom);
    const yTicks = ticks(y0, y1, 5);
    const decimals = decimalsFor(yTicks);
    for (const t of yTicks) {
      root.append(svg("line", { x1: PAD.left, x2: W - PAD.right, y1: py(t), y2: py(t), class: "svg-grid" }));
      const label = svg("text", { x: PAD.left - 6, y: py(t) + 4, "text-anchor": "end", class: "svg-axis", "data-tick": "y" });
      label.textContent = prefs.log ? formatLoss(10 ** t) : t.toFixed(decimals);
      root.append(label);
    }
    for (const t of ticks(x0, x1, 6)) {
      const label = svg("text", { x: px(t), y: H - 10, "text-anchor": "middle", class: "svg-axis" });
      label.textContent = prefs.x === "time" ? new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : formatInt(t);
      root.append(label);
    }
    models.forEach((m, i) => {
      const color = `var(--research-series-${(i % COLORS) + 1})`;
      for (const [key, dash] of [["train_loss", null], ["val_loss", "5 4"]]) {
        const pts = m.points.filter((p) => Number.isFinite(p[key]) && (!prefs.log || p[key] > 0));
        if (!pts.length) continue;
        const d = pts.map((p, j) => `${j ? "L" : "M"}${px(xOf(p)).toFixed(1)},${py(fy(p[key])).toFixed(1)}`).join("");
        root.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": key === "val_loss" ? 2 : 1.5,
          "stroke-dasharray": dash, "data-model": m.model_name, "data-series": key === "val_loss" ? "val" : "train", class: "svg-series" }));
        series += 1;
      }
    });
  }
  els.chart.dataset.series = String(series);
  els.save.setEnabled(series > 0);
  fill(els.chart, root);
  fill(els.legend, models.map((m, i) => h("li", { class: "legend-item" },
    h("span", { class: "swatch", style: { background: `var(--research-series-${(i % COLORS) + 1})` }, "aria-hidden": "true" }),
    m.model_name)), h("li", { class: "legend-item muted" }, "solid: train · dashed: validation"));
}

// ---- saving ---------------------------------------------------------------------------------

/** The start of the saved files' names: the model's, or the models' (shortened when many). */
function fileStem() {
  const names = data.models.map((m) => m.model_name);
  const joined = names.join(" vs ");
  return names.length === 1 || joined.length <= 80 ? joined : `${names[0]} vs ${names.length - 1} more`;
}

// What the theme's stylesheet gives the chart's parts: an SVG drawn as an image sees no stylesheet.
const STYLE_PROPS = ["fill", "stroke", "stroke-width", "stroke-dasharray", "opacity", "font-family", "font-size", "font-weight"];

async function svgImage(root) {
  const copy = root.cloneNode(true);
  const from = [root, ...root.querySelectorAll("*")];
  const to = [copy, ...copy.querySelectorAll("*")];
  from.forEach((el, i) => {
    const style = getComputedStyle(el);
    for (const prop of STYLE_PROPS) to[i].style.setProperty(prop, style.getPropertyValue(prop));
  });
  const url = URL.createObjectURL(new Blob([new XMLSerializer().serializeToString(copy)], { type: "image/svg+xml" }));
  try {
    const image = new Image();
    image.src = url;
    await image.decode();
    return image;
  } finally {
    URL.revokeObjectURL(url);
  }
}

/** The chart at its drawn size, with the legend under it (the colours say nothing without it). */
async function savePng() {
  const root = els.chart.querySelector("svg");
  const image = await svgImage(root);
  const style = getComputedStyle(root);
  const size = parseFloat(style.fontSize) || 12;
  const line = Math.ceil(size * 1.8);
  const dpr = window.devicePixelRatio || 1;
  const measure = h("canvas").getContext("2d");
  measure.font = `${style.fontSize} ${style.fontFamily}`;
  // the legend's items, left to right, wrapping at the chart's width
  const items = data.models.map((m, i) => ({ text: m.model_name, color: themeColor(`--research-series-${(i % COLORS) + 1}`, els.chart) }));
  items.push({ text: "solid: train · dashed: validation", color: null });
  let x = PAD.left;
  let y = H + line / 2;
  for (const item of items) {
    const width = (item.color ? 22 : 0) + measure.measureText(item.text).width;
    if (x > PAD.left && x + width > W - PAD.right) {
      x = PAD.left;
      y += line;
    }
    Object.assign(item, { x, y });
    x += width + 20;
  }
  const height = y + line / 2 + 4;
  const [text, muted] = [themeColor("--text", els.chart), themeColor("--muted", els.chart)];
  const blob = await pngOf(Math.round(W * dpr), Math.round(height * dpr), themeColor("--panel", els.chart), (ctx) => {
    ctx.scale(dpr, dpr);
    ctx.drawImage(image, 0, 0, W, H);
    ctx.font = measure.font;
    ctx.textBaseline = "middle";
    for (const item of items) {
      if (item.color) {
        ctx.fillStyle = item.color;
        ctx.fillRect(item.x, item.y - 1.5, 16, 3);
      }
      ctx.fillStyle = item.color ? text : muted;
      ctx.fillText(item.text, item.x + (item.color ? 22 : 0), item.y);
    }
  });
  return { blob, filename: `${fileStem()}-loss-chart.png` };
}

function csvCell(value) {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** One model: its file as the server writes it. Several: one file, a model_name column first. */
async function saveCsv() {
  const names = data.models.map((m) => m.model_name);
  const filename = `${fileStem()}-loss-history.csv`;
  if (names.length === 1) return { blob: await lossHistoryCsv(names[0]), filename };
  const files = await Promise.all(names.map(async (name) => (await (await lossHistoryCsv(name)).text()).split(/\r?\n/)));
  const rows = [`model_name,${files[0][0]}`];
  files.forEach((lines, i) => {
    for (const row of lines.slice(1)) if (row) rows.push(`${csvCell(names[i])},${row}`);
  });
  return { blob: new Blob([rows.join("\r\n") + "\r\n"], { type: "text/csv" }), filename };
}

function table() {
  const cols = [
    ["model", (m) => m.model_name],
    ["n_layer", (m) => m.n_layer], ["n_head", (m) => m.n_head], ["n_embd", (m) => m.n_embd],
    ["block_size", (m) => m.block_size], ["vocab_size", (m) => m.vocab_size], ["tokenizer", (m) => m.tokenizer],
    ["parameters", (m) => formatParams(m.n_params)],
    ["queue", (m) => `${formatInt(m.queue.items)} items · ${formatInt(m.queue.tokens)} tokens · ${formatBytes(m.queue.bytes)}`],
    ["epochs", (m) => `${m.epochs_trained} / ${m.target_epochs}`],
    ["tokens seen", (m) => formatInt(m.tokens_trained)],
    ["best val loss", (m) => (m.best_val_loss === null ? "–" : `${formatLoss(m.best_val_loss)} @ ${formatInt(m.best_val_step)}`)],
    ["lineage", (m) => [
      m.lineage.parent ? `copy of ${m.lineage.parent}${m.lineage.parent_deleted ? " (in trash)" : ""}` : "original",
      m.lineage.imports.length ? `data from ${m.lineage.imports.join(", ")}` : null,
      m.lineage.layers_grown.length ? `layers grown ${m.lineage.layers_grown.map((g) => `${g.from}→${g.to}`).join(", ")}` : null,
    ].filter(Boolean).join(" · ")],
  ];
  fill(els.table, h("table", { class: "table" },
    h("thead", {}, h("tr", {}, cols.map(([name]) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, data.models.map((m) => h("tr", { dataset: { model: m.model_name } },
      cols.map(([name, fn], i) => h(i ? "td" : "th", { class: i ? "mono" : "", dataset: { col: name } }, String(fn(m)))))))));
}
