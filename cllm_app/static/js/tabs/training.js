// The Training tab: the selected model's training run (Start / Continue / Stop with live
// progress), its loss chart, its training settings (saved with PATCH, or sent with the train
// request), its training-data queue (add by dialog, file input or drag and drop; preview;
// remove) and the list of active jobs across models.
//
// While a job is active the tab polls about once a second: GET /api/jobs?active=1 (the Jobs
// list, and the selected model's job), and the loss points after the last step seen
// (GET /api/models/<name>/loss-history?since_step=N). A reloaded page, or a model selected
// again, finds its active job the same way and picks up where it was. Between polls, the
// store's change feed (events.js) brings the queue, the model's numbers and the jobs up to date
// at once, whoever changed them (this window, the CLI, a job).

import * as api from "../api.js";
import * as events from "../events.js";
import * as selection from "../selection.js";
import { mountModelSelect } from "../components/model-select.js";
import { renderSummary } from "../components/model-summary.js";
import { createLossChart } from "../components/loss-chart.js";
import { createQueueTable } from "../components/queue-table.js";
import { isActive, renderJobProgress } from "../components/job-progress.js";
import { renderJobsList } from "../components/jobs-list.js";
import { errorText, fill, formatInt, formatParams, h, toast, toastError } from "../ui.js";

const POLL_ACTIVE_MS = 1000; // a job is running and the tab is open
const POLL_IDLE_MS = 5000; // the tab is open: notice jobs started elsewhere (another window, the CLI)
const POLL_HIDDEN_MS = 3000; // another tab is open and a job of this model runs: notice its end
const DETAILS_EVERY = 5; // polls between fetches of the model's details while it trains
const MAX_WINDOW = 100; // steps re-fetched behind the last one (val_loss is written after its point)

let panel;
let openTabFn = () => {};
let els = {};
let loaded = null; // the model whose settings the form shows (GET /api/models/<name>)
let loadedAt = 0; // performance.now() when `loaded` was asked for
let dirty = false;
let seq = 0;
// The form's fields, built from GET /api/training-settings (the server's one declaration of
// the settings: name, type, range, help); a model is shown once they are in place.
let fieldsReady = null;

// What the run side shows: which model, its latest job, its loss history.
let view = { id: null, name: null, seq: 0 };
let job = null;
let hist = { points: [], markers: [] };
let needFull = true; // fetch the whole history on the next poll
let activeJobs = [];
let starting = false;
let stopping = false;
let chart;
let queueTable;
let pollTimer = null;
let polling = false;
let pollAgain = false;
let pollCount = 0;

