// The Training tab: the selected model's training run (Start / Continue / Stop with live
// progress), its loss chart, its training settings (saved with PATCH, or sent with the train
// request), its training-data queue (add by dialog, file input or drag and drop; preview;
// remove) and the list of active jobs across models.
//
// Everything it shows of a model and its jobs is the window's one store (store.js), which the
// change feed keeps true whoever changed it (this window, the CLI, a job's worker); nothing
// here polls. The loss points and the queue's items, which no event carries, are fetched when
// a change of theirs concerns the model shown (events.onChange).

import * as api from "../api.js";
import * as events from "../events.js";
import * as selection from "../selection.js";
import * as store from "../store.js";
import { mountModelSelect } from "../components/model-select.js";
import { renderSummary, weightsInUse } from "../components/model-summary.js";
import { createLossChart } from "../components/loss-chart.js";
import { createQueueTable } from "../components/queue-table.js";
import { createRecipePanel } from "../components/recipe-panel.js";
import { createEngineChoice } from "../components/engine-choice.js";
import { isActive, renderJobProgress } from "../components/job-progress.js";
import { renderJobsList } from "../components/jobs-list.js";
import { errorText, fill, formatInt, formatParams, h, toast, toastError } from "../ui.js";

const MAX_WINDOW = 100; // steps re-fetched behind the last one (val_loss is written after its point)

let panel;
let openTabFn = () => {};
let els = {};
let loaded = null; // the model whose settings the form shows: the store's, when last put in the form
let dirty = false;
// The form's fields, built from GET /api/training-settings (the server's one declaration of
// the settings: name, type, range, help); a model is shown once they are in place.
let fieldsReady = null;

// What the run side shows: which model (by id), its latest training job, its loss history.
let view = { id: null, seq: 0 };
let job = null;
let hist = { points: [], markers: [] };
let starting = false;
let stopping = false;
let runErrorField = null; // the setting a refusal of Start named, until it is edited
let chart;
let queueTable;

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
  els.recipe = createRecipePanel({
    minutes: () => els.inputs.minutes?.value,
    onApplied: (model) => {
      store.accept({ model });
      dirty = false;
      showForm(store.model(model.id));
    },
  });
  // After a reached target is raised, the rate would stay at the floor its decay ended on.
  els.cycleBox = h("input", { type: "checkbox", id: "training-new-cycle", dataset: { testid: "new-cycle" } });
  els.cycleText = h("span", { dataset: { testid: "new-cycle-note" } });
  els.cycle = h("div", { class: "notice notice-warn small new-cycle", hidden: true },
    els.cycleText,
    h("label", { for: "training-new-cycle", class: "chart-check" }, els.cycleBox,
      h("span", {}, " Start a new warmup-and-decay cycle for the added epochs")));
  els.progress = h("div", { class: "job-progress", dataset: { testid: "job-progress" } });
  els.engine = createEngineChoice({ onSaved: (model) => store.accept({ model }) });
  const runCard = h("section", { class: "card run-card", "aria-labelledby": "training-run-title" },
    h("div", { class: "card-head run-head" },
      h("h3", { id: "training-run-title" }, "Training run"),
      h("div", { class: "run-buttons push-right" }, els.start, els.cont, els.stop),
    ),
    els.engine.el,
    els.hint,
    els.cycle,
    els.recipe.el,
    els.runError,
    els.progress,
  );

  const chartHead = h("div", { class: "card-head chart-head" },
    h("h3", { id: "training-chart-title", title: "Updated live while the model trains" }, "Loss"),
    h("span", { class: "muted small" }, "live"));
  const chartCard = h("section", { class: "card chart-card", "aria-labelledby": "training-chart-title" }, chartHead);
  chart = createLossChart(chartCard, { toolbarHost: chartHead, modelName: () => viewModel()?.model_name ?? null });

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
  store.subscribe(onStore);
  // The queue decides the split, and so whether the chart can have a validation line.
  events.onChange(["queue"], (changes) => {
    if (!view.id || !changes.concerns(view.id)) return;
    queueTable.load();
    fetchHistory().catch(() => {});
  });
  events.onChange(["history"], (changes) => (view.id && changes.concerns(view.id) ? fetchHistory() : null));
}

/** The app shows this tab. (Everything it shows is kept true while it is hidden.) */
export function shown() {}

function viewModel() {
  return view.id == null ? null : store.model(view.id);
}

// ---- selection ----------------------------------------------------------------------------

