// A training job's progress, as the Training tab and its Jobs list show it: state, a progress
// bar, step / total_steps, epoch / target_epochs, tokens per second, ETA, the message, and a
// failed job's error in plain words.

import { fill, formatAgo, formatInt, h, sentence } from "../ui.js";
import { formatLoss } from "./loss-chart.js";

export const ACTIVE_STATES = ["queued", "running", "stopping", "paused"];

export const STATES = {
  queued: { label: "Waiting to start", tone: "warn" },
  running: { label: "Running", tone: "accent" },
  stopping: { label: "Stopping", tone: "warn" },
  paused: { label: "Paused", tone: "warn" },
  done: { label: "Finished", tone: "ok" },
  failed: { label: "Failed", tone: "danger" },
  stopped: { label: "Stopped", tone: "muted" },
  interrupted: { label: "Interrupted", tone: "warn" },
  cancelled: { label: "Cancelled", tone: "muted" },
};

export function isActive(job) {
  return Boolean(job && ACTIVE_STATES.includes(job.state));
}

/** 200 → "3 min 20 s", 45 → "45 s", 7260 → "2 h 1 min". */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return "–";
  const s = Math.round(seconds);
  const parts = (a, ua, b, ub) => (b ? `${a} ${ua} ${b} ${ub}` : `${a} ${ua}`);
  if (s < 60) return `${s} s`;
  if (s < 3600) return parts(Math.floor(s / 60), "min", s % 60, "s");
  if (s < 86400) return parts(Math.floor(s / 3600), "h", Math.floor((s % 3600) / 60), "min");
  return parts(Math.floor(s / 86400), "d", Math.floor((s % 86400) / 3600), "h");
}

/** The state of a job as a badge: data-state holds the server's word, the text a person's. */
const RUNNING_LABEL = { train: "Training", crawl: "Crawling", ingest: "Adding files", evaluate: "Evaluating", export: "Exporting" };

export function stateBadge(job, testid) {
  const spec = { ...(STATES[job.state] || { label: job.state, tone: "muted" }) };
  if (job.state === "running" && RUNNING_LABEL[job.kind]) spec.label = RUNNING_LABEL[job.kind];
  return h("span", { class: `badge badge-${spec.tone}`, dataset: { state: job.state, ...(testid ? { testid } : {}) } }, spec.label);
}

/** A progress bar for a fraction 0..1. */
export function progressBar(fraction, { small = false, label = "Training progress", testid } = {}) {
  const pct = Math.max(0, Math.min(100, (Number(fraction) || 0) * 100));
  const fill_ = h("div", { class: "progress-fill" });
  fill_.style.width = `${pct}%`;
  return h("div", {
    class: `progress${small ? " progress-small" : ""}`,
    role: "progressbar",
    "aria-label": label,
    "aria-valuemin": "0",
    "aria-valuemax": "100",
    "aria-valuenow": pct.toFixed(1),
    dataset: { value: String(Number(fraction) || 0), ...(testid ? { testid } : {}) },
  }, fill_);
}

/** The text the model wrote at the last evaluation, so the loss has something to read. */
function latestSample(samples) {
  if (!Array.isArray(samples) || samples.length === 0) return null;
  const last = samples[samples.length - 1];
  return h("div", { class: "run-sample", dataset: { testid: "job-sample" } },
    h("div", { class: "small muted" }, `Sample at step ${formatInt(last.step)}`),
    h("pre", { class: "sample-text" }, last.text || "(the model ended the text at once)"));
}

/** A failed job's error in plain words; a traceback goes under "Technical details". */
function errorBlock(error) {
  const text = String(error || "").trim();
  if (!text) return null;
  const traced = text.includes("Traceback (most recent call last)");
  const first = text.split("\n")[0];
  return h("div", { class: "job-error", role: "alert", dataset: { testid: "job-error" } },
    traced
      ? h("p", {}, "Training stopped because of a problem inside the app: ", h("code", {}, first),
        ". The last checkpoint is kept, so nothing saved was lost.")
      : h("p", {}, sentence(first)),
    traced || text.includes("\n")
      ? h("details", { class: "job-error-details" }, h("summary", {}, "Technical details"), h("pre", {}, text))
      : null,
  );
}

