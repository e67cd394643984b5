// The LLM tab: talking to the selected model (chat) and generating text from a prompt.

import { mountTabPage } from "../components/tab-page.js";

export function mount(panel, ctx) {
  mountTabPage(panel, {
    title: "LLM",
    intro: "Talk to the selected model and let it write.",
    holds: [
      "A chat with the selected model.",
      "Text generation from a prompt, with temperature, top-k and length controls.",
    ],
  }, ctx);
}