function onSelection(state) {
  const m = state.currentModel;
  if (!m) {
    renderSummary(els.info, null, { openModels: () => openTabFn("models") });
    setView(null);
    showForm(null);
    return;
  }
  if (view.id !== m.id) {
    setView(m);
    showModel(m);
  }
}

/** The store changed: the model shown, its latest run and the jobs list follow it. */
function onStore(what) {
  if (what.all || what.jobs) renderJobs();
  if (view.id == null) return;
  const m = viewModel();
  if (!m) return; // deleted: the selection moves to another model
  if (what.all || what.models.has(view.id)) {
    if (queueTable.modelName() !== m.model_name) queueTable.load(m.model_name); // renamed
    showModel(m, { keepEdits: true });
  }
  if (what.all || what.jobs) {
    const latest = store.latestJob(view.id, "train");
    const before = job;
    job = latest;
    if (latest && (!before || before.id !== latest.id)) fetchHistory(true);
    else if (before && isActive(before) && latest && !isActive(latest)) {
      fetchHistory(true); // every point, and the run's end in the chart
      announceEnd(latest);
    }
    renderRun();
  }
}

/** Show another model (or none): its queue, its latest job and its loss history. */
function setView(m) {
  view = { id: m ? m.id : null, seq: view.seq + 1 };
  job = m ? store.latestJob(m.id, "train") : null;
  hist = { points: [], markers: [] };
  els.runError.textContent = "";
  chart.clear();
  renderRun();
  queueTable.load(m ? m.model_name : null);
  if (m) {
    store.needJobs(m.id).catch(toastError);
    fetchHistory(true).catch((err) => (err.code !== "model_not_found" ? toastError(err) : null));
  }
}

// ---- model info ---------------------------------------------------------------------------

function infoRow(label, value, testid) {
  return [h("dt", {}, label), h("dd", testid ? { dataset: { testid } } : {}, value)];
}

function renderInfo(m) {
  els.engine.show(m);
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
      infoRow("Weights", weightsInUse(m), "info-weights"),
    ),
  );
}

// ---- settings form (also what Start and Continue send) -------------------------------------

function loadFields() {
  return api.get("/api/training-settings").then(({ settings }) => {
    // engine, device and nproc are the Engine choice beside Start (components/engine-choice.js)
    els.grid.append(...settings.filter((s) => s.group !== "engine").map(fieldFor));
  }, (err) => {
    fieldsReady = null; // the next model shown asks again
    throw err;
  });
}

/** A setting of a few named choices (validation_split) is a <select>; the others numbers. */
function isChoice(input) {
  return input.tagName === "SELECT";
}

function fieldValue(input) {
  return isChoice(input) ? input.value : Number(input.value);
}

function isBad(input) {
  return !isChoice(input) && (input.value.trim() === "" || Number.isNaN(Number(input.value)));
}

function choiceFor({ name: field, enum: choices, help }) {
  const id = `training-${field}`;
  const select = h("select", { id, class: "input", name: field, dataset: { testid: id }, "aria-describedby": `${id}-help` },
    choices.map((c) => h("option", { value: c }, c)));
  select.addEventListener("change", () => {
    dirty = true;
    els.error.textContent = "";
    const body = changed();
    els.save.disabled = body === null || Object.keys(body).length === 0;
    renderControls();
  });
  els.inputs[field] = select;
  return h("div", { class: "field" },
    h("label", { for: id, class: "field-label mono" }, field),
    select,
    h("span", { id: `${id}-help`, class: "field-help" }, help),
  );
}

function fieldFor(setting) {
  if (setting.type === "string") return choiceFor(setting);
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
    if (runErrorField === field) {
      els.runError.textContent = ""; // the refusal was about this field: it is being fixed
      runErrorField = null;
    }
    const body = changed();
    els.save.disabled = body === null || Object.keys(body).length === 0;
    // Text such as "abc" reads as no value in a number field: say so on the field at once.
    if (input.validity.badInput || input.value.trim() === "" || Number.isNaN(Number(input.value))) {
      input.setAttribute("aria-invalid", "true");
      els.error.textContent = `${field} needs a number.`;
    }
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
    if (isBad(input)) return null;
    const value = fieldValue(input);
    if (value !== loaded[field]) out[field] = value;
  }
  return out;
}

function badField() {
  const bad = Object.entries(els.inputs).find(([, input]) => isBad(input));
  return bad ? bad[0] : null;
}

/** Say which field holds no number (text such as "abc" reads as empty in a number field),
 * mark it and put the caret there; returns its name. */
