// The Jobs list: every active job across models (GET /api/jobs?active=1), so a person sees
// what runs and what waits. One job runs per model at a time.

import { fill, h } from "../ui.js";
import { formatDuration, progressBar, stateBadge } from "./job-progress.js";

/**
 * Render `jobs` into `el`. `current`: the selected model's name (its row is marked);
 * `onSelect(name)` selects a model; `onStop(job)` asks a job to stop.
 */
export function renderJobsList(el, jobs, { current = null, onSelect, onStop } = {}) {
  if (!jobs.length) {
    fill(el, h("p", { class: "empty", dataset: { testid: "jobs-empty" } }, "Nothing is training or waiting."));
    return;
  }
  fill(el,
    h("ul", { class: "jobs-list", dataset: { testid: "jobs-list" } },
      jobs.map((job) => {
        const d = job.detail || {};
        const eta = job.state === "running" && d.eta_seconds !== undefined ? ` · ${formatDuration(d.eta_seconds)} left` : "";
        return h("li", {
          class: `jobs-item${job.model_name === current ? " is-current" : ""}`,
          dataset: { jobId: String(job.id), model: job.model_name || "" },
        },
          h("div", { class: "jobs-item-head" },
            job.model_name && onSelect && job.model_name !== current
              ? h("button", { type: "button", class: "link jobs-model", title: "Show this model", onclick: () => onSelect(job.model_name) }, job.model_name)
              : h("span", { class: "jobs-model" }, job.model_name || "–"),
            stateBadge(job),
            onStop && ["queued", "running", "paused"].includes(job.state)
              ? h("button", { type: "button", class: "btn btn-small push-right", dataset: { testid: "jobs-stop" }, onclick: () => onStop(job) }, "Stop")
              : null,
          ),
          progressBar(job.progress, { small: true, label: `Progress of job #${job.id}` }),
          h("p", { class: "muted small" },
            `${job.kind} · job #${job.id} · ${((Number(job.progress) || 0) * 100).toFixed(0)}%${eta}`),
        );
      }),
    ),
  );
}
