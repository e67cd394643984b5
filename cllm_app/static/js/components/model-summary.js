// A short summary of the selected model, shown at the top of every tab except Models.

import * as selection from "../selection.js";
import { fill, formatBytes, formatInt, formatParams, h } from "../ui.js";

function row(label, value, testid) {
  return [h("dt", {}, label), h("dd", testid ? { dataset: { testid } } : {}, value)];
}

/** Which weights the model answers with (chat, export, evaluate), and its best ones. */
export function weightsInUse(m) {
  const best = m.best ? `step ${formatInt(m.best.step)}, validation loss ${m.best.val_loss.toFixed(4)}` : null;
  if (m.use_weights === "best") return best ? `best (${best})` : "latest (best chosen, but no validation loss yet)";
  return `latest (step ${formatInt(m.steps_trained)})${best ? ` · best kept: ${best}` : ""}`;
}

/** Render `model` (a list entry from GET /api/models) into `el`; `openModels` shows the Models tab. */
export function renderSummary(el, model, { openModels } = {}) {
  if (!model) {
    const hasModels = selection.models().length > 0;
    fill(el,
      h("p", { class: "empty" },
        hasModels ? "No model is selected. Choose one above." : "There are no models yet. Create one in the Models tab."),
      !hasModels && openModels
        ? h("button", { type: "button", class: "btn", onclick: openModels }, "Open the Models tab")
        : null,
    );
    return;
  }
  fill(el,
    h("dl", { class: "summary", dataset: { testid: "model-summary" } },
      row("Name", model.model_name, "summary-name"),
      row("Parameters", h("span", { title: formatInt(model.n_params) }, `${formatParams(model.n_params)} (${formatInt(model.n_params)})`)),
      row("Shape", `${model.n_layer} layers · ${model.n_head} heads · ${model.n_embd} wide · ${model.block_size} tokens of context`),
      row("Epochs", `${model.epochs_trained} trained of ${model.target_epochs} target`),
      row("Weights", weightsInUse(model), "summary-weights"),
      row("Queue", `${formatInt(model.queue.items)} items · ${formatInt(model.queue.tokens)} tokens`),
      row("Size on disk", formatBytes(model.disk_bytes)),
      model.busy ? row("Busy", `${model.busy.kind} job #${model.busy.job_id} is ${model.busy.state}`) : null,
    ),
  );
}
