// The Models tab: create, list (sortable), select, rename in place, duplicate, delete (to the
// trash, with Undo), restore, empty the trash, add layers, export (components/export-dialog.js),
// and the selected model's details.
// The list and the details follow the shared selection, which follows the store's change feed;
// the trash follows the feed itself (the CLI deletes and restores too).

import * as api from "../api.js";
import { pickFiles } from "../bridge.js";
import * as events from "../events.js";
import * as selection from "../selection.js";
import * as store from "../store.js";
import { openExportDialog } from "../components/export-dialog.js";
import { weightsInUse } from "../components/model-summary.js";
import { mountModelSelect } from "../components/model-select.js";
import {
  confirmDialog, debounce, errorText, fill, formatBytes, formatAgo, formatDate, formatDay, formatInt, formatParams, h,
  keepable, promptDialog, refill, sentence, toast, toastError,
} from "../ui.js";

const ARCH = [
  { field: "n_layer", label: "Layers (n_layer)", value: 4, min: 1, max: 64 },
  { field: "n_head", label: "Heads (n_head)", value: 4, min: 1, max: 64 },
  { field: "n_embd", label: "Width (n_embd)", value: 128, min: 8, max: 4096 },
  { field: "block_size", label: "Context (block_size)", value: 128, min: 8, max: 8192 },
];
const VOCAB_SIZE = 257; // the byte tokenizer: 256 bytes + <|endoftext|>
const BPE_VOCAB = { value: 4096, min: 512, max: 32768 };
const LAYER_RULE =
  "Layers can be added, never removed. New layers start as identities, so the model computes exactly what it did.";
const SORTABLE = { name: "asc", created: "desc", updated: "desc", size: "desc" };

/** The parameter count of a shape, the same formula as the engine's GPTConfig.n_params. */
export function estimateParams({ n_layer, n_embd, block_size }, vocab = VOCAB_SIZE) {
  const c = n_embd;
  const block = 2 * c + (c * 3 * c + 3 * c) + (c * c + c) + 2 * c + (c * 4 * c + 4 * c) + (4 * c * c + c);
  return vocab * c + block_size * c + n_layer * block + 2 * c;
}

/** Ask the server whether a name can be used; `current` is the model being renamed. */
async function checkName(name, current) {
  try {
    const verdict = await api.get(`/api/model-names/check${api.query({ model_name: name, current })}`);
    return verdict.ok ? verdict : { ...verdict, message: sentence(verdict.message) };
  } catch (err) {
    return { ok: false, message: errorText(err) };
  }
}

let panel;
let els = {};
let details = null; // the model the details show: the store's, with its lineage
let lineageOf = { id: null, stamp: null, lineage: null }; // GET /api/models/<name>'s lineage, and for which state
let detailsSeq = 0;
let renaming = false;
let trashEntries = [];

export function mount(root) {
  panel = root;
  const head = h("div", { class: "panel-head" },
    h("div", { class: "panel-title" },
      h("h2", {}, "Models"),
      h("p", { class: "muted" }, "Create, name, grow and tidy the language models on this computer."),
    ),
  );
  mountModelSelect(head);

  els.createCard = buildCreateForm();
  els.table = h("table", { class: "table models-table", dataset: { testid: "models-table" } });
  els.tableCard = h("section", { class: "card", "aria-labelledby": "models-list-title" },
    h("div", { class: "card-head" }, h("h3", { id: "models-list-title" }, "Your models"),
      h("span", { class: "muted small", dataset: { testid: "models-count" } })),
    h("div", { class: "table-scroll" }, els.table),
  );
  els.trashCard = h("section", { class: "card", dataset: { testid: "trash" }, "aria-labelledby": "trash-title" });
  els.details = h("aside", { class: "card details", dataset: { testid: "details" }, "aria-labelledby": "details-title" });

  fill(panel,
    head,
    h("div", { class: "models-layout" },
      h("div", { class: "models-main" }, els.tableCard, els.createCard, els.trashCard),
      els.details,
    ),
  );

  selection.subscribe(onSelection);
  events.onChange(["models"], loadTrash);
  loadDefaultName();
  loadTrash();
}

// ---- the list -----------------------------------------------------------------------------

let lastKeys = "";

function onSelection(state) {
  renderTable(state);
  const keys = state.models.map((m) => m.model_name.toLowerCase()).join("\n");
  if (keys !== lastKeys) {
    lastKeys = keys;
    if (els.nameIsDefault) loadDefaultName();
  }
  loadDetails(state.current);
}