export function mount(root, { openTab }) {
  panel = root;
  openTabFn = openTab;
  const head = h("div", { class: "panel-head" },
    h("div", { class: "panel-title" },
      h("h2", {}, "Training"),
      h("p", { class: "muted" }, "Teach the selected model from the text in its queue, and watch its loss live."),
    ),
  );
  mountModelSelect(head);

  // the run: buttons, hint, refusals, progress
  els.start = h("button", { type: "button", class: "btn btn-primary", dataset: { testid: "training-start" }, onclick: () => startTraining(false) }, "Start");
  els.cont = h("button", { type: "button", class: "btn btn-primary", dataset: { testid: "training-continue" }, onclick: () => startTraining(true) }, "Continue");
  els.stop = h("button", { type: "button", class: "btn btn-danger-quiet", dataset: { testid: "training-stop" }, onclick: () => stopTraining() }, "Stop");
  els.hint = h("div", { class: "run-hint", dataset: { testid: "run-hint" } });
  els.runError = h("p", { class: "form-error", role: "alert", dataset: { testid: "run-error" } });
  els.progress = h("div", { class: "job-progress", dataset: { testid: "job-progress" } });
  const runCard = h("section", { class: "card run-card", "aria-labelledby": "training-run-title" },
    h("div", { class: "card-head run-head" },
      h("h3", { id: "training-run-title" }, "Training run"),
      h("div", { class: "run-buttons push-right" }, els.start, els.cont, els.stop),
    ),
    els.hint,
    els.runError,
    els.progress,
  );

  const chartHead = h("div", { class: "card-head chart-head" },
    h("h3", { id: "training-chart-title", title: "Updated live while the model trains" }, "Loss"),
    h("span", { class: "muted small" }, "live"));
  const chartCard = h("section", { class: "card chart-card", "aria-labelledby": "training-chart-title" }, chartHead);
  chart = createLossChart(chartCard, { toolbarHost: chartHead });

  els.form = buildForm();
  els.formCard = h("section", { class: "card settings-card", "aria-labelledby": "training-settings-title" },
    h("div", { class: "card-head" }, h("h3", { id: "training-settings-title" }, "Training settings"),
      h("span", { class: "muted small" }, "Start and Continue save changes too")),
    els.form,
  );

  const queueCard = h("section", { class: "card queue-card", "aria-labelledby": "queue-title", dataset: { testid: "queue-card" } });
  queueTable = createQueueTable(queueCard, { onChange: onQueueChanged });

  els.info = h("div", { class: "summary-wrap", dataset: { testid: "model-info" } });
  els.jobs = h("div", { class: "jobs-wrap", dataset: { testid: "jobs" } });
  fill(panel,
    head,
    h("div", { class: "tab-grid training-grid" },
      h("div", { class: "tab-main" }, runCard, chartCard, queueCard),
      h("div", { class: "tab-side" },
        h("section", { class: "card", "aria-labelledby": "training-model-title" },
          h("div", { class: "card-head" }, h("h3", { id: "training-model-title" }, "Selected model")), els.info),
        h("section", { class: "card", "aria-labelledby": "training-jobs-title" },
          h("div", { class: "card-head" }, h("h3", { id: "training-jobs-title" }, "Jobs"),
            h("span", { class: "muted small" }, "all models, running and waiting")),
          els.jobs),
        els.formCard,
      ),
    ),
  );
  els.overlay = h("div", { class: "drop-overlay", dataset: { testid: "drop-overlay" }, hidden: true, "aria-hidden": "true" });
  document.body.append(els.overlay);
  setUpDrop();
  renderJobsList(els.jobs, []);
  renderRun();

  selection.subscribe(onSelection);
  events.onChange(["queue"], (changes) => (view.name && changes.concerns(view.id) ? queueTable.load() : null));
  events.onChange(["jobs"], refreshRun);
}

/** The app shows this tab: catch up at once. */
export function shown() {
  kick();
}

// ---- selection ----------------------------------------------------------------------------

function onSelection(state) {
  const m = state.currentModel;
  if (!m) {
    renderSummary(els.info, null, { openModels: () => openTabFn("models") });
    setView(null);
    loaded = null;
    showForm(null);
    return;
  }
  if (view.id !== m.id) {
    setView(m);
  } else if (view.name !== m.model_name) {
    view.name = m.model_name; // renamed: the same model, its job and history stay
    queueTable.load(m.model_name);
  }
  // Show whichever of the list entry and the details was asked for last: updated_at counts
  // whole seconds, and a crawl or a training run changes the numbers many times a second.
  const same = loaded && loaded.id === m.id;
  const listIsNewer = !same || state.fetchedAt >= loadedAt;
  renderInfo(listIsNewer ? m : { ...loaded, model_name: m.model_name });
  if (same && loaded.model_name !== m.model_name) loaded = { ...loaded, model_name: m.model_name };
  if (!same) {
    load(m.model_name);
  } else if (listIsNewer && storeNumbersDiffer(loaded, m)) {
    load(m.model_name, { keepEdits: true });
  }
  renderJobs();
}

/** Whether the store's numbers or settings of two answers about one model differ (the form shows them). */
function storeNumbersDiffer(a, b) {
  return a.updated_at !== b.updated_at || a.epochs_trained !== b.epochs_trained || a.steps_trained !== b.steps_trained
    || a.tokens_trained !== b.tokens_trained || a.target_epochs !== b.target_epochs
    || a.queue.items !== b.queue.items || a.queue.tokens !== b.queue.tokens
    || JSON.stringify(a.busy) !== JSON.stringify(b.busy)
    // the settings too: a change within updated_at's second (the CLI's, another window's) shows
    || Object.keys(els.inputs).some((field) => a[field] !== b[field]);
}

