// Evaluate: loss, perplexity and bits per byte of the selected model on its validation split,
// another model's queue, a pasted text or a file. A large input comes back as an "evaluate"
// job; its progress is polled (GET /api/jobs/<id>) and its result read from the job's detail.

import * as api from "../api.js";
import * as selection from "../selection.js";
import * as store from "../store.js";
import { errorText, fill, formatBytes, formatInt, h } from "../ui.js";
import { formatLoss } from "../components/loss-chart.js";
import { progressBar } from "../components/job-progress.js";


let els = {};
let model = null;
let running = null; // {jobId} while a job is polled

export function mount(box) {
  const radio = (value, label) => h("label", { class: "choice" },
    h("input", { type: "radio", name: "eval-source", value, checked: value === "validation",
      dataset: { testid: `eval-source-${value}` }, onchange: sync }), h("span", {}, label));
  els.otherModel = h("select", { class: "input", dataset: { testid: "eval-from-model" }, "aria-label": "Model whose queue" });
  els.split = h("select", { class: "input", dataset: { testid: "eval-split" }, "aria-label": "Part of the queue" },
    h("option", { value: "all" }, "all of it"), h("option", { value: "validation" }, "its validation split"));
  els.text = h("textarea", { class: "input research-text", rows: 6, placeholder: "Paste any text…",
    dataset: { testid: "eval-text" }, "aria-label": "Text to evaluate" });
  els.file = h("input", { type: "file", accept: ".txt,.md,text/plain,text/markdown", class: "input",
    dataset: { testid: "eval-file" }, "aria-label": "Text file to evaluate" });
  els.maxTokens = h("input", { type: "number", class: "input input-num", min: "1", step: "1", value: "1000000",
    id: "eval-max-tokens", dataset: { testid: "eval-max-tokens" } });
  els.asJob = h("input", { type: "checkbox", id: "eval-as-job", dataset: { testid: "eval-as-job" } });
  els.run = h("button", { type: "button", class: "btn btn-primary", dataset: { testid: "eval-run" }, onclick: run }, "Evaluate");
  els.stop = h("button", { type: "button", class: "btn btn-danger-quiet", hidden: true, dataset: { testid: "eval-stop" }, onclick: stop }, "Stop");
  els.error = h("p", { class: "form-error", role: "alert", dataset: { testid: "eval-error" } });
  els.progress = h("div", { class: "research-progress", dataset: { testid: "eval-progress" } });
  els.result = h("div", { class: "research-result", dataset: { testid: "eval-result" } });
  els.queueRow = h("div", { class: "research-row" }, els.otherModel, els.split);
  els.history = h("ol", { class: "research-history small", dataset: { testid: "eval-history" } });
  fill(box,
    h("div", { class: "research-grid" },
      h("section", { class: "card" },
        h("div", { class: "card-head" }, h("h3", {}, "Evaluate on")),
        h("div", { class: "research-choices", role: "radiogroup", "aria-label": "Text to evaluate" },
          radio("validation", "Its own validation split"),
          radio("queue", "A model's training-data queue"),
          radio("text", "Pasted text"),
          radio("file", "A text file")),
        els.queueRow, els.text, els.file,
        h("div", { class: "research-row" },
          h("label", { class: "field", for: "eval-max-tokens" }, h("span", { class: "field-label" }, "max_tokens"), els.maxTokens),
          h("label", { class: "chart-check", for: "eval-as-job" }, els.asJob, h("span", {}, "Run as a background job"))),
        h("p", { class: "muted small" },
          "Every token is predicted after <|endoftext|>, in non-overlapping windows of the model's block_size. "
          + "Large inputs run as a background job by themselves."),
        h("div", { class: "form-actions" }, els.run, els.stop),
        els.error, els.progress),
      h("section", { class: "card" },
        h("div", { class: "card-head" }, h("h3", {}, "Result")), els.result,
        h("h4", { class: "small muted" }, "Earlier results"), els.history),
    ),
  );
  sync();
}

function source() {
  return document.querySelector('input[name="eval-source"]:checked')?.value || "validation";
}

function sync() {
  const s = source();
  els.queueRow.hidden = s !== "queue";
  els.text.hidden = s !== "text";
  els.file.hidden = s !== "file";
}

export function selectionChanged({ models, current }) {
  const keep = els.otherModel.value;
  els.otherModel.replaceChildren(...[...models].sort(selection.byName)
    .map((m) => h("option", { value: m.model_name }, m.model_name)));
  els.otherModel.value = models.some((m) => m.model_name === keep) ? keep : current || "";
  if (current !== model) {
    model = current;
    fill(els.result, h("p", { class: "muted" }, current ? `Choose a text and evaluate ${current}.` : "Choose a model first."));
    els.error.textContent = "";
  }
  els.run.disabled = !current || Boolean(running);
}