function renderTable({ models, current, sort, order }) {
  const header = (label, key, numeric = false) => {
    const cls = numeric ? "num" : "";
    if (!key) return h("th", { scope: "col", class: cls }, label);
    const active = sort === key;
    return h("th", {
      scope: "col",
      class: cls,
      "aria-sort": active ? (order === "asc" ? "ascending" : "descending") : "none",
    },
      h("button", {
        type: "button",
        class: `sort${active ? " is-active" : ""}`,
        dataset: { sort: key },
        title: `Sort by ${label.toLowerCase()}`,
        onclick: () => {
          const next = active ? (order === "asc" ? "desc" : "asc") : SORTABLE[key];
          selection.setSort(key, next).catch(toastError);
        },
      }, label, h("span", { class: "sort-mark", "aria-hidden": "true" }, active ? (order === "asc" ? "▲" : "▼") : "")),
    );
  };
  const rows = models.map((m) => {
    const selected = m.model_name === current;
    return h("tr", {
      class: selected ? "is-selected" : "",
      dataset: { model: m.model_name },
      tabindex: "0",
      "aria-selected": String(selected),
      onclick: () => selection.select(m.model_name),
      onkeydown: (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          selection.select(m.model_name);
        }
      },
    },
      h("td", {}, h("span", { class: "name-cell" }, h("span", { class: "model-name" }, m.model_name),
        m.busy ? h("span", { class: "badge badge-warn" }, m.busy.kind) : null)),
      h("td", { class: "num" }, m.n_layer),
      h("td", { class: "num", title: `${formatInt(m.n_params)} parameters` }, formatParams(m.n_params)),
      h("td", { class: "num" }, `${m.epochs_trained} / ${m.target_epochs}`),
      h("td", { class: "num" }, formatInt(m.queue.items)),
      h("td", { class: "num" }, formatBytes(m.disk_bytes)),
      h("td", { class: "date", title: formatDate(m.created_at) }, formatDay(m.created_at)),
      h("td", { class: "date", title: formatDate(m.updated_at) }, formatAgo(m.updated_at)),
    );
  });
  if (!rows.length) {
    rows.push(h("tr", { class: "empty-row" },
      h("td", { colspan: "8" }, "No models yet. Create your first one with the form below.")));
  }
  fill(els.table,
    h("thead", {}, h("tr", {},
      header("Name", "name"), header("Layers", null, true), header("Parameters", null, true),
      header("Epochs", null, true), header("Queue", null, true), header("Size", "size", true),
      header("Created", "created"), header("Updated", "updated"))),
    h("tbody", {}, rows),
  );
  panel.querySelector('[data-testid="models-count"]').textContent =
    models.length === 1 ? "1 model" : `${models.length} models`;
}

// ---- creating -----------------------------------------------------------------------------

function buildCreateForm() {
  const name = h("input", {
    id: "create-name", class: "input", name: "model_name", autocomplete: "off", spellcheck: false,
    dataset: { testid: "create-name" }, "aria-describedby": "create-name-message",
  });
  const nameMessage = h("p", { id: "create-name-message", class: "field-message", "aria-live": "polite", dataset: { testid: "create-name-message" } });
  const button = h("button", { type: "submit", class: "btn btn-primary", dataset: { testid: "create-button" } }, "Create");
  const error = h("p", { class: "form-error", role: "alert", dataset: { testid: "create-error" } });
  const estimate = h("p", { class: "muted small", dataset: { testid: "create-estimate" } });
  const arch = {};
  const archFields = ARCH.map((spec) => {
    const id = `create-${spec.field}`;
    arch[spec.field] = h("input", {
      id, class: "input input-num", type: "number", name: spec.field, value: String(spec.value),
      min: String(spec.min), max: String(spec.max), step: "1", dataset: { testid: id },
    });
    return h("div", { class: "field" }, h("label", { for: id, class: "field-label" }, spec.label), arch[spec.field]);
  });
  Object.assign(els, { nameInput: name, nameMessage, createButton: button, createError: error, arch, estimate });
  els.nameOk = false;
  els.nameIsDefault = true;

  const validate = debounce(validateCreateName, 120);
  name.addEventListener("input", () => {
    els.nameIsDefault = false;
    error.textContent = "";
    validate();
  });
  for (const input of Object.values(arch)) input.addEventListener("input", updateEstimate);
  const tokenizer = buildTokenizerFields();

  const form = h("form", { class: "create-form", dataset: { testid: "create-form" }, novalidate: true, onsubmit: onCreate },
    h("div", { class: "field field-name" },
      h("label", { for: "create-name", class: "field-label" }, "Name"), name, nameMessage),
    h("div", { class: "arch-fields" }, archFields),
    tokenizer,
    h("div", { class: "form-actions" }, button, estimate),
    error,
  );
  els.tokenizerNote = h("span", { class: "muted small", dataset: { testid: "create-tokenizer-note" } });
  updateEstimate();
  return h("section", { class: "card", "aria-labelledby": "create-title" },
    h("div", { class: "card-head" }, h("h3", { id: "create-title" }, "New model"), els.tokenizerNote),
    form,
  );
}