/** Show another model (or none): its queue, its latest job and its loss history. */
function setView(m) {
  view = { id: m ? m.id : null, name: m ? m.model_name : null, seq: view.seq + 1 };
  job = null;
  hist = { points: [], markers: [] };
  needFull = true;
  els.runError.textContent = "";
  chart.clear();
  renderRun();
  queueTable.load(view.name);
  if (m) loadRun();
}

async function loadRun() {
  const mine = view.seq;
  const name = view.name;
  try {
    const { jobs } = await api.get(`/api/jobs${api.query({ model_name: name })}`);
    if (mine !== view.seq) return;
    job = jobs.find((j) => j.kind === "train") || null;
    renderRun();
    await fetchHistory(true);
  } catch (err) {
    if (mine === view.seq && err.code !== "model_not_found") toastError(err);
  }
  kick();
}

/** A job changed somewhere: when the model's latest training job is not the one shown (the
 * CLI started one, or one began and ended between two polls), show it; then poll at once. */
async function refreshRun() {
  const mine = view.seq;
  const name = view.name;
  if (name) {
    const { jobs } = await api.get(`/api/jobs${api.query({ model_name: name })}`);
    const newest = jobs.find((j) => j.kind === "train") || null;
    if (mine === view.seq && newest && (!job || newest.id !== job.id)) {
      job = newest;
      needFull = true;
      renderRun();
      await fetchHistory(true);
    }
  }
  kick();
}

// ---- model info ---------------------------------------------------------------------------

function infoRow(label, value, testid) {
  return [h("dt", {}, label), h("dd", testid ? { dataset: { testid } } : {}, value)];
}

function renderInfo(m) {
  fill(els.info,
    h("dl", { class: "summary", dataset: { testid: "model-summary" } },
      infoRow("Name", m.model_name, "summary-name"),
      infoRow("Parameters", h("span", { title: formatInt(m.n_params) }, `${formatParams(m.n_params)} (${formatInt(m.n_params)})`), "info-params"),
      infoRow("n_layer", String(m.n_layer), "info-n_layer"),
      infoRow("Shape", `${m.n_head} heads · ${m.n_embd} wide · ${m.block_size} tokens of context`),
      infoRow("Tokenizer", `${m.tokenizer} (vocab_size ${formatInt(m.vocab_size)})`, "info-tokenizer"),
      infoRow("Queue", `${formatInt(m.queue.items)} ${m.queue.items === 1 ? "item" : "items"} · ${formatInt(m.queue.tokens)} tokens`, "info-queue"),
      infoRow("Epochs", `${m.epochs_trained} trained of ${m.target_epochs} target`, "info-epochs"),
      infoRow("Trained", `${formatInt(m.steps_trained)} steps · ${formatInt(m.tokens_trained)} tokens`, "info-trained"),
    ),
  );
}

// ---- settings form (also what Start and Continue send) -------------------------------------

function loadFields() {
  return api.get("/api/training-settings").then(({ settings }) => {
    els.grid.append(...settings.map(fieldFor));
  }, (err) => {
    fieldsReady = null; // the next model shown asks again
    throw err;
  });
}

function fieldFor(setting) {
  const { name: field, type, minimum, maximum, exclusive_minimum: above, help } = setting;
  const id = `training-${field}`;
  const input = h("input", {
    id, class: "input input-num", type: "number", name: field, step: type === "integer" ? "1" : "any",
    min: String(minimum), max: String(maximum), dataset: { testid: id }, "aria-describedby": `${id}-help`,
  });
  if (above) input.title = `more than ${minimum}`;
  input.addEventListener("input", () => {
    dirty = true;
    input.removeAttribute("aria-invalid");
    els.error.textContent = "";
    const body = changed();
    els.save.disabled = body === null || Object.keys(body).length === 0;
    renderControls();
  });
  els.inputs[field] = input;
  return h("div", { class: "field" },
    h("label", { for: id, class: "field-label mono" }, field),
    input,
    h("span", { id: `${id}-help`, class: "field-help" }, help),
  );
}

