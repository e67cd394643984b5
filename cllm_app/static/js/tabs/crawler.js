// The Crawler tab: gathering text from the web into the selected model's training queue.

import { mountTabPage } from "../components/tab-page.js";
import { formatInt, h } from "../ui.js";

export function mount(panel, ctx) {
  mountTabPage(panel, {
    title: "Crawler",
    intro: "Where the selected model's training text comes from.",
    holds: [
      "A crawler that fetches web pages you point it at and turns them into plain text.",
      "The selected model's queue: the texts waiting to be trained on, with their token counts.",
      "Adding your own files to the queue.",
    ],
    extra: (m) => h("dl", { class: "facts" },
      h("dt", {}, "Queue"), h("dd", { dataset: { testid: "crawler-queue" } }, `${formatInt(m.queue.items)} items · ${formatInt(m.queue.tokens)} tokens`),
      h("dt", {}, "Queue folder"), h("dd", {}, h("code", { class: "path" }, m.queue_directory)),
    ),
  }, ctx);
}