// The tokenizer: byte-level (nothing to train) or a byte-level BPE trained on files the person
// picks (native dialog in the window, a file input in a browser) or on another model's queue.
function buildTokenizerFields() {
  const kind = h("select", { id: "create-tokenizer", class: "input", dataset: { testid: "create-tokenizer" } },
    h("option", { value: "byte" }, "Byte-level (257 tokens, no training)"),
    h("option", { value: "bpe" }, "BPE (trained on your text)"));
  const vocab = h("input", {
    id: "create-vocab_size", class: "input input-num", type: "number", value: String(BPE_VOCAB.value),
    min: String(BPE_VOCAB.min), max: String(BPE_VOCAB.max), step: "1", dataset: { testid: "create-vocab_size" },
  });
  const source = h("select", { id: "create-tokenizer-source", class: "input", dataset: { testid: "create-tokenizer-source" } },
    h("option", { value: "files" }, "Text files I pick"),
    h("option", { value: "queue" }, "Another model's training data"));
  const fileInput = h("input", {
    type: "file", multiple: true, hidden: true, dataset: { testid: "tokenizer-file-input" },
    "aria-label": "Text files to train the tokenizer on",
  });
  const pickButton = h("button", { type: "button", class: "btn", dataset: { testid: "tokenizer-pick" } }, "Choose files…");
  const chosen = h("span", { class: "muted small", dataset: { testid: "tokenizer-files" } }, "No files chosen");
  const fromModel = h("select", { id: "create-tokenizer-from", class: "input", dataset: { testid: "create-tokenizer-from" } });
  const filesRow = h("div", { class: "field" }, h("span", { class: "field-label" }, "Training text"),
    h("div", { class: "add-layers-row" }, pickButton, chosen, fileInput));
  const queueRow = h("div", { class: "field", hidden: true },
    h("label", { for: "create-tokenizer-from", class: "field-label" }, "Model whose queue to use"), fromModel);
  const bpeFields = h("div", { class: "arch-fields", hidden: true, dataset: { testid: "bpe-fields" } },
    h("div", { class: "field" }, h("label", { for: "create-vocab_size", class: "field-label" }, "Vocabulary (vocab_size)"), vocab),
    h("div", { class: "field" }, h("label", { for: "create-tokenizer-source", class: "field-label" }, "Train on"), source),
    filesRow, queueRow,
    h("p", { class: "muted small" }, "The tokenizer is trained when the model is created and fixed once the model has trained."));
  els.tokenizer = { kind, vocab, source, fromModel, paths: null, files: [] };

  const showChosen = (names) => {
    chosen.textContent = names.length ? `${names.length} file${names.length === 1 ? "" : "s"}: ${names.join(", ")}` : "No files chosen";
  };
  const sync = () => {
    const bpe = kind.value === "bpe";
    bpeFields.hidden = !bpe;
    filesRow.hidden = source.value !== "files";
    queueRow.hidden = source.value !== "queue";
    if (source.value === "queue") {
      const current = fromModel.value;
      fill(fromModel, selection.models().map((m) => h("option", { value: m.model_name }, m.model_name)));
      if (current) fromModel.value = current;
    }
    updateEstimate();
  };
  kind.addEventListener("change", sync);
  source.addEventListener("change", sync);
  vocab.addEventListener("input", updateEstimate);
  pickButton.addEventListener("click", async () => {
    try {
      const paths = await pickFiles(["txt", "md"]);
      if (paths === null) {
        fileInput.click(); // a plain browser: its own file picker, uploaded when the model is created
        return;
      }
      if (!paths.length) return;
      Object.assign(els.tokenizer, { paths, files: [] });
      showChosen(paths.map((p) => p.split(/[\\/]/).pop()));
    } catch (err) {
      toastError(err);
    }
  });
  fileInput.addEventListener("change", () => {
    Object.assign(els.tokenizer, { paths: null, files: [...fileInput.files] });
    showChosen(els.tokenizer.files.map((f) => f.name));
  });
  els.resetTokenizerFiles = () => {
    Object.assign(els.tokenizer, { paths: null, files: [] });
    fileInput.value = "";
    showChosen([]);
  };
  return h("div", { class: "field" },
    h("div", { class: "arch-fields" },
      h("div", { class: "field" }, h("label", { for: "create-tokenizer", class: "field-label" }, "Tokenizer"), kind)),
    bpeFields);
}

