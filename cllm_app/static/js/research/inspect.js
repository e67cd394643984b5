// Inspect: for a prompt, the model's top-k next tokens, each prompt token coloured by its
// surprisal (bits), and one layer's head's attention as a T x T heatmap on a canvas.

import * as api from "../api.js";
import * as selection from "../selection.js";
import { errorText, fill, h } from "../ui.js";

let els = {};
let last = null;

export function mount(box) {
  els.prompt = h("textarea", { class: "input research-text", rows: 3, dataset: { testid: "inspect-prompt" },
    "aria-label": "Prompt", placeholder: "Write a prompt…" }, "The river ");
  els.topK = h("input", { type: "number", class: "input input-num", min: "1", max: "100", value: "10", id: "inspect-top-k", dataset: { testid: "inspect-top-k" } });
  els.layer = h("select", { class: "input", id: "inspect-layer", dataset: { testid: "inspect-layer" }, onchange: () => last && run() });
  els.head = h("select", { class: "input", id: "inspect-head", dataset: { testid: "inspect-head" }, onchange: () => last && run() });
  els.go = h("button", { type: "button", class: "btn btn-primary", dataset: { testid: "inspect-run" }, onclick: run }, "Inspect");
  els.error = h("p", { class: "form-error", role: "alert", dataset: { testid: "inspect-error" } });
  els.topList = h("ol", { class: "research-topk", dataset: { testid: "inspect-topk" } });
  els.surprisal = h("div", { class: "research-tokens", dataset: { testid: "inspect-surprisal" } });
  els.canvas = h("canvas", { class: "research-heatmap", dataset: { testid: "inspect-heatmap", size: "0" }, role: "img", "aria-label": "Attention heatmap" });
  els.readout = h("p", { class: "small mono", dataset: { testid: "inspect-readout" } });
  els.probe = h("span", { class: "chart-probe", "aria-hidden": "true" });
  els.canvas.addEventListener("mousemove", hover);
  const field = (id, label, input) => h("label", { class: "field", for: id }, h("span", { class: "field-label" }, label), input);
  fill(box,
    h("section", { class: "card" },
      h("div", { class: "card-head" }, h("h3", {}, "Prompt")),
      els.prompt,
      h("div", { class: "research-row" }, field("inspect-top-k", "top_k", els.topK), field("inspect-layer", "layer", els.layer),
        field("inspect-head", "head", els.head), els.go),
      els.error),
    h("div", { class: "research-grid" },
      h("section", { class: "card" }, h("div", { class: "card-head" }, h("h3", {}, "Next token")), els.topList),
      h("section", { class: "card" }, h("div", { class: "card-head" }, h("h3", {}, "Surprisal"),
        h("span", { class: "muted small" }, "bits per token: pale is expected, strong is surprising")), els.surprisal)),
    h("section", { class: "card" }, h("div", { class: "card-head" }, h("h3", {}, "Attention"),
      h("span", { class: "muted small" }, "row: the token looking · column: the token looked at")),
      els.canvas, els.readout, els.probe),
  );
}

export function selectionChanged({ currentModel }) {
  const options = (n, keep) => Array.from({ length: n }, (_, i) => h("option", { value: String(i), selected: String(i) === keep }, String(i)));
  const layer = els.layer.value;
  const head = els.head.value;
  els.layer.replaceChildren(...options(currentModel?.n_layer || 0, layer));
  els.head.replaceChildren(...options(currentModel?.n_head || 0, head));
  els.go.disabled = !currentModel;
  if (last && last.model_name !== currentModel?.model_name) {
    last = null;
    fill(els.topList);
    fill(els.surprisal);
    els.canvas.dataset.size = "0";
    els.canvas.getContext("2d").clearRect(0, 0, els.canvas.width, els.canvas.height);
  }
}

async function run() {
  const name = selection.current();
  if (!name) return;
  els.error.textContent = "";
  try {
    last = await api.post(`/api/models/${api.seg(name)}/inspect`, {
      prompt: els.prompt.value, top_k: Number(els.topK.value), layer: Number(els.layer.value || 0), head: Number(els.head.value || 0),
    });
  } catch (err) {
    els.error.textContent = errorText(err);
    return;
  }
  render();
}

