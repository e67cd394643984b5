// The Models tab's Export… dialog: a model leaves the app as a GGUF file (llama.cpp, Ollama,
// LM Studio), an Ollama folder or a Hugging Face folder, written by an "export" job
// (services/exports.py, jobs/export.py).
//
// The form asks where (a path field always; "Choose…" opens the native folder dialog in the
// desktop window), in which format and type. A refusal (the file exists, the folder is not
// empty, not a full path) comes back before any job and is said in the dialog, which keeps
// what was typed. Then the job as the store has it now, kept true by the change feed: its
// progress, message and Stop; at the end, what was written, the checkpoint it came from, and a
// command that runs it, with Copy. The job runs in its own process: closing the dialog or
// reloading the window leaves it running, and Export… shows it again.

import * as api from "../api.js";
import { canPickFolder, pickFolder } from "../bridge.js";
import * as store from "../store.js";
import { copyText, errorText, fill, formatInt, h, sentence, toast } from "../ui.js";
import { isActive, progressBar, stateBadge } from "./job-progress.js";

const DTYPE_WORDS = {
  f32: "f32: exact, the weights as trained",
  f16: "f16: half the size, all but exact",
  q8_0: "q8_0: about a quarter of the size, a little less exact",
};
const WHERE_HELP = {
  gguf: "A folder (the file is named after the model and its type there), or a full path ending in .gguf.",
  ollama: "A new or empty folder; it is made if the folder above it exists.",
  hf: "A new or empty folder; it is made if the folder above it exists.",
};
const OVERWRITE_LABEL = {
  gguf: "Replace the file if it is there",
  ollama: "Write into the folder even if it is not empty",
};
const RUN_LABEL = {
  gguf: "Run it with llama.cpp:",
  ollama: "Add it to Ollama and run it:",
  hf: "Load it with Hugging Face transformers:",
};
const PATH_CODES = ["invalid_path", "file_exists", "folder_not_empty"];

let formatsAsked = null; // GET /api/export-formats: the same for the whole session
let opening = false;

function exportFormats() {
  formatsAsked ??= api.get("/api/export-formats").then((a) => a.formats).catch((err) => {
    formatsAsked = null; // asked again next time
    throw err;
  });
  return formatsAsked;
}

/** The model's export jobs the store knows, newest first. */
function exportsOf(modelId) {
  return store.jobsOf(modelId).filter((j) => j.kind === "export");
}

/**
 * Open the Export… dialog for the model `modelName`. An export of it that is still running is
 * shown at once (a reloaded window finds it in the store); otherwise the form.
 */
export async function openExportDialog(modelName) {
  const model = store.byName(modelName);
  if (!model || opening) return; // a double click opens one dialog
  opening = true;
  let formats;
  let picker;
  try {
    // The model's newest jobs too: its last export is offered to look at again.
    [formats, picker] = await Promise.all([exportFormats(), canPickFolder(), store.needJobs(model.id).catch(() => {})]);
  } finally {
    opening = false;
  }
  const dialog = h("dialog", { class: "dialog export-dialog", dataset: { testid: "export-dialog" }, "aria-labelledby": "export-title" });
  let unsubscribe = null;
  dialog.addEventListener("close", () => {
    if (unsubscribe) unsubscribe();
    dialog.remove();
  });
  const close = () => dialog.close();
  const form = buildForm(model, formats, picker, { close, follow });

  /** Show the job `job` (as the store has it, live) instead of the form. */
  function follow(job) {
    if (unsubscribe) unsubscribe();
    let shown = job;
    let drawn = "";
    let asked = false;
    const draw = () => {
      // The store forgets a finished export once a newer one of the model is there: the last
      // state it had is then asked of the API once.
      const now = store.jobsOf(shown.model_id).find((j) => j.id === shown.id);
      if (now) shown = now;
      else if (!asked && isActive(shown)) {
        asked = true;
        api.get(`/api/jobs/${shown.id}`).then((j) => {
          shown = j;
          draw();
        }).catch(() => {});
      }
      // Every job's progress wakes the store's listeners: the view is built again only when
      // this job changed (a button under the pointer stays the same button).
      const stamp = JSON.stringify([shown.state, shown.progress, shown.message, shown.detail, shown.error]);
      if (stamp === drawn) return;
      drawn = stamp;
      fill(dialog, jobView(shown, { close, again: () => showForm() }));
    };
    store.accept({ job }); // what the POST answered is news too, before the feed brings it
    unsubscribe = store.subscribe(draw);
    draw(); // the store may not be loaded yet, and then subscribe does not call it
  }

  function showForm() {
    if (unsubscribe) unsubscribe();
    unsubscribe = null;
    fill(dialog, form.element);
    form.refresh();
    queueMicrotask(() => form.focus());
  }

  document.body.append(dialog);
  dialog.showModal();
  const running = exportsOf(model.id).find(isActive);
  if (running) follow(running);
  else showForm();
}