function updateEstimate() {
  const shape = Object.fromEntries(Object.entries(els.arch).map(([k, input]) => [k, Number(input.value)]));
  const valid = Object.values(shape).every((v) => Number.isInteger(v) && v > 0);
  const bpe = els.tokenizer?.kind.value === "bpe";
  const vocab = bpe ? Number(els.tokenizer.vocab.value) : VOCAB_SIZE;
  els.estimate.textContent = valid && Number.isInteger(vocab) && vocab > 0
    ? `About ${formatInt(estimateParams(shape, vocab))} parameters` : "";
  if (els.tokenizerNote) {
    els.tokenizerNote.textContent = bpe ? `BPE tokenizer (vocab_size ${formatInt(vocab)})` : "Byte-level tokenizer (vocab_size 257)";
  }
}

/** The tokenizer part of a create request; uploads browser-picked files first. */
async function tokenizerBody() {
  const t = els.tokenizer;
  if (t.kind.value !== "bpe") return {};
  const body = { tokenizer: "bpe", vocab_size: Number(t.vocab.value) };
  if (t.source.value === "queue") {
    if (!t.fromModel.value) throw new Error("Choose the model whose training data the tokenizer learns from.");
    return { ...body, tokenizer_from: t.fromModel.value };
  }
  if (t.paths && t.paths.length) return { ...body, tokenizer_data: t.paths };
  if (!t.files.length) throw new Error("Choose the text files the tokenizer learns from.");
  const form = new FormData();
  for (const file of t.files) form.append("files", file, file.name);
  const staged = await api.upload("/api/tokenizer-data", form);
  return { ...body, tokenizer_data: staged.paths };
}

let createSeq = 0;
async function validateCreateName() {
  const mine = ++createSeq;
  const verdict = await checkName(els.nameInput.value);
  if (mine !== createSeq) return;
  els.nameOk = verdict.ok;
  els.createButton.disabled = !verdict.ok;
  els.nameInput.setAttribute("aria-invalid", String(!verdict.ok));
  els.nameMessage.textContent = verdict.ok ? "" : verdict.message;
  els.nameMessage.classList.toggle("is-error", !verdict.ok);
}

async function loadDefaultName() {
  try {
    const { model_name } = await api.get("/api/model-names/default");
    if (!els.nameIsDefault && els.nameInput.value) return;
    els.nameInput.value = model_name;
    els.nameIsDefault = true;
    await validateCreateName();
  } catch (err) {
    toastError(err);
  }
}

async function onCreate(event) {
  event.preventDefault();
  if (els.createButton.disabled) return;
  els.createError.textContent = "";
  const body = { model_name: els.nameInput.value };
  for (const [field, input] of Object.entries(els.arch)) {
    const text = input.value.trim();
    if (text === "" || Number.isNaN(Number(text))) {
      els.createError.textContent = `${field} needs a whole number.`;
      input.focus();
      return;
    }
    body[field] = Number(text);
  }
  els.createButton.disabled = true;
  const label = els.createButton.textContent;
  try {
    const tokenizer = await tokenizerBody();
    if (tokenizer.tokenizer === "bpe") els.createButton.textContent = "Training tokenizer…";
    const model = await api.post("/api/models", { ...body, ...tokenizer });
    els.resetTokenizerFiles();
    els.nameIsDefault = true;
    store.accept({ model: model });
    await selection.select(model.model_name);
    toast(`Created ${model.model_name}`, { kind: "ok" });
    await loadDefaultName();
  } catch (err) {
    // A refused name is said once, under the name (validateCreateName); anything else here.
    const aboutName = ["invalid_name", "name_taken"].includes(err.code);
    els.createError.textContent = aboutName ? "" : err instanceof api.ApiError ? errorText(err) : err.message;
    await validateCreateName();
  } finally {
    els.createButton.textContent = label;
  }
}

// ---- details ------------------------------------------------------------------------------

function loadDetails(name) {
  const m = name ? store.byName(name) : null;
  if (!m) {
    details = null;
    renaming = false;
    renderDetails();
    return;
  }
  if (!details || details.id !== m.id) renaming = false;
  const editing = details && details.id === m.id && details.model_name === m.model_name && beingEdited(m);
  const lineage = lineageOf.id === m.id ? lineageOf.lineage : null;
  details = { ...m, lineage };
  // Fresh numbers arrive whenever the store changes; a name or a layer count being typed stays.
  if (!editing) renderDetails();
  // The lineage (no event carries it) is asked for again when the model's row has changed.
  const stamp = `${m.model_name}|${m.updated_at}|${m.n_layer}|${m.steps_trained}`;
  if (lineageOf.id !== m.id || lineageOf.stamp !== stamp) loadLineage(m, stamp);
}

