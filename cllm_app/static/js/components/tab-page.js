// The frame shared by the tabs that so far show the selection and what they will hold:
// a heading, the shared model selector, a summary of the selected model, and a plain note.

import * as selection from "../selection.js";
import { mountModelSelect } from "./model-select.js";
import { renderSummary } from "./model-summary.js";
import { fill, h } from "../ui.js";

/**
 * mountTabPage(panel, {title, intro, holds: [text…], extra(model) → Node|null}, {openTab})
 */
export function mountTabPage(panel, { title, intro, holds, extra = null }, { openTab }) {
  const head = h("div", { class: "panel-head" },
    h("div", { class: "panel-title" }, h("h2", {}, title), h("p", { class: "muted" }, intro)),
  );
  mountModelSelect(head);
  const summary = h("div", { class: "summary-wrap" });
  const extraBox = h("div");
  fill(panel,
    head,
    h("div", { class: "tab-grid" },
      h("div", { class: "tab-main" },
        h("section", { class: "card" }, h("div", { class: "card-head" }, h("h3", {}, "Selected model")), summary, extraBox),
      ),
      h("div", { class: "tab-side" },
        h("section", { class: "card coming" },
          h("h3", {}, "What this tab will hold"),
          h("ul", {}, holds.map((text) => h("li", {}, text))),
        ),
      ),
    ),
  );
  selection.subscribe(({ currentModel }) => {
    renderSummary(summary, currentModel, { openModels: () => openTab("models") });
    fill(extraBox, currentModel && extra ? extra(currentModel) : null);
  });
}
