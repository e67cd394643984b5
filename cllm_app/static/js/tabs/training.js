// The Training tab: the selected model's training settings (saved with PATCH /api/models/<name>).
// Starting and watching a training run, with its live loss chart, comes here next.

import * as api from "../api.js";
import * as selection from "../selection.js";
import { mountModelSelect } from "../components/model-select.js";
import { renderSummary } from "../components/model-summary.js";
import { errorText, fill, h, toast } from "../ui.js";

const FIELDS = [
  { field: "batch_size", help: "sequences per step", step: "1", min: "1", max: "1024" },
  { field: "sequence_length", help: "tokens per sequence, at most block_size", step: "1", min: "8", max: "8192" },
  { field: "learning_rate", help: "peak step size", step: "any", min: "0", max: "1" },
  { field: "target_epochs", help: "passes over the queue to reach", step: "1", min: "0" },
  { field: "grad_accum", help: "steps whose gradients add up before an update", step: "1", min: "1", max: "1024" },
  { field: "eval_interval", help: "steps between evaluations", step: "1", min: "1" },
  { field: "checkpoint_interval", help: "steps between checkpoints", step: "1", min: "1" },
  { field: "warmup_steps", help: "steps of rising learning rate", step: "1", min: "0" },
  { field: "weight_decay", help: "AdamW weight decay", step: "any", min: "0", max: "1" },
  { field: "seed", help: "random seed", step: "1", min: "0" },
];

let els = {};
let loaded = null; // the model whose settings the form shows
let dirty = false;
let seq = 0;

export function mount(panel, { openTab }) {
  const head = h("div", { class: "panel-head" },
    h("div", { class: "panel-title" },
      h("h2", {}, "Training"),
      h("p", { class: "muted" }, "How the selected model learns from the text in its queue."),
    ),
  );
  mountModelSelect(head);
  els.summary = h("div", { class: "summary-wrap" });
  els.form = buildForm();
  els.formCard = h("section", { class: "card", "aria-labelledby": "training-settings-title" },
    h("div", { class: "card-head" }, h("h3", { id: "training-settings-title" }, "Training settings")),
    els.form,
  );
  fill(panel,
    head,
    h("div", { class: "tab-grid" },
      h("div", { class: "tab-main" }, els.formCard),
      h("div", { class: "tab-side" },
        h("section", { class: "card" }, h("div", { class: "card-head" }, h("h3", {}, "Selected model")), els.summary),
        h("section", { class: "card coming" },
          h("h3", {}, "What this tab will hold"),
          h("p", {}, "Starting, pausing and stopping training of the selected model on its queue, with a live chart of the training and evaluation loss as it learns, and its checkpoints."),
        ),
      ),
    ),
  );
  selection.subscribe((state) => {
    renderSummary(els.summary, state.currentModel, { openModels: () => openTab("models") });
    const m = state.currentModel;
    if (!m) {
      loaded = null;
      showForm(null);
    } else if (!loaded || loaded.id !== m.id || (!dirty && loaded.updated_at !== m.updated_at)) {
      load(m.model_name);
    }
  });
}

function buildForm() {
  els.inputs = {};
  const fields = FIELDS.map(({ field, help, step, min, max }) => {
    const id = `training-${field}`;
    const input = h("input", {
      id, class: "input input-num", type: "number", name: field, step, min, max,
      dataset: { testid: id }, "aria-describedby": `${id}-help`,
    });
    input.addEventListener("input", () => {
      dirty = true;
      els.error.textContent = "";
      els.save.disabled = changed() === null || Object.keys(changed()).length === 0;
    });
    els.inputs[field] = input;
    return h("div", { class: "field" },
      h("label", { for: id, class: "field-label mono" }, field),
      input,
      h("span", { id: `${id}-help`, class: "field-help" }, help),
    );
  });
  els.save = h("button", { type: "submit", class: "btn btn-primary", dataset: { testid: "training-save" }, disabled: true }, "Save");
  els.revert = h("button", { type: "button", class: "btn", onclick: () => showForm(loaded) }, "Revert");
  els.error = h("p", { class: "form-error", role: "alert", dataset: { testid: "training-error" } });
  els.empty = h("p", { class: "empty", hidden: true }, "Select a model to see its training settings.");
  els.grid = h("div", { class: "settings-grid" }, fields);
  els.actions = h("div", { class: "form-actions" }, els.save, els.revert);
  return h("form", { class: "training-form", novalidate: true, onsubmit: save, dataset: { testid: "training-form" } },
    els.empty, els.grid, els.actions, els.error);
}

/** The fields whose value differs from the loaded model, or null when one is not a number. */
function changed() {
  if (!loaded) return null;
  const out = {};
  for (const [field, input] of Object.entries(els.inputs)) {
    const text = input.value.trim();
    const value = Number(text);
    if (text === "" || Number.isNaN(value)) return null;
    if (value !== loaded[field]) out[field] = value;
  }
  return out;
}

function showForm(model) {
  loaded = model;
  dirty = false;
  els.empty.hidden = Boolean(model);
  els.grid.hidden = !model;
  els.actions.hidden = !model;
  els.error.textContent = "";
  if (!model) return;
  for (const [field, input] of Object.entries(els.inputs)) input.value = String(model[field]);
  els.inputs.sequence_length.max = String(model.block_size);
  els.inputs.target_epochs.min = String(model.epochs_trained);
  els.save.disabled = true;
}

async function load(name) {
  const mine = ++seq;
  try {
    const model = await api.get(`/api/models/${api.seg(name)}`);
    if (mine === seq) showForm(model);
  } catch (err) {
    if (mine === seq) els.error.textContent = errorText(err);
  }
}

async function save(event) {
  event.preventDefault();
  const body = changed();
  if (body === null) {
    const bad = Object.entries(els.inputs).find(([, input]) => input.value.trim() === "" || Number.isNaN(Number(input.value)));
    els.error.textContent = `${bad ? bad[0] : "Every field"} needs a number.`;
    return;
  }
  if (!Object.keys(body).length) return;
  els.save.disabled = true;
  try {
    const model = await api.patch(`/api/models/${api.seg(loaded.model_name)}`, body);
    showForm(model);
    toast(`Saved the training settings of ${model.model_name}`, { kind: "ok" });
    await selection.refresh();
  } catch (err) {
    els.error.textContent = errorText(err);
    els.save.disabled = false;
  }
}
