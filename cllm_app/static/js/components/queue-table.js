// A model's training-data queue: a table of its items with preview and remove, the
// "Add training data…" button (the desktop window's file dialog, or a file input in a
// browser) and the answer of each upload: what was added, what was already there, and each
// refused file with its reason.

import * as api from "../api.js";
import { pickFiles } from "../bridge.js";
import {
  confirmDialog, errorText, fill, formatAgo, formatBytes, formatDate, formatInt, h, toast, toastError,
} from "../ui.js";

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

function plural(n, one, many = `${one}s`) {
  return `${formatInt(n)} ${n === 1 ? one : many}`;
}

/**
 * createQueueTable(container, {onChange}) → {load(name), upload(files), addPaths(paths), pick()}
 * `onChange()` runs after the queue changed (added or removed items).
 */
export function createQueueTable(container, { onChange = () => {} } = {}) {
  let name = null;
  let items = [];
  let seq = 0;
  let busy = false;

  const summary = h("span", { class: "muted small", dataset: { testid: "queue-summary" } });
  const input = h("input", {
    type: "file", multiple: true, hidden: true, dataset: { testid: "queue-file-input" },
    "aria-label": "Text files to add to the training data",
  });
  const addButton = h("button", { type: "button", class: "btn push-right", dataset: { testid: "queue-add" }, onclick: () => pick() },
    "Add training data…");
  const table = h("table", { class: "table queue-table", dataset: { testid: "queue-table" } });
  const result = h("div", { class: "upload-result", dataset: { testid: "upload-result" }, "aria-live": "polite" });
  const preview = h("div", { class: "queue-preview", dataset: { testid: "queue-preview" }, hidden: true });
  const root = h("div", { class: "queue" },
    h("div", { class: "card-head" },
      h("h3", { id: "queue-title" }, "Training data"), summary, addButton, input),
    result,
    h("div", { class: "table-scroll" }, table),
    preview,
    h("p", { class: "muted small queue-hint" },
      "UTF-8 text files (.txt, .md, .csv, source code…). Drop files anywhere on this tab to add them too. ",
      "Empty, binary and non-UTF-8 files are refused with the reason."),
  );
  container.append(root);

  input.addEventListener("change", async () => {
    const files = [...input.files];
    input.value = "";
    if (files.length) await upload(files);
  });

  function render() {
    const tokens = items.reduce((sum, e) => sum + (e.token_count || 0), 0);
    summary.textContent = name ? `${plural(items.length, "item")} · ${plural(tokens, "token")}` : "";
    addButton.disabled = !name || busy;
    const rows = items.map((e) => {
      const used = epochsUsed(e.epochs_used);
      return h("tr", { dataset: { entryId: String(e.id), origin: baseName(e.origin) } },
        h("td", { class: "queue-origin", title: e.origin }, h("span", { class: "queue-name" }, baseName(e.origin)),
          e.source_kind && e.source_kind !== "file" ? h("span", { class: "badge badge-muted" }, e.source_kind) : null),
        h("td", { class: "num" }, formatBytes(e.byte_count)),
        h("td", { class: "num", dataset: { testid: "queue-tokens" } }, formatInt(e.token_count)),
        h("td", {}, e.status === "ready"
          ? h("span", { class: "badge badge-ok" }, "ready")
          : h("span", { class: "badge badge-warn", title: e.error || "" }, e.status)),
        h("td", { class: "num", title: used.length ? `Used in epoch ${used.join(", ")}` : "Not used by training yet" },
          used.length ? formatInt(used.length) : "–"),
        h("td", { class: "date", title: formatDate(e.added_at) }, formatAgo(e.added_at)),
        h("td", { class: "actions" },
          h("button", { type: "button", class: "btn btn-small", dataset: { testid: "queue-preview-button" }, onclick: () => showPreview(e) }, "Preview"),
          h("button", { type: "button", class: "btn btn-small btn-danger-quiet", dataset: { testid: "queue-remove" }, onclick: () => remove(e) }, "Remove…"),
        ),
      );
    });
    if (!rows.length) {
      rows.push(h("tr", { class: "empty-row" }, h("td", { colspan: "7" },
        name ? "The queue is empty. Add text files for the model to learn from." : "Select a model to see its training data.")));
    }
    fill(table,
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "File"), h("th", { scope: "col", class: "num" }, "Size"),
        h("th", { scope: "col", class: "num" }, "Tokens"), h("th", { scope: "col" }, "Status"),
        h("th", { scope: "col", class: "num", title: "Epochs that used it" }, "Epochs"),
        h("th", { scope: "col" }, "Added"),
        h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
      h("tbody", {}, rows),
    );
  }

  async function load(modelName = name) {
    if (modelName !== name) {
      fill(result);
      closePreview();
      items = [];
    }
    name = modelName;
    const mine = ++seq;
    if (!name) {
      items = [];
      render();
      return;
    }
    render();
    try {
      const data = await api.get(`/api/models/${api.seg(name)}/queue`);
      if (mine !== seq) return;
      items = data.items;
      render();
    } catch (err) {
      if (mine === seq && err.code !== "model_not_found") toastError(err);
    }
  }

  /** Show what an upload (or add by path) did. */
  function showResult({ added = [], duplicates = [], refused = [] }) {
    const tokens = added.reduce((sum, e) => sum + (e.token_count || 0), 0);
    const lines = [];
    if (added.length) lines.push(`Added ${plural(added.length, "file")} (${plural(tokens, "token")}).`);
    if (duplicates.length) {
      lines.push(`${plural(duplicates.length, "file was", "files were")} already in the queue: ${duplicates.map((e) => baseName(e.origin)).join(", ")}.`);
    }
    if (!added.length && !duplicates.length && !refused.length) lines.push("No files were added.");
    fill(result,
      h("div", { class: `upload-box${refused.length ? " has-refused" : ""}` },
        h("div", { class: "upload-box-head" },
          h("p", { dataset: { testid: "upload-summary" } }, lines.join(" ") || `No file was added.`),
          h("button", { type: "button", class: "toast-close push-right", "aria-label": "Dismiss", onclick: () => fill(result) }, "×"),
        ),
        refused.length
          ? h("ul", { class: "refused", dataset: { testid: "upload-refused" } },
            refused.map((r) => h("li", { dataset: { origin: baseName(r.origin) } },
              h("strong", {}, baseName(r.origin)), ` was not added: ${r.reason}.`)))
          : null,
      ),
    );
    if (added.length) toast(`Added ${plural(added.length, "file")} to the training data`, { kind: "ok" });
  }

  async function run(action) {
    busy = true;
    render();
    try {
      showResult(await action());
      await load();
      onChange();
    } catch (err) {
      fill(result, h("p", { class: "form-error", role: "alert" }, errorText(err)));
    } finally {
      busy = false;
      render();
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
            : `all ${formatBytes(data.byte_count)} of text`),
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
  return { load, upload, addPaths, pick, items: () => items };
}
