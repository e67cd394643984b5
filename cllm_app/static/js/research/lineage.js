// Lineage: the family tree of all models as an SVG. Generations run left to right (a copy
// stands right of its source); solid arrows are duplicates, dashed ones data imports; a badge
// tells layers grown; models in the trash are drawn faded. Clicking a live model selects it.

import * as api from "../api.js";
import * as selection from "../selection.js";
import { errorText, fill, formatParams, h } from "../ui.js";

const SVG = "http://www.w3.org/2000/svg";
const NODE_W = 170;
const NODE_H = 48;
const GAP_X = 70;
const GAP_Y = 22;

let els = {};
let graph = null;

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, v);
  for (const c of children) if (c) el.append(c);
  return el;
}

function text(attrs, value) {
  const el = svg("text", attrs);
  el.textContent = value;
  return el;
}

function titled(value) {
  const el = svg("title");
  el.textContent = value;
  return el;
}

export function mount(box) {
  els.refresh = h("button", { type: "button", class: "btn btn-small", dataset: { testid: "lineage-refresh" }, onclick: load }, "Refresh");
  els.showTrash = h("input", { type: "checkbox", id: "lineage-trash", checked: true, dataset: { testid: "lineage-trash" }, onchange: draw });
  els.error = h("p", { class: "form-error", role: "alert" });
  els.graph = h("div", { class: "research-lineage", dataset: { testid: "lineage-graph", nodes: "0", edges: "0" } });
  fill(box, h("section", { class: "card" },
    h("div", { class: "card-head" }, h("h3", {}, "Family tree"),
      h("div", { class: "push-right research-row" },
        h("label", { class: "chart-check", for: "lineage-trash" }, els.showTrash, h("span", {}, "Show models in the trash")),
        els.refresh)),
    h("p", { class: "muted small" }, "→ duplicated from · ⇢ data imported from · +N layers grown"),
    els.error, els.graph));
}

export function shown() {
  load();
}

export function selectionChanged() {
  if (graph) draw();
}

async function load() {
  try {
    graph = await api.get("/api/research/lineage");
    els.error.textContent = "";
  } catch (err) {
    els.error.textContent = errorText(err);
    return;
  }
  draw();
}

function draw() {
  if (!graph) return;
  const nodes = graph.nodes.filter((n) => els.showTrash.checked || !n.deleted);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const edges = graph.edges.filter((e) => byId.has(e.from) && byId.has(e.to));
  // rows: within each generation, copies sit in their source's order, then by age
  const columns = [];
  const row = new Map();
  const parentOf = new Map(edges.filter((e) => e.kind === "duplicated").map((e) => [e.to, e.from]));
  for (const n of [...nodes].sort((a, b) => a.depth - b.depth || a.id - b.id)) (columns[n.depth] ||= []).push(n);
  columns.forEach((col, d) => {
    if (d > 0) col.sort((a, b) => (row.get(parentOf.get(a.id)) ?? 0) - (row.get(parentOf.get(b.id)) ?? 0) || a.id - b.id);
    col.forEach((n, i) => row.set(n.id, i));
  });
  const rows = Math.max(1, ...columns.map((c) => c?.length || 0));
  const width = Math.max(1, columns.length) * (NODE_W + GAP_X) - GAP_X + 20;
  const height = rows * (NODE_H + GAP_Y) - GAP_Y + 20;
  const pos = (n) => ({ x: 10 + n.depth * (NODE_W + GAP_X), y: 10 + row.get(n.id) * (NODE_H + GAP_Y) });
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "research-svg lineage-svg", role: "img",
    "aria-label": `Family tree of ${nodes.length} models` },
    svg("defs", {},
      svg("marker", { id: "lineage-arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" },
        svg("path", { d: "M0,0 L10,5 L0,10 z", class: "lineage-arrow" }))));
  for (const e of edges) {
    const a = pos(byId.get(e.from));
    const b = pos(byId.get(e.to));
    let d;
    if (e.kind === "duplicated" || b.x > a.x) {
      const [x1, y1, x2, y2] = [a.x + NODE_W, a.y + NODE_H / 2, b.x, b.y + NODE_H / 2];
      d = `M${x1},${y1} C${x1 + GAP_X / 2},${y1} ${x2 - GAP_X / 2},${y2} ${x2},${y2}`;
    } else {
      // an import between models of the same or an earlier generation: an arc around the side
      const [x1, y1, x2, y2] = [a.x + NODE_W / 2, a.y + (b.y > a.y ? NODE_H : 0), b.x + NODE_W / 2, b.y + (b.y > a.y ? 0 : NODE_H)];
      const bend = b.x === a.x ? NODE_W * 0.7 : 0;
      d = `M${x1},${y1} C${x1 + bend},${(y1 + y2) / 2} ${x2 + bend},${(y1 + y2) / 2} ${x2},${y2}`;
    }
    root.append(svg("path", { d, class: `lineage-edge lineage-${e.kind}`, "marker-end": "url(#lineage-arrow)",
      "data-kind": e.kind, "data-from": byId.get(e.from).model_name, "data-to": byId.get(e.to).model_name, "data-testid": "lineage-edge" }));
  }
  const current = selection.current();
  for (const n of nodes) {
    const { x, y } = pos(n);
    const grown = n.layers_grown.reduce((s, g) => s + Math.max(0, (g.to ?? 0) - (g.from ?? 0)), 0);
    const g = svg("g", { class: `lineage-node${n.deleted ? " is-deleted" : ""}${n.model_name === current ? " is-current" : ""}`,
      transform: `translate(${x},${y})`, "data-model": n.model_name, "data-testid": "lineage-node", "data-deleted": String(n.deleted),
      tabindex: n.deleted ? null : "0", role: n.deleted ? null : "button" },
      svg("rect", { width: NODE_W, height: NODE_H, rx: 6 }),
      text({ x: 10, y: 19, class: "lineage-name" }, n.model_name.length > 20 ? `${n.model_name.slice(0, 19)}…` : n.model_name),
      text({ x: 10, y: 37, class: "lineage-meta" },
        `${n.n_layer} layers · ${formatParams(n.n_params)}${n.deleted ? " · in trash" : ` · ${n.epochs_trained} ep`}`),
      grown ? text({ x: NODE_W - 8, y: 19, "text-anchor": "end", class: "lineage-badge", "data-testid": "lineage-grown" }, `+${grown} layers`) : null,
      titled(`${n.model_name}${n.deleted ? " (in the trash)" : ""}`));
    if (!n.deleted) {
      const pick = () => selection.select(n.model_name);
      g.addEventListener("click", pick);
      g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pick(); } });
    }
    root.append(g);
  }
  els.graph.dataset.nodes = String(nodes.length);
  els.graph.dataset.edges = String(edges.length);
  fill(els.graph, nodes.length ? root : h("p", { class: "muted" }, "No models yet."));
}