function buildForm() {
  els.inputs = {};
  els.grid = h("div", { class: "settings-grid" });
  fieldsReady = loadFields();
  els.save = h("button", { type: "submit", class: "btn btn-primary", dataset: { testid: "training-save" }, disabled: true }, "Save");
  els.revert = h("button", { type: "button", class: "btn", onclick: () => showForm(loaded) }, "Revert");
  els.error = h("p", { class: "form-error", role: "alert", dataset: { testid: "training-error" } });
  els.empty = h("p", { class: "empty", hidden: true }, "Select a model to see its training settings.");
  els.formNote = h("span", { class: "muted small" });
  els.actions = h("div", { class: "form-actions" }, els.save, els.revert, els.formNote);
  return h("form", { class: "training-form", novalidate: true, onsubmit: save, dataset: { testid: "training-form" } },
    els.empty, els.grid, els.actions, els.error);
}

/** The fields whose value differs from the loaded model, or null when one is not a number. */
function changed() {
  if (!loaded) return null;
  const out = {};
  for (const [field, input] of Object.entries(els.inputs)) {
    const text = input.value.trim();
    const value = Number(text);
    if (text === "" || Number.isNaN(value)) return null;
    if (value !== loaded[field]) out[field] = value;
  }
  return out;
}

function badField() {
  const bad = Object.entries(els.inputs).find(([, input]) => input.value.trim() === "" || Number.isNaN(Number(input.value)));
  return bad ? bad[0] : null;
}

function showForm(model) {
  loaded = model;
  dirty = false;
  els.empty.hidden = Boolean(model);
  els.grid.hidden = !model;
  els.actions.hidden = !model;
  els.error.textContent = "";
  if (model) {
    for (const [field, input] of Object.entries(els.inputs)) {
      input.value = String(model[field]);
      input.removeAttribute("aria-invalid");
    }
    els.inputs.sequence_length.max = String(model.block_size);
    els.inputs.target_epochs.min = String(model.epochs_trained);
    els.save.disabled = true;
    renderInfo(model);
  }
  renderControls();
}

/** Fetch the model's details; `keepEdits`: leave the person's unsaved edits in the form. */
async function load(name, { keepEdits = false } = {}) {
  const mine = ++seq;
  try {
    await (fieldsReady ||= loadFields());
    const askedAt = performance.now();
    const model = await api.get(`/api/models/${api.seg(name)}`);
    if (mine !== seq) return;
    loadedAt = askedAt;
    const typing = Object.values(els.inputs).includes(document.activeElement);
    if (keepEdits && (dirty || typing) && loaded && loaded.id === model.id) {
      // A field the person has not touched follows the store (the CLI may have changed it), so
      // Start and Save send only their own edits; what they typed stays. The field they are in
      // is never written: a value set under the caret mid-keystroke joins what they type next.
      for (const [field, input] of Object.entries(els.inputs)) {
        if (input === document.activeElement) continue;
        if (Number(input.value) === loaded[field] && input.value.trim() !== "") input.value = String(model[field]);
      }
      loaded = model;
      renderInfo(model);
      renderControls();
    } else {
      showForm(model);
    }
  } catch (err) {
    if (mine === seq && err.code !== "model_not_found") els.error.textContent = errorText(err);
  }
}

async function save(event) {
  event.preventDefault();
  const body = changed();
  if (body === null) {
    els.error.textContent = `${badField() || "Every field"} needs a number.`;
    return;
  }
  if (!Object.keys(body).length) return;
  els.save.disabled = true;
  try {
    const model = await api.patch(`/api/models/${api.seg(loaded.model_name)}`, body);
    showForm(model);
    toast(`Saved the training settings of ${model.model_name}`, { kind: "ok" });
    await selection.refresh();
  } catch (err) {
    els.error.textContent = errorText(err);
    els.save.disabled = false;
  }
}

