// Sampling controls with named presets: a preset picker (Precise, Balanced, Creative, Custom)
// and the six settings. Picking a preset fills the fields; editing a field makes it Custom.
// The settings are remembered per model (GET/PUT /api/models/<name>/sampling).

import * as api from "../api.js";
import { debounce, fill, h, toastError } from "../ui.js";

const FIELDS = [
  { field: "temperature", label: "temperature", help: "0 is greedy; higher is wilder", step: "0.05", min: "0", max: "5" },
  { field: "top_k", label: "top_k", help: "keep the k likeliest tokens (0: all)", step: "1", min: "0" },
  { field: "top_p", label: "top_p", help: "keep the likeliest tokens up to this mass", step: "0.01", min: "0.01", max: "1" },
  { field: "repetition_penalty", label: "repetition_penalty", help: "1 is none", step: "0.01", min: "1", max: "10" },
  { field: "max_new_tokens", label: "max_new_tokens", help: "longest reply", step: "1", min: "1", max: "100000" },
  { field: "seed", label: "seed", help: "empty: a new draw each time", step: "1", min: "0" },
];

/** Build the controls in `card`; returns {load(modelName), values(), element}. */
export function createSamplingControls(card) {
  let presets = [];
  let modelName = null;
  let seq = 0;
  let edits = 0; // counts the person's edits, so a load that lands after one does not undo it
  const inputs = {};
  const preset = h("select", { id: "sampling-preset", class: "input", dataset: { testid: "sampling-preset" } });
  const error = h("p", { class: "form-error", role: "alert", dataset: { testid: "sampling-error" } });
  const grid = h("div", { class: "settings-grid sampling-grid" },
    FIELDS.map(({ field, label, help, step, min, max }) => {
      const id = `sampling-${field}`;
      const input = h("input", {
        id, class: "input input-num", type: "number", step, min, max, dataset: { testid: id },
        placeholder: field === "seed" ? "random" : null,
      });
      input.addEventListener("input", () => {
        edits += 1;
        preset.value = matchingPreset();
        save();
      });
      inputs[field] = input;
      return h("div", { class: "field" },
        h("label", { for: id, class: "field-label mono" }, label),
        input,
        h("span", { class: "field-help" }, help),
      );
    }),
  );
  preset.addEventListener("change", () => {
    edits += 1;
    const chosen = presets.find((p) => p.name === preset.value);
    if (chosen) show(chosen.sampling);
    save();
  });
  fill(card,
    h("div", { class: "card-head" }, h("h3", { id: "sampling-title" }, "Sampling"),
      h("span", { class: "muted small push-right" }, "remembered for this model")),
    h("div", { class: "field" }, h("label", { for: "sampling-preset", class: "field-label" }, "Preset"), preset),
    grid,
    error,
  );

  function show(values) {
    for (const { field } of FIELDS) {
      const v = values[field];
      inputs[field].value = v === null || v === undefined ? "" : String(v);
    }
  }

  /** The values in the fields; a field left empty (seed) is null. */
  function values() {
    const out = {};
    for (const { field } of FIELDS) {
      const text = inputs[field].value.trim();
      out[field] = text === "" ? null : Number(text);
    }
    return out;
  }

  function matchingPreset() {
    const now = values();
    const hit = presets.find((p) => FIELDS.every(({ field }) => (p.sampling[field] ?? null) === now[field]));
    return hit ? hit.name : "Custom";
  }

  // Saved 300 ms after the last edit, and at once when a reply starts (see remember), so the
  // settings a reply used are the model's remembered ones even if the window closes right after.
  async function remember() {
    if (!modelName) return;
    const name = modelName;
    try {
      await api.put(`/api/models/${api.seg(name)}/sampling`, { preset: preset.value, sampling: values() });
      error.textContent = "";
    } catch (err) {
      if (name === modelName) error.textContent = err.message;
    }
  }
  const save = debounce(remember, 300);

  async function load(name) {
    const mine = ++seq;
    const editsBefore = edits;
    modelName = name;
    error.textContent = "";
    try {
      if (!presets.length) {
        presets = (await api.get("/api/sampling-presets")).presets;
        fill(preset, [...presets.map((p) => h("option", { value: p.name }, p.name)), h("option", { value: "Custom" }, "Custom")]);
      }
      if (!name) return;
      const saved = await api.get(`/api/models/${api.seg(name)}/sampling`);
      if (mine !== seq) return;
      // The person typed while this was on its way: what they typed is newer than what was
      // saved, and the debounced save is already taking it to the store.
      if (edits !== editsBefore) return;
      show(saved.sampling);
      preset.value = saved.preset;
    } catch (err) {
      if (mine === seq) toastError(err);
    }
  }

  return { load, values, remember, element: card };
}
