// A model's training-data queue: a table of its items (search, pages, preview, remove, clear),
// statistics by source, "Add training data…" (the desktop window's file dialog, or a file
// input in a browser), "Import from model" (another model's queue copied in), and the ingest
// job's live progress ending in its per-file report: added, already there, refused or empty,
// each with its reason.

import * as api from "../api.js";
import { pickFiles } from "../bridge.js";
import * as selection from "../selection.js";
import * as store from "../store.js";
import {
  confirmDialog, debounce, errorText, fill, formatAgo, formatBytes, formatDate, formatInt, h, toast, toastError,
} from "../ui.js";

const CHOOSE_LIMIT = 500;

function baseName(origin) {
  const parts = String(origin || "").split(/[\\/]/);
  return parts[parts.length - 1] || origin || "–";
}

function epochsUsed(value) {
  try {
    const list = typeof value === "string" ? JSON.parse(value) : value;
    return Array.isArray(list) ? list : [];
  } catch {
    return [];
  }
}

/** What of an item trains and what validates, in a word or two, and its token counts. */
function splitCell(e) {
  if (e.train_tokens === null || e.train_tokens === undefined) return { text: "–", title: "Not ready: in no split yet", role: "none" };
  const counts = `${formatInt(e.train_tokens)} tokens train, ${formatInt(e.validation_tokens)} validate`;
  if (e.holdout) return { text: "validation (marked)", title: `Marked as validation: held out whole, never trained on. ${counts}`, role: "validation" };
  if (e.validation_tokens === 0) return { text: "training", title: counts, role: "training" };
  if (e.train_tokens === 0) return { text: "validation", title: `Held out whole, never trained on. ${counts}`, role: "validation" };
  const pct = Math.round((100 * e.validation_tokens) / Math.max(1, e.token_count));
  return { text: `training · ${pct}% validation`, title: `Its last ${formatInt(e.validation_tokens)} tokens validate. ${counts}`, role: "both" };
}

function plural(n, one, many = `${one}s`) {
  return `${formatInt(n)} ${n === 1 ? one : many}`;
}

/**
 * createQueueTable(container, {onChange}) → {load(name), upload(files), addPaths(paths), pick()}
 * `onChange()` runs after the queue changed (added or removed items).
 */
const PAGE = 50;

