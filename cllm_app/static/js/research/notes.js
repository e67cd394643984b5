// Notes: the markdown and text files of the data root's research/ folder. Search (names and
// text, with snippets), create, edit, rename, delete, import a document, and attach a note to
// the selected model; the selected model's notes are listed first. A note's HTML comes from
// the server, rendered with raw HTML off, so it is safe to insert.

import * as api from "../api.js";
import * as selection from "../selection.js";
import { confirmDialog, debounce, errorText, fill, formatAgo, h, promptDialog, toast, toastError } from "../ui.js";

let els = {};
let open = null; // the note shown: GET /api/research/notes/<name>
let editing = false;
let listSeq = 0;

const path = (name) => `/api/research/notes/${api.seg(name)}`;

let shownModel = null; // the model the "Attached to" list was last drawn for

export function mount(box) {
  els.search = h("input", { type: "search", class: "input", placeholder: "Search notes…", "aria-label": "Search notes",
    dataset: { testid: "notes-search" }, oninput: debounce(refresh, 200) });
  els.onlyModel = h("input", { type: "checkbox", id: "notes-only-model", dataset: { testid: "notes-only-model" }, onchange: refresh });
  els.create = h("button", { type: "button", class: "btn btn-primary", dataset: { testid: "notes-new" }, onclick: createNote }, "New note");
  els.importInput = h("input", { type: "file", class: "visually-hidden", accept: ".md,.markdown,.txt,text/plain,text/markdown",
    dataset: { testid: "notes-import-file" }, onchange: importNote });
  els.importBtn = h("button", { type: "button", class: "btn", dataset: { testid: "notes-import" }, onclick: () => els.importInput.click() }, "Import…");
  els.modelNotes = h("div", { class: "research-model-notes", dataset: { testid: "notes-of-model" } });
  els.list = h("ul", { class: "research-notes-list", dataset: { testid: "notes-list" } });
  els.folder = h("p", { class: "muted small path" });
  els.view = h("div", { class: "research-note", dataset: { testid: "note-view" } });
  fill(box, h("div", { class: "research-notes-layout" },
    h("section", { class: "card" },
      h("div", { class: "card-head" }, h("h3", {}, "Notes"), h("div", { class: "push-right research-row" }, els.importBtn, els.create, els.importInput)),
      els.search,
      h("label", { class: "chart-check", for: "notes-only-model" }, els.onlyModel, h("span", {}, "Only notes attached to the selected model")),
      els.modelNotes, els.list, els.folder),
    h("section", { class: "card" }, els.view)));
  showEmpty();
}

export function shown() {
  refresh();
}

export function selectionChanged() {
  refresh();
  if (open) renderNote();
}

function showEmpty() {
  fill(els.view, h("p", { class: "muted" }, "Choose a note, or create one. Notes are markdown (.md) or plain text (.txt) files in the research folder."));
}

async function refresh() {
  const mine = ++listSeq;
  const model = selection.current();
  if (model !== shownModel) {
    // Name the newly selected (or renamed) model at once; its notes follow from the server.
    shownModel = model;
    fill(els.modelNotes, model ? h("div", {}, h("h4", { class: "small" }, `Attached to ${model}`), h("p", { class: "muted small" }, "…")) : null);
  }
  try {
    const [all, ofModel] = await Promise.all([
      api.get(`/api/research/notes${api.query({ q: els.search.value.trim() || null, model_name: els.onlyModel.checked && model ? model : null })}`),
      model ? api.get(`/api/research/notes${api.query({ model_name: model })}`) : Promise.resolve({ notes: [] }),
    ]);
    if (mine !== listSeq) return;
    els.folder.textContent = `Folder: ${all.folder}`;
    fill(els.modelNotes, model
      ? h("div", {}, h("h4", { class: "small" }, `Attached to ${model}`),
        ofModel.notes.length
          ? h("ul", { class: "research-chips" }, ofModel.notes.map((n) => h("li", {},
            h("button", { type: "button", class: "link", dataset: { testid: "model-note" }, onclick: () => openNote(n.note_name) }, n.title))))
          : h("p", { class: "muted small" }, "No notes attached yet."))
      : null);
    fill(els.list, all.notes.length ? all.notes.map((n) => h("li", {
      class: open?.note_name === n.note_name ? "is-open" : "", dataset: { note: n.note_name, testid: "note-item" } },
      h("button", { type: "button", class: "research-note-item", onclick: () => openNote(n.note_name) },
        h("strong", {}, n.title), h("span", { class: "muted small" }, ` ${n.note_name} · ${formatAgo(n.modified_at)}`),
        n.models.length ? h("span", { class: "badge badge-accent" }, n.models.join(", ")) : null,
        (n.snippets || []).map((s) => h("span", { class: "research-snippet small", dataset: { testid: "note-snippet" } }, s)))))
      : h("li", { class: "muted" }, els.search.value ? "No note matches." : "No notes yet."));
  } catch (err) {
    toastError(err);
  }
}

