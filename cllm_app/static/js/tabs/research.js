// The Research tab: the shared model selector, then five views of the selected model and its
// relatives: Evaluate, Compare, Inspect, Lineage and Notes (one module each in ../research/).
// The open view is remembered for the session.

import * as selection from "../selection.js";
import { mountModelSelect } from "../components/model-select.js";
import { renderSummary } from "../components/model-summary.js";
import { fill, h } from "../ui.js";
import * as evaluate from "../research/evaluate.js";
import * as compare from "../research/compare.js";
import * as inspect from "../research/inspect.js";
import * as lineage from "../research/lineage.js";
import * as notes from "../research/notes.js";

const VIEW_KEY = "cllm-research-view";
const VIEWS = [
  { name: "evaluate", label: "Evaluate", module: evaluate },
  { name: "compare", label: "Compare", module: compare },
  { name: "inspect", label: "Inspect", module: inspect },
  { name: "lineage", label: "Lineage", module: lineage },
  { name: "notes", label: "Notes", module: notes },
];

let current = null;
let tabShown = false;
const boxes = {};
const buttons = {};

export function mount(panel, ctx) {
  const head = h("div", { class: "panel-head" },
    h("div", { class: "panel-title" },
      h("h2", {}, "Research"),
      h("p", { class: "muted" }, "Measure the selected model, compare it with others, look inside it, and keep notes."),
    ),
  );
  mountModelSelect(head);
  const nav = h("div", { class: "segmented research-nav", role: "group", "aria-label": "Research views" });
  for (const view of VIEWS) {
    buttons[view.name] = h("button", {
      type: "button", class: "segment", id: `research-view-${view.name}`,
      "aria-pressed": "false", "aria-controls": `research-${view.name}`,
      dataset: { testid: `research-view-${view.name}` }, onclick: () => show(view.name),
    }, view.label);
    nav.append(buttons[view.name]);
    boxes[view.name] = h("div", {
      class: "research-view", id: `research-${view.name}`, role: "region", hidden: true,
      "aria-labelledby": `research-view-${view.name}`, dataset: { testid: `research-${view.name}` },
    });
    view.module.mount(boxes[view.name], ctx);
  }
  const summary = h("div", { class: "summary-wrap" });
  const summaryTitle = h("span", {}, "Selected model");
  const details = h("details", { class: "card research-summary" }, h("summary", {}, summaryTitle), summary);
  fill(panel, head, details, nav, VIEWS.map((v) => boxes[v.name]));
  selection.subscribe((snap) => {
    renderSummary(summary, snap.currentModel, { openModels: () => ctx.openTab("models") });
    summaryTitle.textContent = snap.currentModel ? `Selected model: ${snap.currentModel.model_name}` : "No model selected";
    for (const view of VIEWS) view.module.selectionChanged?.(snap);
  });
  show(sessionStorage.getItem(VIEW_KEY) || "evaluate", { quiet: true });
}

function show(name, { quiet = false } = {}) {
  if (!VIEWS.some((v) => v.name === name)) name = "evaluate";
  current = name;
  for (const view of VIEWS) {
    const active = view.name === name;
    buttons[view.name].setAttribute("aria-pressed", String(active));
    boxes[view.name].hidden = !active;
  }
  sessionStorage.setItem(VIEW_KEY, name);
  if (!quiet || tabShown) VIEWS.find((v) => v.name === name).module.shown?.();
}

/** Called by app.js when the Research tab opens. */
export function shown() {
  tabShown = true;
  VIEWS.find((v) => v.name === current)?.module.shown?.();
}