// ---- the form -----------------------------------------------------------------------------

function buildForm(model, formats, picker, { close, follow }) {
  const name = model.model_name;
  const radios = formats.map((f, i) => h("label", { class: "export-choice" },
    h("input", { type: "radio", name: "export-format", value: f.format, checked: i === 0, dataset: { testid: `export-format-${f.format}` } }),
    h("span", {}, f.label)));
  const dtype = h("select", { id: "export-dtype", class: "input", dataset: { testid: "export-dtype" } });
  const dtypeNote = h("p", { class: "field-help", dataset: { testid: "export-dtype-note" } });
  const path = h("input", {
    id: "export-path", class: "input mono", type: "text", autocomplete: "off", spellcheck: false,
    placeholder: "/full/path/to/a/folder", dataset: { testid: "export-path" }, "aria-describedby": "export-path-help",
  });
  const choose = h("button", { type: "button", class: "btn", dataset: { testid: "export-choose" }, hidden: !picker }, "Choose…");
  const pathHelp = h("p", { id: "export-path-help", class: "field-help", dataset: { testid: "export-path-help" } });
  const overwrite = h("input", { type: "checkbox", id: "export-overwrite", dataset: { testid: "export-overwrite" } });
  const overwriteText = h("span", {});
  const overwriteRow = h("label", { class: "export-choice", for: "export-overwrite" }, overwrite, overwriteText);
  const error = h("p", { class: "form-error", role: "alert", dataset: { testid: "export-error" } });
  const submit = h("button", { type: "submit", class: "btn btn-primary", dataset: { testid: "export-submit" } }, "Export");
  const last = h("p", { class: "muted small", dataset: { testid: "export-last" } });

  const chosen = () => formats.find((f) => f.format === radios.map((r) => r.querySelector("input")).find((r) => r.checked)?.value) || formats[0];
  const sync = () => {
    const f = chosen();
    const before = dtype.value;
    fill(dtype, f.dtypes.map((d) => h("option", { value: d }, DTYPE_WORDS[d] || d)));
    dtype.value = f.dtypes.includes(before) ? before : f.dtypes.includes("f16") ? "f16" : f.dtypes[0];
    dtype.disabled = f.dtypes.length < 2;
    dtypeNote.textContent = f.dtypes.length < 2 ? "A Hugging Face folder holds the weights as trained (f32)." : "";
    pathHelp.textContent = WHERE_HELP[f.format] || "";
    overwriteRow.hidden = !OVERWRITE_LABEL[f.format];
    overwriteText.textContent = OVERWRITE_LABEL[f.format] || "";
    if (overwriteRow.hidden) overwrite.checked = false;
    error.textContent = "";
  };
  for (const r of radios) r.querySelector("input").addEventListener("change", sync);
  path.addEventListener("input", () => {
    error.textContent = "";
    path.removeAttribute("aria-invalid");
  });

  choose.addEventListener("click", async () => {
    try {
      const folder = await pickFolder(path.value.trim() || undefined);
      if (!folder) return;
      // A GGUF goes into the folder chosen; a folder export gets a new folder of its own in it.
      const f = chosen().format;
      const sep = folder.includes("\\") && !folder.includes("/") ? "\\" : "/";
      const own = name.replace(/[\\/:*?"<>|\s]+/g, "-");
      path.value = f === "gguf" ? folder : `${folder.replace(/[\\/]+$/, "")}${sep}${own}-${f}`;
      path.dispatchEvent(new Event("input"));
    } catch (err) {
      error.textContent = errorText(err);
    }
  });

  const onSubmit = async (event) => {
    event.preventDefault();
    if (submit.disabled) return;
    const f = chosen();
    if (!path.value.trim()) {
      error.textContent = "Give the folder to export to.";
      path.focus();
      return;
    }
    submit.disabled = true;
    error.textContent = "";
    try {
      const body = { format: f.format, path: path.value.trim(), overwrite: overwrite.checked };
      if (f.dtypes.length > 1) body.dtype = dtype.value;
      follow(await api.post(`/api/models/${api.seg(name)}/export`, body));
    } catch (err) {
      error.textContent = errorText(err);
      if (PATH_CODES.includes(err.code)) {
        path.setAttribute("aria-invalid", "true");
        path.focus();
      }
    } finally {
      submit.disabled = false;
    }
  };

  const element = h("form", { class: "dialog-form", novalidate: true, onsubmit: onSubmit },
    h("h2", { class: "dialog-title", id: "export-title" }, `Export ${name}`),
    h("fieldset", { class: "export-formats" },
      h("legend", { class: "field-label" }, "Format"), radios),
    h("div", { class: "field" }, h("label", { for: "export-dtype", class: "field-label" }, "Weights"), dtype, dtypeNote),
    h("div", { class: "field" },
      h("label", { for: "export-path", class: "field-label" }, "Where"),
      h("div", { class: "export-path-row" }, path, choose),
      pathHelp),
    overwriteRow,
    error,
    last,
    h("div", { class: "dialog-actions" },
      h("button", { type: "button", class: "btn", dataset: { testid: "export-cancel" }, onclick: close }, "Cancel"),
      submit),
  );
  sync();

  /** The last export of the model (another window's, or one before a reload), to look at again. */
  const refresh = () => {
    const job = exportsOf(model.id)[0];
    last.hidden = !job;
    fill(last, job
      ? ["Last export: ", job.message ? sentence(job.message) : stateBadge(job), " ",
        h("button", { type: "button", class: "link", dataset: { testid: "export-show-last" }, onclick: () => follow(job) }, "Show")]
      : []);
  };
  return { element, refresh, focus: () => path.focus() };
}

// ---- the job ------------------------------------------------------------------------------

function jobView(job, { close, again }) {
  const d = job.detail || {};
  const p = job.params || {};
  const done = job.state === "done";
  const active = isActive(job);
  const stop = h("button", {
    type: "button", class: "btn", dataset: { testid: "export-stop" }, disabled: job.state === "stopping",
    onclick: async () => {
      stop.disabled = true;
      try {
        store.accept({ job: await api.post(`/api/jobs/${job.id}/stop`, {}) });
      } catch (err) {
        toast(errorText(err), { kind: "error" });
        stop.disabled = false;
      }
    },
  }, "Stop");
  return h("div", { class: "dialog-form", dataset: { testid: "export-job", state: job.state, jobId: String(job.id) } },
    h("h2", { class: "dialog-title", id: "export-title" }, `Export ${job.model_name || d.model_name || ""}`),
    h("div", { class: "run-status" },
      stateBadge(job, "export-state"),
      h("span", { class: "muted small" }, `Job #${job.id}`, p.format ? ` · ${p.format}${p.dtype && p.format !== "hf" ? ` ${p.dtype}` : ""}` : ""),
      h("span", { class: "run-percent push-right mono", dataset: { testid: "export-percent" } },
        `${((Number(job.progress) || 0) * 100).toFixed(0)}%`)),
    progressBar(job.progress, { label: "Export progress", testid: "export-progress" }),
    // A finished export's message ("exported to PATH") is what its result says in full below.
    job.message && !done ? h("p", { class: "small muted", dataset: { testid: "export-message" } }, sentence(job.message)) : null,
    job.state === "queued" ? h("p", { class: "small muted" }, "It waits for the export of this model before it.") : null,
    done ? result(job) : null,
    job.state === "failed"
      ? h("p", { class: "form-error", role: "alert", dataset: { testid: "export-failed" } },
        sentence(String(job.error || job.message || "the export failed without saying why").split("\n")[0]))
      : null,
    h("div", { class: "dialog-actions" },
      active ? stop : h("button", { type: "button", class: "btn", dataset: { testid: "export-again" }, onclick: again }, "Export again…"),
      h("button", { type: "button", class: `btn${active ? "" : " btn-primary"}`, dataset: { testid: "export-close" }, onclick: close },
        active ? "Close (it goes on)" : "Close")),
  );
}

/** What a finished export wrote, which checkpoint it is, and the command that runs it. */
function result(job) {
  const d = job.detail || {};
  const files = d.files || [];
  const ck = d.checkpoint;
  const from = ck
    ? `From the checkpoint at step ${formatInt(ck.step)}, epoch ${ck.epoch}` +
      (d.training ? `; ${d.model_name} is still training (job #${d.training.job_id}), so a later export has newer weights.` : ".")
    : `${d.model_name} has not trained yet: these are the weights it was created with.`;
  return h("div", { class: "export-result", dataset: { testid: "export-result" } },
    h("p", {}, "Written to ", h("code", { class: "path", dataset: { testid: "export-path-written" } }, d.path)),
    files.length
      ? h("ul", { class: "export-files small", dataset: { testid: "export-files" } },
        files.map((f) => h("li", {}, h("code", { class: "path" }, f))))
      : null,
    h("p", { class: "small muted", dataset: { testid: "export-checkpoint" } }, from),
    d.command
      ? h("div", { class: "field" },
        h("span", { class: "field-label" }, RUN_LABEL[d.format] || "Run it:"),
        h("div", { class: "export-command-row" },
          h("pre", { class: "export-command" }, h("code", { dataset: { testid: "export-command" } }, d.command)),
          h("button", { type: "button", class: "btn btn-small", dataset: { testid: "export-copy" }, onclick: () => copyText(d.command) }, "Copy")))
      : null,
  );
}