async function openNote(name) {
  try {
    open = await api.get(path(name));
    editing = false;
    renderNote();
    refresh();
  } catch (err) {
    toastError(err);
  }
}

function renderNote() {
  if (!open) return showEmpty();
  const model = selection.current();
  const attached = model && open.models.includes(model);
  const body = h("div", { class: "research-note-body", dataset: { testid: "note-rendered" } });
  body.innerHTML = open.html; // rendered by the server with raw HTML disabled
  const editor = h("textarea", { class: "input research-text research-editor", rows: 18, dataset: { testid: "note-editor" }, "aria-label": "Note text" }, open.content);
  fill(els.view,
    h("div", { class: "card-head" },
      h("h3", { dataset: { testid: "note-title" } }, open.title),
      h("span", { class: "muted small mono" }, open.note_name),
      h("div", { class: "push-right research-row" },
        editing
          ? [h("button", { type: "button", class: "btn btn-primary", dataset: { testid: "note-save" }, onclick: () => save(editor.value) }, "Save"),
            h("button", { type: "button", class: "btn", onclick: () => { editing = false; renderNote(); } }, "Cancel")]
          : h("button", { type: "button", class: "btn", dataset: { testid: "note-edit" }, onclick: () => { editing = true; renderNote(); } }, "Edit"),
        h("button", { type: "button", class: "btn", dataset: { testid: "note-rename" }, onclick: rename }, "Rename…"),
        model ? h("button", { type: "button", class: "btn", dataset: { testid: "note-attach" }, "aria-pressed": String(Boolean(attached)),
          onclick: () => attach(model, !attached) }, attached ? `Detach from ${model}` : `Attach to ${model}`) : null,
        h("button", { type: "button", class: "btn btn-danger-quiet", dataset: { testid: "note-delete" }, onclick: remove }, "Delete"))),
    h("p", { class: "small muted", dataset: { testid: "note-models" } },
      open.models.length ? `Attached to ${open.models.join(", ")}` : "Not attached to any model"),
    editing ? editor : body,
  );
  if (editing) editor.focus();
}

async function save(content) {
  try {
    open = await api.put(path(open.note_name), { content });
    editing = false;
    renderNote();
    refresh();
    toast(`Saved ${open.note_name}`, { kind: "ok" });
  } catch (err) {
    toastError(err);
  }
}

async function createNote() {
  const name = await promptDialog({ title: "New note", label: "note_name", value: "", confirmLabel: "Create",
    message: "A name ending in .md (markdown, the default) or .txt." });
  if (name === null) return;
  try {
    open = await api.post("/api/research/notes", { note_name: name, content: `# ${name.replace(/\.(md|txt)$/i, "")}\n\n` });
    editing = true;
    renderNote();
    refresh();
  } catch (err) {
    toastError(err);
  }
}

async function rename() {
  const name = await promptDialog({ title: "Rename note", label: "note_name", value: open.note_name, confirmLabel: "Rename" });
  if (name === null) return;
  try {
    open = await api.post(`${path(open.note_name)}/rename`, { note_name: name });
    renderNote();
    refresh();
  } catch (err) {
    toastError(err);
  }
}

async function remove() {
  const ok = await confirmDialog({ title: "Delete note", message: `Delete “${open.note_name}”? The file is removed; this cannot be undone.`,
    confirmLabel: "Delete", danger: true });
  if (!ok) return;
  try {
    await api.del(path(open.note_name), { confirm: true });
    open = null;
    showEmpty();
    refresh();
  } catch (err) {
    toastError(err);
  }
}

async function attach(model, on) {
  try {
    const target = `${path(open.note_name)}/models/${api.seg(model)}`;
    open = on ? await api.put(target) : await api.del(target);
    renderNote();
    refresh();
  } catch (err) {
    toastError(err);
  }
}

async function importNote() {
  const file = els.importInput.files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  try {
    open = await api.upload("/api/research/notes/upload", form);
    editing = false;
    renderNote();
    refresh();
    toast(`Imported ${file.name} as ${open.note_name}`, { kind: "ok" });
  } catch (err) {
    toastError(err);
  } finally {
    els.importInput.value = "";
  }
}