// ---- start, continue, stop ----------------------------------------------------------------

/** The target_epochs the form holds (what Start/Continue would save), or the saved one. */
function formTarget() {
  const input = els.inputs.target_epochs;
  const value = Number(input?.value);
  return input && input.value.trim() !== "" && Number.isInteger(value) ? value : loaded?.target_epochs;
}

function hasTrained() {
  return Boolean(loaded && (loaded.steps_trained > 0 || ["stopped", "interrupted"].includes(job?.state)));
}

function renderControls() {
  if (!els.start) return;
  const m = loaded;
  // Before the first look at the jobs, the model's own `busy` says whether a job holds it.
  const active = Boolean(m && (job ? isActive(job) : m.busy));
  if (!m) {
    els.start.disabled = els.cont.disabled = els.stop.disabled = true;
    fill(els.hint, h("p", { class: "muted" }, "Select a model to train it."));
    els.formNote.textContent = "";
    return;
  }
  const target = formTarget();
  const reached = m.epochs_trained >= target;
  const trained = hasTrained();
  els.start.disabled = Boolean(active || trained || reached || starting);
  els.cont.disabled = Boolean(active || !trained || reached || starting);
  els.stop.disabled = !active || !job || !["queued", "running", "paused"].includes(job.state) || stopping;
  els.start.title = trained ? "This model has trained before: Continue resumes from its last checkpoint" : "";
  els.cont.title = trained ? "" : "Nothing to continue yet: Start the first run";
  els.formNote.textContent = active ? "Changes apply the next time training starts or continues." : "";

  let hint;
  if (active && !job) {
    hint = h("p", { class: "muted" }, "A job of this model is active…");
  } else if (active) {
    hint = h("p", { class: "muted" }, {
      queued: "The job waits for its turn and starts in a moment.",
      running: "Training runs in the background: you can switch tabs or close the window and come back.",
      stopping: "Saving a checkpoint, then stopping…",
      paused: "Paused.",
    }[job.state]);
  } else if (reached) {
    hint = h("p", { class: "notice notice-ok", dataset: { testid: "target-reached" } },
      `The target is reached: ${m.epochs_trained} of ${m.target_epochs} target epochs trained. `,
      "To train further, raise ",
      h("button", { type: "button", class: "link mono", onclick: focusTarget }, "target_epochs"),
      " in the settings below; Continue then resumes from the last checkpoint.");
  } else if (trained) {
    hint = h("p", { class: "muted" },
      `Continue resumes from the last checkpoint (step ${formatInt(m.steps_trained)}) and trains to epoch ${target}.`);
  } else if (m.queue.items === 0) {
    hint = h("p", { class: "muted" }, "The training-data queue is empty: add text files below, then press Start.");
  } else {
    hint = h("p", { class: "muted" },
      `Start trains on the ${formatInt(m.queue.tokens)} tokens in the queue for ${target} ${target === 1 ? "epoch" : "epochs"}.`);
  }
  fill(els.hint, hint);
}

function focusTarget() {
  const input = els.inputs.target_epochs;
  input.scrollIntoView({ block: "center" });
  input.focus();
  input.select();
}

/** A refusal of the train request, in plain words. */
function refusalText(err) {
  const m = loaded;
  switch (err.code) {
    case "empty_queue":
      return "There is nothing to train on yet: the training-data queue is empty. Add text files with “Add training data…” (or drop them on this tab), then press Start.";
    case "target_reached":
      return m
        ? `This model has already trained ${m.epochs_trained} of its ${m.target_epochs} target epochs. Raise target_epochs in the settings to train further.`
        : errorText(err);
    case "already_training":
      return `${errorText(err)}. Its progress shows below; press Stop to end it.`;
    case "model_busy":
      return `${errorText(err)}.`;
    default:
      return errorText(err);
  }
}