async function loadLineage(m, stamp) {
  const mine = ++detailsSeq;
  try {
    const { lineage } = await api.get(`/api/models/${api.seg(m.model_name)}`);
    if (mine !== detailsSeq) return;
    lineageOf = { id: m.id, stamp, lineage };
    if (details && details.id === m.id) {
      details = { ...details, lineage };
      if (!beingEdited(details)) renderDetails();
    }
  } catch (err) {
    if (mine === detailsSeq && err.code !== "model_not_found") toastError(err);
  }
}

/** Whether the person is typing in the details of `model`: the rename editor is open, or the
 * layers field holds a value that is neither the shown nor the new layer count. */
function beingEdited(model) {
  if (renaming) return true;
  const layers = els.details.querySelector('[data-testid="add-layers-input"]');
  return Boolean(layers && ![String(details.n_layer), String(model.n_layer)].includes(layers.value));
}

function dl(rows) {
  return h("dl", { class: "facts" },
    rows.filter(Boolean).map(([label, value, testid]) => [
      h("dt", {}, label),
      h("dd", testid ? { dataset: { testid } } : {}, value),
    ]));
}

function section(title, ...content) {
  return h("section", { class: "details-section" }, h("h4", {}, title), ...content);
}

function renderDetails() {
  if (!details) {
    fill(els.details,
      h("h3", { id: "details-title" }, "Details"),
      h("p", { class: "empty" }, selection.models().length
        ? "Select a model in the list to see its details."
        : "Your models' details will appear here once you create one."),
    );
    return;
  }
  const m = details;
  // What a job holds the model for cannot be done now: say why, rather than offer and refuse.
  const held = heldBecause(m);
  refill(els.details,
    renaming && !held ? renameEditor(m) : titleRow(m),
    keepable("actions", h("div", { class: "details-actions", dataset: { model: m.model_name } },
      h("button", { type: "button", class: "btn", dataset: { testid: "rename-button" }, disabled: renaming || Boolean(held), title: held, onclick: startRename }, "Rename"),
      h("button", { type: "button", class: "btn", dataset: { testid: "duplicate-button" }, onclick: () => duplicate(m.model_name) }, "Duplicate"),
      h("button", { type: "button", class: "btn btn-danger-quiet", dataset: { testid: "delete-button" }, disabled: Boolean(held), title: held, onclick: () => deleteModel(m.model_name) }, "Delete…"),
      h("button", { type: "button", class: "btn", dataset: { testid: "bundle-button" }, disabled: Boolean(held),
        title: held || "Write a folder that trains this model with PyTorch anywhere (torchrun: GPUs, clusters)",
        onclick: () => makeBundle(m.model_name) }, "Bundle…"),
      h("button", { type: "button", class: "btn", dataset: { testid: "import-bundle-button" }, disabled: Boolean(held),
        title: held || "Bring back the training of a bundle of this model", onclick: () => importBundle(m.model_name) }, "Import bundle…"),
      // Not held by a job: an export reads one whole checkpoint, so it runs beside training.
      h("button", { type: "button", class: "btn", dataset: { testid: "export-button" },
        title: "Write this model as a GGUF file (llama.cpp, Ollama, LM Studio), an Ollama folder or a Hugging Face folder",
        onclick: () => openExportDialog(m.model_name).catch(toastError) }, "Export…"),
    )),
    held ? h("p", { class: "notice notice-warn", dataset: { testid: "details-busy" } }, held) : null,
    section("Architecture", dl([
      ["vocab_size", m.vocab_size, "details-vocab_size"],
      ["n_layer", m.n_layer, "details-n_layer"],
      ["n_head", m.n_head],
      ["n_embd", m.n_embd],
      ["block_size", m.block_size],
      ["tokenizer", m.tokenizer === "bpe" ? `BPE (${formatInt(m.vocab_size)} tokens)` : "byte-level", "details-tokenizer"],
      ["Parameters", h("span", { dataset: { testid: "details-params", value: String(m.n_params) } },
        `${formatInt(m.n_params)} (${formatParams(m.n_params)})`)],
    ])),
    section("Add layers", addLayersControl(m)),
    section("Training", dl([
      ["Epochs", `${m.epochs_trained} trained of ${m.target_epochs} target`, "details-epochs"],
      ["Steps", formatInt(m.steps_trained), "details-steps"],
      ["Tokens trained", formatInt(m.tokens_trained)],
      ["Weights", weightsInUse(m), "details-weights"],
    ])),
    section("Queue and disk", dl([
      ["Queue", `${formatInt(m.queue.items)} ${m.queue.items === 1 ? "item" : "items"} · ${formatInt(m.queue.tokens)} ${m.queue.tokens === 1 ? "token" : "tokens"}`, "details-queue"],
      ["Queue folder", h("code", { class: "path" }, m.queue_directory)],
      ["Size on disk", formatBytes(m.disk_bytes), "details-disk"],
      ["Created", formatDate(m.created_at)],
      ["Updated", formatDate(m.updated_at)],
    ])),
    keepable("lineage", section("Lineage", lineage(m))),
  );
}

