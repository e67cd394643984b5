// The recipe chooser in the Training tab: "Suggest a recipe" asks the server what to train for
// the minutes in the form (GET /api/models/<name>/recipe), shows what it chose and why, and
// Apply sets it on the model (POST), its shape and tokenizer too before the model has trained.
//
//   const panel = createRecipePanel({ minutes: () => 10, onApplied: (model) => ... });
//   panel.show(model)   // the selected model (or null)

import * as api from "../api.js";
import { fill, formatInt, h, toast, toastError } from "../ui.js";

function describe(p) {
  const lines = [];
  if (p.shape) {
    lines.push(`${p.shape.n_layer} layers · ${p.shape.n_head} heads · width ${p.shape.n_embd} · context ${p.shape.block_size}`);
    lines.push(`${p.tokenizer.tokenizer === "bpe" ? `BPE tokenizer of ${formatInt(p.tokenizer.vocab_size)} tokens` : "byte tokenizer"}`);
  }
  const s = p.settings;
  lines.push(`batch ${s.batch_size} × ${s.sequence_length} · learning rate ${s.learning_rate} · warmup ${s.warmup_steps} steps`);
  lines.push(`expected: ${formatInt(p.expected.tokens)} tokens at ${formatInt(Math.round(p.expected.tokens_per_sec))} tokens/s, `
    + `${p.expected.epochs} passes over the text`);
  return lines;
}

export function createRecipePanel({ minutes, onApplied }) {
  let model = null;
  let proposal = null;
  const body = h("div", { class: "recipe-body", dataset: { testid: "recipe-body" } });
  const apply = h("button", { type: "button", class: "btn btn-small", dataset: { testid: "recipe-apply" }, hidden: true,
    onclick: () => applyIt() }, "Apply");
  const ask = h("button", { type: "button", class: "btn btn-small", dataset: { testid: "recipe-suggest" },
    onclick: () => suggest() }, "Suggest a recipe");
  const el = h("div", { class: "recipe-panel", dataset: { testid: "recipe-panel" } },
    h("div", { class: "recipe-head" }, ask, apply), body);

  function budget() {
    const m = Number(minutes());
    return m > 0 ? m : 10;
  }

  async function suggest() {
    if (!model) return;
    const name = model.model_name;
    ask.disabled = true;
    fill(body, h("p", { class: "muted small" }, `Timing this machine for ${budget()} minutes of training…`));
    try {
      const p = await api.get(`/api/models/${api.seg(name)}/recipe${api.query({ minutes: budget() })}`);
      if (model?.model_name !== name) return;
      proposal = p;
      fill(body,
        h("p", { class: "small", dataset: { testid: "recipe-summary" } }, `For ${p.minutes} minutes:`),
        h("ul", { class: "small recipe-choice" }, describe(p).map((line) => h("li", {}, line))),
        h("details", { class: "small" }, h("summary", {}, "Why"),
          h("ul", { dataset: { testid: "recipe-why" } }, p.why.map((line) => h("li", {}, line)))));
      apply.hidden = false;
    } catch (err) {
      fill(body);
      toastError(err);
    } finally {
      ask.disabled = !model;
    }
  }

  async function applyIt() {
    if (!model || !proposal) return;
    apply.disabled = true;
    try {
      await api.post(`/api/models/${api.seg(model.model_name)}/recipe`, { minutes: proposal.minutes });
      const fresh = await api.get(`/api/models/${api.seg(model.model_name)}`);
      onApplied(fresh);
      toast(`Applied the recipe for ${proposal.minutes} minutes to ${fresh.model_name}`, { kind: "ok" });
      apply.hidden = true;
    } catch (err) {
      toastError(err);
    } finally {
      apply.disabled = false;
    }
  }

  return {
    el,
    show(m) {
      if (m?.id !== model?.id) {
        proposal = null;
        apply.hidden = true;
        fill(body);
      }
      model = m;
      ask.disabled = !m || Boolean(m.busy);
      ask.title = m?.steps_trained ? "The model has trained: only batch, context and learning rate are proposed" : "";
    },
  };
}
