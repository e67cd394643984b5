// The Research tab: evaluating, comparing and looking inside models.

import { mountTabPage } from "../components/tab-page.js";

export function mount(panel, ctx) {
  mountTabPage(panel, {
    title: "Research",
    intro: "Measure the selected model and see how it works.",
    holds: [
      "Evaluation: loss and perplexity of the selected model on held-out text.",
      "Comparison of two models side by side, such as a model and its duplicate.",
      "Inspection of the model's layers, attention and weights.",
    ],
  }, ctx);
}