function flagBadField(where, after = "") {
  const field = badField();
  where.textContent = `${field || "Every setting"} needs a number${after}.`;
  if (field) {
    els.inputs[field].setAttribute("aria-invalid", "true");
    els.inputs[field].focus();
  }
  return field;
}

function showForm(model) {
  loaded = model;
  els.recipe?.show(model);
  dirty = false;
  els.empty.hidden = Boolean(model);
  if (!model) els.engine.show(null);
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

/** Put the store's model in the form and the summary; `keepEdits`: leave the person's unsaved
 * edits in the form (a field they have not touched follows the store: the CLI may have changed
 * it; the field they are in is never written mid-keystroke). */
function showModel(model, { keepEdits = false } = {}) {
  (fieldsReady ||= loadFields()).then(() => {
    if (viewModel()?.id !== model.id) return;
    model = viewModel();
    const typing = Object.values(els.inputs).includes(document.activeElement);
    if (keepEdits && (dirty || typing) && loaded && loaded.id === model.id) {
      for (const [field, input] of Object.entries(els.inputs)) {
        if (input === document.activeElement) continue;
        if (!isBad(input) && fieldValue(input) === loaded[field]) input.value = String(model[field]);
      }
      loaded = model;
      els.inputs.sequence_length.max = String(model.block_size);
      els.inputs.target_epochs.min = String(model.epochs_trained);
      renderInfo(model);
      renderControls();
    } else {
      showForm(model);
    }
  }, (err) => {
    els.error.textContent = errorText(err);
  });
}

async function save(event) {
  event.preventDefault();
  const body = changed();
  if (body === null) {
    flagBadField(els.error);
    return;
  }
  if (!Object.keys(body).length) return;
  els.save.disabled = true;
  try {
    const model = await api.patch(`/api/models/${api.seg(loaded.model_name)}`, body);
    store.accept({ model: model });
    showForm(store.model(model.id));
    toast(`Saved the training settings of ${model.model_name}`, { kind: "ok" });
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

/** The minutes the form holds (a time budget), or the saved ones; 0: none. */
function formMinutes() {
  const input = els.inputs.minutes;
  const value = Number(input?.value);
  return input && input.value.trim() !== "" && Number.isFinite(value) ? value : (loaded?.minutes ?? 0);
}

function hasTrained() {
  return Boolean(loaded && (loaded.steps_trained > 0 || ["stopped", "interrupted"].includes(job?.state)));
}

function renderControls() {
  if (!els.start) return;
  const m = loaded;
  // Before the first look at the jobs, the model's own `busy` says whether a job holds it.
  const active = Boolean(m && (job ? isActive(job) : m.busy));
  els.engine.setBusy(Boolean(active || starting));
  if (!m) {
    els.start.disabled = els.cont.disabled = els.stop.disabled = true;
    fill(els.hint, h("p", { class: "muted" }, "Select a model to train it."));
    els.formNote.textContent = "";
    return;
  }
  const target = formTarget();
  // A time budget trains for its minutes whatever the target (the target then follows).
  const budget = formMinutes();
  const reached = !budget && m.epochs_trained >= target;
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
      `The target is reached: ${m.epochs_trained} of ${target} target ${target === 1 ? "epoch" : "epochs"} trained. `,
      "To train further, raise ",
      h("button", { type: "button", class: "link mono", onclick: focusTarget }, "target_epochs"),
      " in the settings below; Continue then resumes from the last checkpoint.");
  } else if (trained && budget) {
    hint = h("p", { class: "muted", dataset: { testid: "budget-hint" } },
      `Continue resumes from the last checkpoint (step ${formatInt(m.steps_trained)}) and trains for ${budget} `
      + `${budget === 1 ? "minute" : "minutes"}, the learning rate's decay fitted to the time.`);
  } else if (trained) {
    hint = h("p", { class: "muted" },
      `Continue resumes from the last checkpoint (step ${formatInt(m.steps_trained)}) and trains to epoch ${target}.`);
  } else if (m.queue.items === 0) {
    hint = h("p", { class: "muted" }, "The training-data queue is empty: add text files below, then press Start.");
  } else if (budget) {
    hint = h("p", { class: "muted", dataset: { testid: "budget-hint" } },
      `Start trains on the ${formatInt(m.queue.tokens)} tokens in the queue for ${budget} ${budget === 1 ? "minute" : "minutes"}, `
      + "the learning rate's decay fitted to the time.");
  } else {
    hint = h("p", { class: "muted" },
      `Start trains on the ${formatInt(m.queue.tokens)} tokens in the queue for ${target} ${target === 1 ? "epoch" : "epochs"}.`);
  }
  fill(els.hint, hint);
  renderCycle(m, active, target);
  els.recipe.show(store.model(m.id) || m);
}

/** The choice of a new learning-rate cycle, shown where a reached target is being raised. */
function renderCycle(m, active, target) {
  const show = Boolean(m && !active && m.steps_trained > 0 && m.epochs_trained >= m.target_epochs && target > m.epochs_trained);
  els.cycle.hidden = !show;
  if (!show) {
    els.cycleBox.checked = false;
    return;
  }
  const last = [...hist.points].reverse().find((p) => Number.isFinite(p.learning_rate));
  const now = last ? last.learning_rate.toExponential(1) : "its floor";
  els.cycleText.textContent = `The learning rate ended its decay at its floor (${now}, of a peak of ${m.learning_rate}): `
    + `the added ${target - m.epochs_trained === 1 ? "epoch trains" : "epochs train"} at the floor unless a new cycle starts.`;
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
    runErrorField = flagBadField(els.runError, " before training can start");
    return;
  }
  els.runError.textContent = "";
  runErrorField = null;
  if (!els.cycle.hidden && els.cycleBox.checked) body.new_cycle = true;
  starting = true;
  renderControls();
  try {
    const started = await api.post(`/api/models/${api.seg(name)}/train`, body);
    dirty = false; // the settings sent are saved: the form follows the store again
    store.accept({ job: started });
    toast(`${resume ? "Continuing" : "Started"} training ${name}`, { kind: "ok" });
  } catch (err) {
    els.runError.textContent = refusalText(err);
    const field = err.code?.startsWith("invalid_") ? err.code.slice("invalid_".length) : null;
    if (field && els.inputs[field]) {
      runErrorField = field;
      els.inputs[field].setAttribute("aria-invalid", "true");
      els.inputs[field].focus();
    }
  } finally {
    starting = false;
    renderControls();
  }
}