const BUSY_WORDS = { train: "training", crawl: "crawling", ingest: "adding files", evaluate: "being evaluated", export: "exporting" };

/** Why renaming, deleting and adding layers wait: a job holds the model (or "" when none does). */
function heldBecause(m) {
  if (!m.busy) return "";
  const doing = BUSY_WORDS[m.busy.kind] || `busy with a ${m.busy.kind} job`;
  return `${m.model_name} is ${doing} (job #${m.busy.job_id}, ${m.busy.state}): rename, delete and add layers wait until it ends or is stopped.`;
}

function titleRow(m) {
  return h("div", { class: "details-title-row" },
    h("h3", {
      id: "details-title",
      class: "model-title",
      title: "Double-click to rename",
      dataset: { testid: "details-name" },
      ondblclick: () => (heldBecause(m) ? null : startRename()),
    }, m.model_name),
  );
}

function startRename() {
  renaming = true;
  renderDetails();
  const input = els.details.querySelector('[data-testid="rename-input"]');
  input.focus();
  input.select();
}

function cancelRename() {
  renaming = false;
  renderDetails();
  els.details.querySelector('[data-testid="rename-button"]')?.focus();
}

function renameEditor(m) {
  const oldName = m.model_name;
  const input = h("input", {
    class: "input input-title", value: oldName, autocomplete: "off", spellcheck: false,
    "aria-label": "New name", id: "details-title", dataset: { testid: "rename-input" },
  });
  const message = h("p", { class: "field-message", "aria-live": "polite", dataset: { testid: "rename-message" } });
  const save = h("button", { type: "submit", class: "btn btn-primary btn-small", dataset: { testid: "rename-save" } }, "Save");
  let seq = 0;
  let ok = true;
  const validate = debounce(async () => {
    const mine = ++seq;
    const verdict = await checkName(input.value, oldName);
    if (mine !== seq) return;
    ok = verdict.ok;
    save.disabled = !ok;
    input.setAttribute("aria-invalid", String(!ok));
    message.textContent = ok ? "" : verdict.message;
    message.classList.toggle("is-error", !ok);
  }, 120);
  input.addEventListener("input", validate);
  input.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      cancelRename();
    }
  });
  const submit = async (e) => {
    e.preventDefault();
    if (!ok) return;
    const newName = input.value;
    if (newName === oldName) {
      cancelRename();
      return;
    }
    save.disabled = true;
    try {
      const model = await api.post(`/api/models/${api.seg(oldName)}/rename`, { model_name: newName });
      renaming = false;
      store.accept({ model: model });
      await selection.select(model.model_name);
      toast(`Renamed to ${model.model_name}`, { kind: "ok" });
    } catch (err) {
      message.textContent = errorText(err);
      message.classList.add("is-error");
      save.disabled = false;
    }
  };
  return h("form", { class: "rename-form", onsubmit: submit, dataset: { testid: "rename-form" } },
    h("div", { class: "rename-row" }, input, save,
      h("button", { type: "button", class: "btn btn-small", onclick: cancelRename }, "Cancel")),
    message,
    h("p", { class: "muted small" }, "Enter saves, Escape cancels. The model's folder is renamed too."),
  );
}

function addLayersControl(m) {
  const held = heldBecause(m);
  const input = h("input", {
    type: "number", class: "input input-num", min: String(m.n_layer), max: "64", step: "1",
    value: String(m.n_layer), id: "add-layers", dataset: { testid: "add-layers-input" }, disabled: Boolean(held), title: held,
  });
  const apply = h("button", { type: "submit", class: "btn", dataset: { testid: "add-layers-apply" }, disabled: true }, "Apply");
  const message = h("p", { class: "field-message", role: "alert", dataset: { testid: "add-layers-message" } });
  const after = h("span", { class: "muted small" });
  const update = () => {
    const value = Number(input.value);
    message.textContent = "";
    message.classList.remove("is-error");
    apply.disabled = input.value.trim() === "" || value === m.n_layer;
    if (Number.isInteger(value) && value > m.n_layer) {
      after.textContent = `→ ${formatInt(estimateParams({ ...m, n_layer: value }, m.vocab_size))} parameters`;
    } else {
      after.textContent = "";
    }
    if (Number.isFinite(value) && value < m.n_layer) {
      message.textContent = `${m.model_name} has ${m.n_layer} layers; layers can be added, never removed.`;
      message.classList.add("is-error");
    }
  };
  input.addEventListener("input", update);
  const submit = async (e) => {
    e.preventDefault();
    const value = Number(input.value);
    apply.disabled = true;
    try {
      const model = await api.patch(`/api/models/${api.seg(m.model_name)}`, { n_layer: value });
      store.accept({ model: model });
      toast(`${model.model_name} now has ${model.n_layer} layers`, { kind: "ok" });
    } catch (err) {
      message.textContent = errorText(err);
      message.classList.add("is-error");
      apply.disabled = false;
    }
  };
  return h("form", { class: "add-layers", onsubmit: submit, novalidate: true },
    h("div", { class: "add-layers-row" },
      h("label", { for: "add-layers", class: "field-label" }, "Layers (n_layer)"), input, apply, after),
    h("p", { class: "rule", dataset: { testid: "layer-rule" } }, LAYER_RULE),
    message,
  );
}

