// The model selector every tab shows: a <select class="model-select"> bound to selection.js.
// Changing it in any tab changes the selection everywhere.

import * as selection from "../selection.js";
import { h } from "../ui.js";

let counter = 0;

/** Put a labelled selector into `container`; returns the <select>. */
export function mountModelSelect(container, { label = "Model" } = {}) {
  const id = `model-select-${++counter}`;
  const select = h("select", { id, class: "model-select input", dataset: { testid: "model-select" } });
  const wrapper = h("div", { class: "model-select-field" },
    h("label", { for: id, class: "field-label" }, label),
    select,
  );
  container.append(wrapper);

  select.addEventListener("change", () => {
    selection.select(select.value || null);
  });

  selection.subscribe(({ models, current }) => {
    const options = [];
    if (!models.length) {
      options.push(h("option", { value: "", disabled: true }, "No models yet"));
    } else if (!current) {
      options.push(h("option", { value: "", disabled: true }, "Choose a model…"));
    }
    for (const model of [...models].sort(selection.byName)) {
      options.push(h("option", { value: model.model_name }, model.model_name));
    }
    select.replaceChildren(...options);
    select.value = current || "";
    select.disabled = !models.length;
  });
  return select;
}