async function startTraining(resume) {
  if (!loaded) return;
  const name = loaded.model_name;
  const body = changed();
  if (body === null) {
    els.runError.textContent = `${badField() || "Every setting"} needs a number before training can start.`;
    return;
  }
  els.runError.textContent = "";
  starting = true;
  renderControls();
  try {
    const started = await api.post(`/api/models/${api.seg(name)}/train`, body);
    if (view.name === name) {
      job = started;
      needFull = true;
      renderRun();
    }
    toast(`${resume ? "Continuing" : "Started"} training ${name}`, { kind: "ok" });
    starting = false;
    await load(name);
    await selection.refresh();
  } catch (err) {
    els.runError.textContent = refusalText(err);
    const field = err.code?.startsWith("invalid_") ? err.code.slice("invalid_".length) : null;
    if (field && els.inputs[field]) {
      els.inputs[field].setAttribute("aria-invalid", "true");
      els.inputs[field].focus();
    } else if (Object.keys(body).length) {
      await load(name); // the settings were saved before the refusal
    }
  } finally {
    starting = false;
    renderControls();
    kick();
  }
}

async function stopTraining(target = job) {
  if (!target) return;
  stopping = true;
  renderControls();
  try {
    const answer = await api.post(`/api/jobs/${target.id}/stop`, {});
    if (job && job.id === answer.id) {
      job = answer;
      renderRun();
    }
  } catch (err) {
    toastError(err);
  } finally {
    stopping = false;
    renderControls();
    kick();
  }
}

// ---- progress, history, polling -----------------------------------------------------------

function renderRun() {
  renderJobProgress(els.progress, job, { model: loaded });
  renderControls();
}

function renderJobs() {
  renderJobsList(els.jobs, activeJobs, {
    current: view.name,
    onSelect: (name) => selection.select(name),
    onStop: (j) => stopTraining(j),
  });
}

function resumedCount(markers) {
  return markers.filter((m) => m.kind === "training_resumed").length;
}

/** Fetch loss points: all of them (`full`), or those after the last step seen minus a window
 * (val_loss lands on a point after it was written). A resumed run rewrites the steps after its
 * checkpoint; its training_resumed marker tells, and everything is fetched again. */
async function fetchHistory(full = false) {
  const mine = view.seq;
  const name = view.name;
  if (!name) return;
  const last = hist.points.length ? hist.points[hist.points.length - 1].step : 0;
  const window = Math.min(MAX_WINDOW, Math.max(1, loaded?.eval_interval || 1));
  const since = full ? 0 : Math.max(0, last - window);
  const answer = await api.get(`/api/models/${api.seg(name)}/loss-history${api.query({ since_step: since })}`);
  if (mine !== view.seq) return;
  if (!full && resumedCount(answer.markers) !== resumedCount(hist.markers)) {
    await fetchHistory(true);
    return;
  }
  hist = {
    points: full ? answer.points : hist.points.filter((p) => p.step <= since).concat(answer.points),
    markers: answer.markers,
  };
  chart.update(hist);
}

/** Poll now (or right after the poll in flight). */
function kick() {
  clearTimeout(pollTimer);
  pollTimer = null;
  if (polling) {
    pollAgain = true;
    return;
  }
  poll();
}

async function poll() {
  polling = true;
  let delay = null;
  try {
    delay = await pollOnce();
  } catch (err) {
    console.warn("training poll failed", err);
    delay = POLL_IDLE_MS;
  } finally {
    polling = false;
  }
  if (pollAgain) {
    pollAgain = false;
    poll();
  } else if (delay !== null) {
    pollTimer = setTimeout(poll, delay);
  }
}