async function run() {
  const name = selection.current();
  if (!name) return;
  els.error.textContent = "";
  const s = source();
  const maxTokens = Number(els.maxTokens.value);
  const body = { max_tokens: Number.isFinite(maxTokens) && els.maxTokens.value !== "" ? maxTokens : null };
  if (els.asJob.checked) body.run = "job";
  els.run.disabled = true;
  try {
    let answer;
    if (s === "file") {
      const file = els.file.files[0];
      if (!file) throw new Error("choose a text file first");
      const form = new FormData();
      form.append("file", file);
      if (body.max_tokens) form.append("max_tokens", String(body.max_tokens));
      if (body.run) form.append("run", body.run);
      answer = await api.upload(`/api/models/${api.seg(name)}/evaluate/upload`, form);
    } else {
      if (s === "queue") Object.assign(body, { source: "queue", from_model: els.otherModel.value, split: els.split.value });
      else if (s === "text") Object.assign(body, { source: "text", text: els.text.value });
      else body.source = "validation";
      answer = await api.post(`/api/models/${api.seg(name)}/evaluate`, body);
    }
    if (answer.kind === "evaluate" && answer.id) await follow(answer);
    else showResult(answer);
  } catch (err) {
    els.error.textContent = errorText(err);
  } finally {
    running = null;
    els.stop.hidden = true;
    els.run.disabled = !selection.current();
  }
}

/** Follow an evaluate job in the store (the change feed brings its progress) until it ends. */
async function follow(job) {
  running = { jobId: job.id };
  els.stop.hidden = false;
  const show = (j) => fill(els.progress,
    progressBar(j.progress, { label: "Evaluation progress", testid: "eval-job-progress" }),
    h("p", { class: "small muted", dataset: { testid: "eval-job-message" } }, `Job #${j.id}: ${j.message || j.state}`));
  show(job);
  const ended = await store.untilEnded(job, { onProgress: show });
  fill(els.progress);
  if (ended.state === "done" || (ended.state === "stopped" && ended.detail?.tokens)) showResult(ended.detail, ended);
  else throw new Error(ended.error || ended.message || `the evaluation ${ended.state}`);
}

async function stop() {
  if (!running) return;
  try {
    await api.post(`/api/jobs/${running.jobId}/stop`);
  } catch (err) {
    els.error.textContent = errorText(err);
  }
}

function describeSource(src) {
  if (!src) return "";
  if (src.source === "text") return src.origin || "pasted text";
  if (src.source === "validation") return `its validation split`;
  return `${src.from_model}'s queue (${src.split === "validation" ? "validation split" : "all"})`;
}

function showResult(r, job = null) {
  // The own validation split is measured as the trainer does: a fixed sample of a large split,
  // with its standard error.
  const sampled = r.whole_split === false;
  const rows = [
    ["loss", formatLoss(r.loss) + (sampled ? ` ± ${r.stderr.toFixed(3)}` : ""),
      sampled ? "mean cross-entropy per token, in nats, ± its standard error (a fixed sample, as the trainer measures)"
        : "mean cross-entropy per token, in nats"],
    ["perplexity", r.perplexity === null ? "–" : r.perplexity < 1e6 ? r.perplexity.toFixed(2) : r.perplexity.toExponential(2), "exp(loss)"],
    ["bits_per_byte", r.bits_per_byte === null ? "–" : r.bits_per_byte.toFixed(4), "total nats / ln 2 / UTF-8 bytes"],
    ["tokens", formatInt(r.tokens), sampled ? `a fixed sample of ${formatInt(r.tokens)} of the split's ${formatInt(r.tokens_available)}`
      : r.truncated ? `first ${formatInt(r.tokens)} of ${formatInt(r.tokens_available)} (max_tokens)` : "every token of the text"],
    ["bytes", formatBytes(r.bytes), `${formatInt(r.bytes)} UTF-8 bytes`],
    ["documents", formatInt(r.documents), `${formatInt(r.windows)} windows of ${formatInt(r.window)}`],
  ];
  fill(els.result,
    h("p", { class: "small" }, `${r.model_name} on ${describeSource(r.source)}`, job ? ` · job #${job.id}` : "",
      r.stopped ? " · stopped early" : ""),
    h("table", { class: "table research-facts", dataset: { testid: "eval-table", loss: String(r.loss), bpb: String(r.bits_per_byte), tokens: String(r.tokens) } },
      h("tbody", {}, rows.map(([k, v, note]) => h("tr", { dataset: { field: k } },
        h("th", { class: "mono" }, k), h("td", { class: "mono", dataset: { testid: `eval-${k}` } }, v), h("td", { class: "muted small" }, note))))),
    r.truncated && !sampled ? h("p", { class: "notice notice-warn small", dataset: { testid: "eval-truncated" } },
      `Only the first ${formatInt(r.tokens)} tokens were evaluated; raise max_tokens to evaluate all ${formatInt(r.tokens_available)}.`) : null,
  );
  els.history.prepend(h("li", {}, `${r.model_name} · ${describeSource(r.source)} · loss ${formatLoss(r.loss)} · bpb ${r.bits_per_byte?.toFixed(3) ?? "–"}`));
  while (els.history.children.length > 8) els.history.lastChild.remove();
}