export function createQueueTable(container, { onChange = () => {} } = {}) {
  let name = null;
  let items = [];
  let total = 0;
  let queueTotals = { items: 0, tokens: 0 };
  let split = null; // the queue's validation split, as the last list answered
  let splitKey = ""; // the model's split settings that answer was for
  let offset = 0;
  let search = "";
  let seq = 0;
  let busy = false;
  let tracking = null; // the ingest job being watched: {id, model}

  const summary = h("span", { class: "muted small", dataset: { testid: "queue-summary" } });
  const input = h("input", {
    type: "file", multiple: true, hidden: true, dataset: { testid: "queue-file-input" },
    "aria-label": "Text files to add to the training data",
  });
  const addButton = h("button", { type: "button", class: "btn push-right", dataset: { testid: "queue-add" }, onclick: () => pick() },
    "Add training data…");
  const table = h("table", { class: "table queue-table", dataset: { testid: "queue-table" } });
  const result = h("div", { class: "upload-result", dataset: { testid: "upload-result" }, "aria-live": "polite" });
  const progress = h("div", { class: "ingest-progress", dataset: { testid: "ingest-progress" }, hidden: true });
  const searchInput = h("input", {
    type: "search", class: "input queue-search", placeholder: "Search origins and titles",
    dataset: { testid: "queue-search" }, "aria-label": "Search the training data",
  });
  const pager = h("div", { class: "queue-pager muted small", dataset: { testid: "queue-pager" } });
  const stats = h("p", { class: "muted small queue-stats", dataset: { testid: "queue-stats" } });
  const splitLine = h("p", { class: "muted small queue-split", dataset: { testid: "queue-split-summary" } });
  const importSelect = h("select", { class: "input", dataset: { testid: "import-source" }, "aria-label": "Model to import data from" });
  const importButton = h("button", { type: "button", class: "btn", dataset: { testid: "import-button" }, onclick: () => importFrom() },
    "Import");
  const chooseButton = h("button", { type: "button", class: "btn", dataset: { testid: "import-choose" }, onclick: () => importChosen() },
    "Choose items…");
  const clearButton = h("button", { type: "button", class: "btn btn-danger-quiet", dataset: { testid: "queue-clear" }, onclick: () => clearAll() },
    "Clear…");
  const preview = h("div", { class: "queue-preview", dataset: { testid: "queue-preview" }, hidden: true });
  const root = h("div", { class: "queue" },
    h("div", { class: "card-head" },
      h("h3", { id: "queue-title" }, "Training data"), summary, addButton, input),
    h("div", { class: "queue-tools" },
      searchInput,
      h("label", { class: "queue-import muted small" }, "Import data from model ", importSelect, importButton, chooseButton),
      clearButton),
    progress,
    result,
    stats,
    splitLine,
    h("div", { class: "table-scroll" }, table),
    pager,
    preview,
    h("p", { class: "muted small queue-hint" },
      "Text, Markdown, HTML, JSON, JSON Lines, CSV, PDF, folders and .zip archives, in any common encoding. ",
      "Drop files anywhere on this tab to add them too. Empty, binary and unreadable files are reported with the reason."),
  );
  searchInput.addEventListener("input", debounce(() => {
    search = searchInput.value.trim();
    offset = 0;
    load();
  }, 250));
  selection.subscribe(() => renderImport());
  store.subscribe((what) => {
    if (!(what.all || what.models.size)) return;
    renderSummary();
    // The split follows the model's validation settings: a changed one redraws who trains.
    if (name && split && splitSettings() !== splitKey) load();
  });

  function splitSettings() {
    const m = store.byName(name);
    return m ? `${m.validation_split}:${m.validation_share}` : splitKey;
  }
  container.append(root);

  input.addEventListener("change", async () => {
    const files = [...input.files];
    input.value = "";
    if (files.length) await upload(files);
  });

  /** The queue's counts are the store's (the same numbers every tab shows), the list's own
   * answer only until the store has the model. */
  function totals() {
    return store.byName(name)?.queue || queueTotals;
  }

  function renderSummary() {
    const t = totals();
    summary.textContent = name ? `${plural(t.items, "item")} · ${plural(t.tokens, "token")}` : "";
    clearButton.disabled = !name || busy || t.items === 0;
  }

  function render() {
    renderSummary();
    addButton.disabled = !name || busy;
    importButton.disabled = !name || busy || !importSelect.value;
    chooseButton.disabled = importButton.disabled;
    fill(pager,
      total > PAGE ? [
        h("button", { type: "button", class: "btn btn-small", dataset: { testid: "queue-prev" }, disabled: offset === 0,
          onclick: () => { offset = Math.max(0, offset - PAGE); load(); } }, "‹ Previous"),
        h("span", {}, ` ${formatInt(offset + 1)}–${formatInt(offset + items.length)} of ${formatInt(total)} `),
        h("button", { type: "button", class: "btn btn-small", dataset: { testid: "queue-next" }, disabled: offset + PAGE >= total,
          onclick: () => { offset += PAGE; load(); } }, "Next ›"),
      ] : (search && name ? `${plural(total, "match", "matches")}` : ""));
    const rows = items.map((e) => {
      const used = epochsUsed(e.epochs_used);
      const part = splitCell(e);
      return h("tr", { dataset: { entryId: String(e.id), origin: baseName(e.origin) } },
        h("td", { class: "queue-origin", title: e.title ? `${e.title}\n${e.origin}` : e.origin },
          h("span", { class: "queue-name" }, baseName(e.origin)),
          e.source_kind && e.source_kind !== "file" ? h("span", { class: "badge badge-muted" }, e.source_kind) : null,
          e.imported_from ? h("span", { class: "badge badge-muted", dataset: { testid: "queue-imported" } }, `from ${e.imported_from}`) : null),
        h("td", { class: "num" }, formatBytes(e.byte_count)),
        h("td", { class: "num", dataset: { testid: "queue-tokens" } }, formatInt(e.token_count)),
        h("td", {}, e.status === "ready"
          ? h("span", { class: "badge badge-ok" }, "ready")
          : h("span", { class: "badge badge-warn", title: e.error || "" }, e.status)),
        h("td", { class: `queue-split-cell split-${part.role}`, title: part.title, dataset: { testid: "queue-split", role: part.role } }, part.text),
        h("td", { class: "num", title: part.role === "validation" ? "Validation: never trained on"
          : used.length ? `Trained on in epoch ${used.join(", ")}` : "Not used by training yet" },
          used.length ? formatInt(used.length) : "–"),
        h("td", { class: "date", title: formatDate(e.added_at) }, formatAgo(e.added_at)),
        h("td", { class: "actions" },
          h("button", { type: "button", class: "btn btn-small", dataset: { testid: "queue-preview-button" }, onclick: () => showPreview(e) }, "Preview"),
          e.status === "ready" ? h("button", { type: "button", class: "btn btn-small", dataset: { testid: "queue-holdout" },
            title: e.holdout ? "Let training use this item again (as the split says)" : "Hold this item out whole as validation: it is never trained on",
            onclick: () => mark(e, !e.holdout) }, e.holdout ? "Train on it" : "Hold out") : null,
          h("button", { type: "button", class: "btn btn-small btn-danger-quiet", dataset: { testid: "queue-remove" }, onclick: () => remove(e) }, "Remove…"),
        ),
      );
    });
    if (!rows.length) {
      rows.push(h("tr", { class: "empty-row" }, h("td", { colspan: "8" },
        !name ? "Select a model to see its training data."
          : search ? "Nothing in the queue matches the search." : "The queue is empty. Add files for the model to learn from.")));
    }
    fill(table,
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "File"), h("th", { scope: "col", class: "num" }, "Size"),
        h("th", { scope: "col", class: "num" }, "Tokens"), h("th", { scope: "col" }, "Status"),
        h("th", { scope: "col", title: "What training uses, and what it holds out for validation" }, "Split"),
        h("th", { scope: "col", class: "num", title: "Epochs that used it" }, "Epochs"),
        h("th", { scope: "col" }, "Added"),
        h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
      h("tbody", {}, rows),
    );
  }

  async function load(modelName = name) {
    const switched = modelName !== name;
    if (switched) {
      fill(result);
      closePreview();
      items = [];
      offset = 0;
      total = 0;
      queueTotals = { items: 0, tokens: 0 };
      split = null;
      renderSplit();
      search = "";
      searchInput.value = "";
      tracking = null;
      progress.hidden = true;
    }
    name = modelName;
    renderImport();
    const mine = ++seq;
    if (!name) {
      items = [];
      render();
      return;
    }
    render();
    try {
      const [data, st] = await Promise.all([
        api.get(`/api/models/${api.seg(name)}/queue${api.query({ offset, limit: PAGE, search: search || null })}`),
        api.get(`/api/models/${api.seg(name)}/queue/stats`),
      ]);
      if (mine !== seq) return;
      items = data.items;
      total = data.total;
      queueTotals = data.queue;
      split = data.split;
      splitKey = splitSettings();
      renderSplit();
      renderStats(st);
      render();
      if (switched) findRunningIngest(name);
    } catch (err) {
      if (mine === seq && err.code !== "model_not_found") toastError(err);
    }
  }

  function renderSplit() {
    if (!split || !queueTotals.items) {
      splitLine.textContent = "";
      return;
    }
    const auto = split.setting === "auto" ? " (auto)" : "";
    splitLine.textContent = `Validation${auto}: ${split.description} · ${plural(split.train_tokens, "token")} train, `
      + `${plural(split.validation_tokens, "token")} validate (never trained on). Change it with validation_split in the settings.`;
    splitLine.dataset.mode = split.mode;
  }

  async function mark(e, holdout) {
    try {
      await api.patch(`/api/models/${api.seg(name)}/queue/${e.id}`, { holdout });
      await load();
    } catch (err) {
      toastError(err);
    }
  }

  function renderStats(st) {
    if (!st.items) {
      stats.textContent = "";
      return;
    }
    const parts = st.by_source.map((s) => `${s.source_kind}: ${plural(s.items, "item")}, ${plural(s.tokens, "token")}`);
    for (const imp of st.imported_from) parts.push(`imported from ${imp.model_name || "a deleted model"}: ${plural(imp.items, "item")}`);
    stats.textContent = `${formatBytes(st.byte_count)} of text · ${parts.join(" · ")}`;
  }

  function renderImport() {
    const others = selection.models().filter((m) => m.model_name !== name);
    const keep = importSelect.value;
    fill(importSelect,
      h("option", { value: "" }, others.length ? "choose a model…" : "no other models"),
      others.map((m) => h("option", { value: m.model_name }, `${m.model_name} (${formatInt(m.queue.items)} items)`)));
    if (others.some((m) => m.model_name === keep)) importSelect.value = keep;
    importButton.disabled = !name || busy || !importSelect.value;
    chooseButton.disabled = importButton.disabled;
  }
  importSelect.addEventListener("change", () => render());

  /** A reloaded window finds the model's running ingest job and shows its progress again. */
  async function findRunningIngest(target) {
    try {
      const { jobs } = await api.get(`/api/jobs${api.query({ model_name: target, active: 1 })}`);
      const running = jobs.find((j) => j.kind === "ingest");
      if (running && target === name && !tracking) track(running);
    } catch {
      // the next action shows any real problem
    }
  }

  function renderProgress(job) {
    const d = job.detail || {};
    progress.hidden = false;
    const fraction = d.bytes_total ? d.bytes_done / d.bytes_total : (d.files_total ? d.files_done / d.files_total : 0);
    fill(progress,
      h("div", { class: "ingest-line" },
        h("strong", {}, job.params?.import_from ? "Importing" : "Adding"),
        h("span", { dataset: { testid: "ingest-counts" } },
          ` ${formatInt(d.files_done || 0)} of ${formatInt(d.files_total || 0)} files · `,
          `${formatBytes(d.bytes_done || 0)} · ${plural(d.tokens || 0, "token")}`),
        h("button", { type: "button", class: "btn btn-small push-right", dataset: { testid: "ingest-stop" },
          onclick: () => api.post(`/api/jobs/${job.id}/stop`, {}).catch(toastError) }, "Stop")),
      h("progress", { max: "1", value: String(Math.min(1, fraction || 0)) }));
  }

  /** Follow an ingest job in the store (the change feed brings its progress) until it ends,
   * then show its per-file report. */
  async function track(job) {
    tracking = { id: job.id, model: name };
    busy = true;
    render();
    renderProgress(job);
    try {
      const ended = await store.untilEnded(job, {
        onProgress: renderProgress,
        stillWanted: () => Boolean(tracking && tracking.id === job.id),
      });
      if (!ended) return;
      progress.hidden = true;
      showResult(ended);
      await load();
      onChange();
    } catch (err) {
      fill(result, h("p", { class: "form-error", role: "alert" }, errorText(err)));
    } finally {
      if (tracking && tracking.id === job.id) tracking = null;
      busy = false;
      render();
    }
  }

  /** Show what an ingest job did, file by file. */
  function showResult(job) {
    const d = job.detail || {};
    const report = d.report || [];
    const problems = report.filter((r) => r.outcome === "refused" || r.outcome === "empty");
    const dups = report.filter((r) => r.outcome === "duplicate");
    const lines = [];
    const what = job.params?.import_from ? "Imported" : "Added";
    if (d.added) lines.push(`${what} ${plural(d.added, "file")} (${plural(d.tokens, "token")}).`);
    if (dups.length) {
      lines.push(`${plural(dups.length, "file was", "files were")} already in the queue: ${dups.map((r) => baseName(r.origin)).join(", ")}.`);
    }
    if (job.state === "stopped") lines.push("Stopped before the end; what was added stays.");
    if (job.state === "failed") lines.push(`It failed: ${job.error || "unknown error"}.`);
    if (!lines.length) lines.push("No file was added.");
    fill(result,
      h("div", { class: `upload-box${problems.length ? " has-refused" : ""}` },
        h("div", { class: "upload-box-head" },
          h("p", { dataset: { testid: "upload-summary" } }, lines.join(" ")),
          h("button", { type: "button", class: "toast-close push-right", "aria-label": "Dismiss", onclick: () => fill(result) }, "×"),
        ),
        problems.length
          ? h("ul", { class: "refused", dataset: { testid: "upload-refused" } },
            problems.map((r) => h("li", { dataset: { origin: baseName(r.origin), outcome: r.outcome } },
              h("strong", {}, baseName(r.origin)), ` was not added: ${r.reason}.`)))
          : null,
      ),
    );
    if (d.added) toast(`${what} ${plural(d.added, "file")} to the training data`, { kind: "ok" });
  }

  async function run(action) {
    busy = true;
    render();
    try {
      const job = await action();
      busy = false;
      await track(job);
    } catch (err) {
      fill(result, h("p", { class: "form-error", role: "alert" }, errorText(err)));
    } finally {
      busy = false;
      render();
    }
  }

  async function importFrom() {
    const source = importSelect.value;
    if (!name || !source) return;
    const target = name;
    return run(() => api.post(`/api/models/${api.seg(target)}/queue/import`, { from: source }));
  }

  /** Import only the items ticked in a list of the other model's queue (its first CHOOSE_LIMIT). */
  async function importChosen() {
    const source = importSelect.value;
    if (!name || !source) return;
    const target = name;
    let listing;
    try {
      listing = await api.get(`/api/models/${api.seg(source)}/queue${api.query({ limit: CHOOSE_LIMIT })}`);
    } catch (err) {
      toastError(err);
      return;
    }
    if (!listing.items.length) {
      fill(result, h("p", { class: "form-error", role: "alert" }, `The training data of ${source} is empty: there is nothing to import`));
      return;
    }
    const boxes = listing.items.map((e) => h("input", { type: "checkbox", value: String(e.id), dataset: { testid: "import-choice", origin: baseName(e.origin) } }));
    const list = h("ul", { class: "import-choices", dataset: { testid: "import-choices" } },
      listing.items.map((e, i) => h("li", {},
        h("label", {}, boxes[i], ` ${e.title || baseName(e.origin)} `,
          h("span", { class: "muted small" }, `${e.source_kind} · ${plural(e.token_count, "token")}`)))));
    const more = listing.total > listing.items.length
      ? h("p", { class: "muted small" }, `The first ${formatInt(listing.items.length)} of ${formatInt(listing.total)} items; import the whole queue with Import.`)
      : null;
    const ok = await confirmDialog({
      title: `Import items of ${source} into ${target}`,
      message: [h("p", { class: "muted" }, "Tick the items to copy. They are copied, not moved: " + source + " keeps them."), list, more],
      confirmLabel: "Import chosen items",
    });
    if (!ok) return;
    const ids = boxes.filter((b) => b.checked).map((b) => Number(b.value));
    if (!ids.length) {
      fill(result, h("p", { class: "form-error", role: "alert" }, "No items were ticked, so nothing was imported"));
      return;
    }
    return run(() => api.post(`/api/models/${api.seg(target)}/queue/import`, { from: source, entry_ids: ids }));
  }

  async function clearAll() {
    const target = name;
    const ok = await confirmDialog({
      title: `Clear the training data of ${target}?`,
      message: [
        h("p", {}, `All ${plural(totals().items, "item")} (${plural(totals().tokens, "token")}) leave the queue.`),
        h("p", { class: "muted" }, "What the model already learned stays. This cannot be undone."),
      ],
      confirmLabel: "Clear",
      danger: true,
    });
    if (!ok) return;
    try {
      const r = await api.del(`/api/models/${api.seg(target)}/queue`, { confirm: true });
      toast(`Removed ${plural(r.removed, "item")} from the training data of ${target}`, { kind: "ok" });
      closePreview();
      offset = 0;
      await load();
      onChange();
    } catch (err) {
      toastError(err);
    }
  }

  /** Upload File objects (a file input or a drop) as multipart form data. */
  function upload(files) {
    if (!name || !files.length) return Promise.resolve();
    const target = name;
    const form = new FormData();
    for (const file of files) form.append("files", file, file.name);
    return run(() => api.upload(`/api/models/${api.seg(target)}/queue/upload`, form));
  }

  /** Add files by path (the desktop window's native dialog gives paths). */
  function addPaths(paths) {
    if (!name || !paths.length) return Promise.resolve();
    const target = name;
    return run(() => api.post(`/api/models/${api.seg(target)}/queue/files`, { paths }));
  }

  /** "Add training data…": the native dialog in the desktop window, a file input in a browser. */
  async function pick() {
    if (!name) return;
    let paths;
    try {
      paths = await pickFiles();
    } catch (err) {
      toastError(err);
      return;
    }
    if (paths === null) {
      input.click();
      return;
    }
    if (paths.length) await addPaths(paths);
  }

  async function showPreview(entry) {
    const target = name;
    try {
      const data = await api.get(`/api/models/${api.seg(target)}/queue/${entry.id}`);
      if (target !== name) return;
      preview.hidden = false;
      fill(preview,
        h("div", { class: "queue-preview-head" },
          h("h4", {}, "Preview: ", h("span", { class: "mono" }, baseName(data.origin))),
          h("span", { class: "muted small" }, data.truncated
            ? `the start of ${formatBytes(data.byte_count)} of text`
            : `all ${formatBytes(data.byte_count)} of text`,
            data.title ? ` · ${data.title}` : ""),
          h("button", { type: "button", class: "btn btn-small push-right", dataset: { testid: "queue-preview-close" }, onclick: closePreview }, "Close"),
        ),
        h("pre", { class: "queue-preview-text", dataset: { testid: "queue-preview-text" }, tabindex: "0" },
          data.text, data.truncated ? "\n…" : ""),
      );
      preview.scrollIntoView({ block: "nearest" });
    } catch (err) {
      toastError(err);
    }
  }

  function closePreview() {
    preview.hidden = true;
    fill(preview);
  }

  async function remove(entry) {
    const target = name;
    const ok = await confirmDialog({
      title: `Remove ${baseName(entry.origin)}?`,
      message: [
        h("p", {}, h("strong", {}, baseName(entry.origin)), ` (${formatInt(entry.token_count)} tokens) leaves the training data.`),
        h("p", { class: "muted" }, "What the model already learned from it stays. You can add the file again later."),
      ],
      confirmLabel: "Remove",
      danger: true,
    });
    if (!ok) return;
    try {
      await api.del(`/api/models/${api.seg(target)}/queue/${entry.id}`);
      toast(`Removed ${baseName(entry.origin)} from the training data`, { kind: "ok" });
      if (!preview.hidden) closePreview();
      await load();
      onChange();
    } catch (err) {
      toastError(err);
      await load();
    }
  }

  render();
  return { load, upload, addPaths, pick, items: () => items, modelName: () => name };
}