function modelLink(name) {
  const exists = selection.models().some((x) => x.model_name === name);
  return exists
    ? h("button", { type: "button", class: "link", onclick: () => selection.select(name) }, name)
    : h("span", {}, name);
}

function describeEvent(event) {
  const d = event.detail || {};
  switch (event.kind) {
    case "created":
      return `Created with ${d.n_layer} layers, ${d.n_head} heads, n_embd ${d.n_embd}, block_size ${d.block_size}` +
        (d.tokenizer ? `, a BPE tokenizer of ${d.tokenizer.vocab_size} tokens` : "");
    case "tokenizer_changed":
      return `Tokenizer changed to ${d.tokenizer} (${d.vocab_size} tokens)`;
    case "duplicated": {
      const source = selection.models().find((x) => x.id === d.source_id);
      return `Duplicated from ${source ? source.model_name : `model #${d.source_id}`}`;
    }
    case "layers_grown":
      return `Layers grown from ${d.from} to ${d.to}${d.trained ? " (trained weights kept)" : ""}`;
    case "trained_outside":
      return `Steps ${formatInt(d.from_step)} to ${formatInt(d.to_step)} ${d.summary || "trained outside the app"}`;
    case "engine_changed":
      return `Training went on at step ${formatInt(d.step)} on ${d.engine?.label || d.to} (was ${d.from === "builtin" ? "the built-in engine" : d.from})`;
    case "reshaped":
      return `Shape changed: ${Object.entries(d).map(([k, v]) => `${k} ${v}`).join(", ")}`;
    default:
      return `${event.kind.replace(/_/g, " ")}${Object.keys(d).length ? `: ${JSON.stringify(d)}` : ""}`;
  }
}

function lineage(m) {
  const l = m.lineage || { duplicated_from: m.duplicated_from, duplicates: [], events: [] };
  return h("div", { class: "lineage", dataset: { testid: "lineage" } },
    dl([
      ["Duplicated from", l.duplicated_from ? modelLink(l.duplicated_from) : "—", "lineage-from"],
      ["Duplicates", l.duplicates.length ? l.duplicates.flatMap((n, i) => (i ? [", ", modelLink(n)] : [modelLink(n)])) : "—", "lineage-duplicates"],
    ]),
    l.events.length
      ? h("ol", { class: "events", dataset: { testid: "lineage-events" } },
        l.events.map((e) => h("li", {}, h("time", { datetime: e.at }, formatDate(e.at)), " ", describeEvent(e))))
      : null,
  );
}

// ---- duplicate, delete, trash -------------------------------------------------------------

async function duplicate(name) {
  try {
    const copy = await api.post(`/api/models/${api.seg(name)}/duplicate`, {});
    store.accept({ model: copy });
    await selection.select(copy.model_name);
    toast(`Duplicated as ${copy.model_name}`, { kind: "ok" });
  } catch (err) {
    toastError(err);
  }
}

// ---- training bundles (services/bundles.py) ------------------------------------------------

async function makeBundle(name) {
  const folder = await promptDialog({
    title: `Training bundle of ${name}`,
    message: h("p", {}, "A folder that trains this model with PyTorch on any machine or cluster (torchrun), with nothing of CLLM Studio installed. Give the full path of a new or empty folder."),
    label: "Folder",
    confirmLabel: "Write bundle",
    validate: (value) => ({ ok: value.trim().length > 0, message: "Give a folder." }),
  });
  if (folder === null) return;
  try {
    const out = await api.post(`/api/models/${api.seg(name)}/bundle`, { path: folder.trim() });
    toast(`Wrote the training bundle of ${out.model_name} to ${out.path}: run its launch.sh, then Import bundle`, { kind: "ok" });
  } catch (err) {
    toastError(err);
  }
}