function render() {
  const r = last;
  fill(els.topList, r.top_k.map((t) => h("li", { dataset: { token: String(t.id) } },
    h("span", { class: "mono research-token-text" }, t.text),
    h("span", { class: "research-bar" }, h("span", { class: "research-bar-fill", style: { width: `${(t.probability * 100).toFixed(2)}%` } })),
    h("span", { class: "mono small" }, `${(t.probability * 100).toFixed(2)}%`))));
  const max = Math.max(8, ...r.surprisal_bits.filter((b) => b !== null));
  fill(els.surprisal,
    r.truncated_tokens ? h("p", { class: "muted small" }, `The first ${r.truncated_tokens} tokens are left out: only the last ones fit.`) : null,
    r.tokens.map((t, i) => {
      const bits = r.surprisal_bits[i];
      const pct = bits === null ? 0 : Math.round(Math.min(1, bits / max) * 85);
      return h("span", { class: "research-tok mono", dataset: { bits: bits === null ? "" : bits.toFixed(3) },
        style: { background: `color-mix(in srgb, var(--danger) ${pct}%, transparent)` },
        title: bits === null ? "the start: nothing predicts it" : `${t.text}: ${bits.toFixed(2)} bits` }, t.text);
    }),
    r.mean_surprisal_bits !== null ? h("p", { class: "small muted" }, `Mean ${r.mean_surprisal_bits.toFixed(2)} bits per token`) : null);
  heatmap();
}

function color(name) {
  els.probe.style.color = `var(${name})`;
  return getComputedStyle(els.probe).color;
}

function heatmap() {
  const att = last.attention;
  const T = att.length;
  const labels = T <= 48;
  const margin = labels ? 64 : 4;
  const cell = Math.max(2, Math.min(24, Math.floor(560 / T)));
  const size = margin + cell * T;
  const dpr = window.devicePixelRatio || 1;
  els.canvas.width = size * dpr;
  els.canvas.height = size * dpr;
  els.canvas.style.width = `${size}px`;
  els.canvas.style.height = `${size}px`;
  const ctx = els.canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, size, size);
  const hot = color("--accent");
  ctx.fillStyle = color("--panel-alt");
  ctx.fillRect(margin, margin, cell * T, cell * T);
  ctx.fillStyle = hot;
  for (let i = 0; i < T; i++) {
    for (let j = 0; j <= i; j++) {
      ctx.globalAlpha = Math.min(1, att[i][j]);
      ctx.fillRect(margin + j * cell, margin + i * cell, cell, cell);
    }
  }
  ctx.globalAlpha = 1;
  if (labels) {
    ctx.fillStyle = color("--text");
    ctx.font = `${Math.min(12, cell)}px ${getComputedStyle(document.body).fontFamily}`;
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    last.tokens.forEach((t, i) => ctx.fillText(t.text.slice(0, 6), margin - 4, margin + i * cell + cell / 2));
    ctx.save();
    ctx.textAlign = "left";
    last.tokens.forEach((t, j) => {
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.translate(margin + j * cell + cell / 2, margin - 4);
      ctx.rotate(-Math.PI / 2);
      ctx.fillText(t.text.slice(0, 6), 0, 0);
    });
    ctx.restore();
  }
  els.canvas.dataset.size = String(T);
  els.canvas.dataset.layer = String(last.layer);
  els.canvas.dataset.head = String(last.head);
  els.geometry = { margin, cell, T };
  els.readout.textContent = `Layer ${last.layer}, head ${last.head}: ${T} x ${T}. Point at a cell for its weight.`;
}

function hover(e) {
  if (!last || !els.geometry) return;
  const { margin, cell, T } = els.geometry;
  const rect = els.canvas.getBoundingClientRect();
  const scale = (margin + cell * T) / rect.width; // the canvas may be drawn narrower than its size
  const j = Math.floor(((e.clientX - rect.left) * scale - margin) / cell);
  const i = Math.floor(((e.clientY - rect.top) * scale - margin) / cell);
  if (i < 0 || j < 0 || i >= T || j >= T) return;
  const w = last.attention[i][j];
  els.readout.textContent = `“${last.tokens[i].text}” (${i}) attends to “${last.tokens[j].text}” (${j}): ${(w * 100).toFixed(2)}%`;
}