async function stopTraining(target = job) {
  if (!target) return;
  stopping = true;
  renderControls();
  try {
    store.accept({ job: await api.post(`/api/jobs/${target.id}/stop`, {}) });
  } catch (err) {
    toastError(err);
  } finally {
    stopping = false;
    renderControls();
  }
}

// ---- progress and history ----------------------------------------------------------------

function renderRun() {
  renderJobProgress(els.progress, job, { model: viewModel() });
  renderControls();
}

function renderJobs() {
  renderJobsList(els.jobs, store.activeJobs(), {
    current: viewModel()?.model_name ?? null,
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
  const m = viewModel();
  if (!m) return;
  const last = hist.points.length ? hist.points[hist.points.length - 1].step : 0;
  const window = Math.min(MAX_WINDOW, Math.max(1, m.eval_interval || 1));
  const since = full ? 0 : Math.max(0, last - window);
  const answer = await api.get(`/api/models/${api.seg(m.model_name)}/loss-history${api.query({ since_step: since })}`);
  if (mine !== view.seq) return;
  if (!full && resumedCount(answer.markers) !== resumedCount(hist.markers)) {
    await fetchHistory(true);
    return;
  }
  hist = {
    points: full ? answer.points : hist.points.filter((p) => p.step <= since).concat(answer.points),
    markers: answer.markers,
    validationNote: answer.validation_note,
  };
  chart.update(hist);
  renderControls(); // the new-cycle note quotes the rate the history ends on
}

function announceEnd(ended) {
  const name = ended.model_name;
  if (ended.state === "done") toast(`${name} reached its target epochs`, { kind: "ok" });
  else if (ended.state === "failed") toast(`Training ${name} failed; the reason is in the Training tab`, { kind: "error" });
  else if (ended.state === "interrupted") toast(`Training ${name} was interrupted; Continue resumes from the last checkpoint`, { kind: "error" });
}

function onQueueChanged() {
  // The queue's counts come with the change feed; the chart's data_added markers do not.
  if (view.id != null) fetchHistory(!isActive(job)).catch(() => {});
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
      viewModel()
        ? [h("strong", {}, "Drop text files to add them"), h("span", { class: "muted" }, `to the training data of ${viewModel()?.model_name}`)]
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
    e.dataTransfer.dropEffect = viewModel() ? "copy" : "none";
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
    if (!viewModel()) {
      toast("Select a model first; dropped files go to its training data", { kind: "error" });
      return;
    }
    queueTable.upload(files);
  });
}