function stat(label, value, testid) {
  return h("div", { class: "run-stat" },
    h("dt", {}, label),
    h("dd", { dataset: { testid } }, value));
}

/**
 * Render `job` (the JSON of GET /api/jobs/<id>) into `el`. `model` (the model's details)
 * fills in what a job that has not reported yet does not know.
 */
export function renderJobProgress(el, job, { model = null } = {}) {
  if (!job) {
    const trained = model && model.steps_trained > 0;
    fill(el,
      h("p", { class: "empty", dataset: { testid: "job-none" } }, trained
        ? `No training run is active. This model has trained ${formatInt(model.steps_trained)} steps (${model.epochs_trained} of ${model.target_epochs} target epochs).`
        : "No training run yet. Add training data, check the settings, and press Start."),
    );
    el.dataset.state = "";
    el.dataset.jobId = "";
    return;
  }
  const d = job.detail || {};
  const active = isActive(job);
  const started = job.started_at || job.created_at;
  const stepText = d.step !== undefined
    ? `${formatInt(d.step)}${d.total_steps ? ` / ${formatInt(d.total_steps)}` : ""}`
    : "–";
  // A time budget's run has no epoch target: the clock ends it.
  const target = d.minutes > 0 ? undefined : d.target_epochs ?? job.params?.target_epochs ?? model?.target_epochs;
  const v = d.validation;
  const epochText = d.epoch !== undefined
    ? `${Number(d.epoch).toFixed(2)}${target !== undefined ? ` / ${target}` : ""}`
    : "–";
  el.dataset.state = job.state;
  el.dataset.jobId = String(job.id);
  fill(el,
    h("div", { class: "run-status" },
      stateBadge(job, "job-state"),
      h("span", { class: "muted small" },
        `Job #${job.id}`,
        started ? ` · started ${formatAgo(started)}` : "",
        !active && job.finished_at ? ` · ended ${formatAgo(job.finished_at)}` : ""),
      h("span", { class: "run-percent push-right mono", dataset: { testid: "job-percent" } },
        `${((Number(job.progress) || 0) * 100).toFixed(1)}%`),
    ),
    progressBar(job.progress, { testid: "job-progress-bar" }),
    d.step === undefined && !active ? null : h("dl", { class: "run-stats" },
      stat("Step", stepText, "stat-step"),
      stat("Epoch", epochText, "stat-epoch"),
      stat("Train loss", formatLoss(d.train_loss), "stat-loss"),
      stat("Tokens/s", d.tokens_per_sec ? formatInt(Math.round(d.tokens_per_sec)) : "–", "stat-speed"),
      stat("ETA", active && job.state !== "queued" ? formatDuration(d.eta_seconds) : "–", "stat-eta"),
      stat("Learning rate", d.learning_rate ? Number(d.learning_rate).toExponential(2) : "–", "stat-lr"),
      // the held-out loss, with its standard error when it is a sample of a large split
      stat("Val loss", v ? `${formatLoss(v.loss)}${v.whole ? "" : ` ± ${v.stderr.toFixed(3)}`}` : "–", "stat-val"),
      d.minutes > 0 ? stat("Time", `${((Number(job.progress) || 0) * d.minutes).toFixed(1)} of ${d.minutes} min`, "stat-time") : null,
    ),
    d.engine ? h("p", { class: "job-engine small muted", dataset: { testid: "job-engine" } }, `Engine: ${d.engine.label}`) : null,
    latestSample(d.samples),
    job.message && job.state !== "running" ? h("p", { class: "job-message small muted", dataset: { testid: "job-message" } }, sentence(job.message)) : null,
    job.state === "failed" ? errorBlock(job.error || job.message || "the job failed without saying why") : null,
  );
}