/** One look at the jobs and the selected model's run; returns the delay until the next. */
async function pollOnce() {
  const visible = !panel.hidden;
  const mine = view.seq;
  const name = view.name;
  pollCount += 1;
  const { jobs } = await api.get(`/api/jobs${api.query({ active: 1 })}`);
  const before = new Set(activeJobs.map((j) => j.id));
  activeJobs = jobs;
  renderJobs();
  if (jobs.some((j) => !before.has(j.id)) || [...before].some((id) => !jobs.some((j) => j.id === id))) {
    selection.refresh().catch(() => {}); // busy badges and epochs elsewhere in the app
  }
  if (name && mine === view.seq) {
    const current = jobs.find((j) => j.model_name === name && j.kind === "train");
    if (current) {
      if (!job || job.id !== current.id) needFull = true;
      job = current;
      renderRun();
      if (visible) {
        const full = needFull;
        await fetchHistory(full);
        // Once the worker reports a step it has cleared what its checkpoint did not keep.
        if (full && (current.detail?.step !== undefined || !isActive(current))) needFull = false;
      }
      if (pollCount % DETAILS_EVERY === 0) await load(name, { keepEdits: true });
    } else if (isActive(job)) {
      // It ended since the last look: its final state, every point, and the model's epochs.
      const ended = await api.get(`/api/jobs/${job.id}`);
      if (mine !== view.seq) return 0;
      job = ended;
      renderRun();
      await fetchHistory(true);
      await load(name, { keepEdits: true });
      renderRun();
      announceEnd(ended);
    }
  }
  if (!name && !jobs.length && !visible) return null;
  const running = jobs.length > 0 || isActive(job);
  if (visible) return running ? POLL_ACTIVE_MS : POLL_IDLE_MS;
  return running ? POLL_HIDDEN_MS : null; // shown() starts polling again
}

function announceEnd(ended) {
  const name = ended.model_name;
  if (ended.state === "done") toast(`${name} reached its target epochs`, { kind: "ok" });
  else if (ended.state === "failed") toast(`Training ${name} failed; the reason is in the Training tab`, { kind: "error" });
  else if (ended.state === "interrupted") toast(`Training ${name} was interrupted; Continue resumes from the last checkpoint`, { kind: "error" });
}

function onQueueChanged() {
  if (!view.name) return;
  load(view.name, { keepEdits: true });
  fetchHistory(isActive(job) ? false : true).catch(() => {}); // the data_added markers
  selection.refresh().catch(() => {});
}

// ---- drag and drop ------------------------------------------------------------------------

function isFileDrag(e) {
  return Boolean(e.dataTransfer && [...(e.dataTransfer.types || [])].includes("Files"));
}

function setUpDrop() {
  let depth = 0;
  const show = () => {
    els.overlay.hidden = false;
    fill(els.overlay, h("div", { class: "drop-box" }, h("div", { class: "drop-message" },
      view.name
        ? [h("strong", {}, "Drop text files to add them"), h("span", { class: "muted" }, `to the training data of ${view.name}`)]
        : [h("strong", {}, "Select a model first"), h("span", { class: "muted" }, "Files dropped here go to the selected model's training data")])));
  };
  const hide = () => {
    depth = 0;
    els.overlay.hidden = true;
    fill(els.overlay);
  };
  window.addEventListener("dragenter", (e) => {
    if (!isFileDrag(e) || panel.hidden || e.defaultPrevented) return;
    e.preventDefault();
    depth += 1;
    show();
  });
  window.addEventListener("dragover", (e) => {
    if (!isFileDrag(e) || e.defaultPrevented) return;
    e.preventDefault(); // without this a dropped file would replace the app in the window
    if (panel.hidden) {
      e.dataTransfer.dropEffect = "none";
      return;
    }
    e.dataTransfer.dropEffect = view.name ? "copy" : "none";
    if (els.overlay.hidden) show();
  });
  window.addEventListener("dragleave", (e) => {
    if (panel.hidden || els.overlay.hidden) return;
    depth = Math.max(0, depth - 1);
    if (depth === 0 || e.relatedTarget === null) hide();
  });
  window.addEventListener("drop", (e) => {
    const files = [...(e.dataTransfer?.files || [])];
    if ((!files.length && !isFileDrag(e)) || e.defaultPrevented) return;
    e.preventDefault();
    hide();
    if (panel.hidden || !files.length) return;
    if (!view.name) {
      toast("Select a model first; dropped files go to its training data", { kind: "error" });
      return;
    }
    queueTable.upload(files);
  });
}