async function importBundle(name) {
  const folder = await promptDialog({
    title: `Import a bundle into ${name}`,
    message: h("p", {}, "The training done with a bundle of this model comes back: its newest checkpoint, the weights, the epochs and every step's loss."),
    label: "Bundle folder",
    confirmLabel: "Import",
    validate: (value) => ({ ok: value.trim().length > 0, message: "Give the bundle's folder." }),
  });
  if (folder === null) return;
  try {
    const model = await api.post("/api/bundles/import", { path: folder.trim(), model_name: name });
    store.accept({ model });
    const got = model.imported;
    toast(`${model.model_name}: steps ${formatInt(got.from_step)} to ${formatInt(got.to_step)} imported (${got.processes} ${got.processes === 1 ? "process" : "processes"}, ${got.device})`, { kind: "ok" });
  } catch (err) {
    toastError(err);
  }
}

async function deleteModel(name) {
  const ok = await confirmDialog({
    title: `Delete ${name}?`,
    message: [
      h("p", {}, h("strong", {}, name), " goes to the trash with its weights, settings, queue and history."),
      h("p", { class: "muted" }, "You can restore it from the Trash until the trash is emptied."),
    ],
    confirmLabel: "Move to trash",
    danger: true,
  });
  if (!ok) return;
  try {
    const gone = store.byName(name);
    const { trash } = await api.del(`/api/models/${api.seg(name)}`, { confirm: true });
    if (gone) store.accept({ model: { id: gone.id, deleted: true } }); // the selection moves to the next model
    await loadTrash();
    toast(`Deleted ${trash.model_name}`, {
      action: { label: "Undo", onClick: () => restore(trash) },
    });
  } catch (err) {
    toastError(err);
  }
}

/** Restore from the trash; when the name is taken meanwhile, ask for another. */
async function restore(entry) {
  try {
    let model;
    try {
      model = await api.post(`/api/trash/${entry.id}/restore`, {});
    } catch (err) {
      if (err.code !== "name_taken") throw err;
      const name = await promptDialog({
        title: `Restore ${entry.model_name} under a new name`,
        message: errorText(err),
        value: `${entry.model_name}-restored`,
        confirmLabel: "Restore",
        validate: (value) => checkName(value),
      });
      if (name === null) return;
      model = await api.post(`/api/trash/${entry.id}/restore`, { model_name: name });
    }
    store.accept({ model: model });
    await Promise.all([selection.select(model.model_name), loadTrash()]);
    toast(`Restored ${model.model_name}`, { kind: "ok" });
  } catch (err) {
    toastError(err);
    loadTrash();
  }
}

async function emptyTrash() {
  const n = trashEntries.length;
  const ok = await confirmDialog({
    title: "Empty the trash?",
    message: h("p", {}, `${n === 1 ? "The model" : `All ${n} models`} in the trash will be deleted for good, with their files. This cannot be undone.`),
    confirmLabel: "Empty trash",
    danger: true,
  });
  if (!ok) return;
  try {
    const { removed } = await api.del("/api/trash", { confirm: true });
    toast(removed === 1 ? "Deleted 1 model for good" : `Deleted ${removed} models for good`, { kind: "ok" });
  } catch (err) {
    toastError(err);
  }
  await loadTrash();
}

async function loadTrash() {
  try {
    trashEntries = (await api.get("/api/trash")).trash;
  } catch (err) {
    toastError(err);
    return;
  }
  const rows = trashEntries.map((t) => h("tr", { dataset: { trashId: String(t.id), trashName: t.model_name } },
    h("td", {}, t.model_name),
    h("td", { class: "date", title: formatDate(t.deleted_at) }, formatAgo(t.deleted_at)),
    h("td", { class: "num" }, formatParams(t.n_params)),
    h("td", { class: "num" }, formatBytes(t.disk_bytes)),
    h("td", { class: "actions" }, h("button", {
      type: "button", class: "btn btn-small", dataset: { testid: "restore-button" }, onclick: () => restore(t),
    }, "Restore")),
  ));
  fill(els.trashCard,
    h("div", { class: "card-head" },
      h("h3", { id: "trash-title" }, "Trash"),
      h("span", { class: "muted small" }, trashEntries.length ? `${trashEntries.length} deleted` : ""),
      trashEntries.length
        ? h("button", { type: "button", class: "btn btn-small btn-danger-quiet push-right", dataset: { testid: "empty-trash" }, onclick: emptyTrash }, "Empty trash…")
        : null,
    ),
    trashEntries.length
      ? h("div", { class: "table-scroll" }, h("table", { class: "table trash-table" },
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Deleted"),
          h("th", { scope: "col", class: "num" }, "Parameters"), h("th", { scope: "col", class: "num" }, "Size"),
          h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
        h("tbody", {}, rows)))
      : h("p", { class: "empty" }, "The trash is empty. Deleted models wait here until you empty it."),
  );
}
