// The one shared model selection: which model is current, and the list of models in the
// Models table's order.
//
// Every tab's selector reads from here and writes here. The models themselves are the store's
// (store.js), kept true by the change feed, so a rename anywhere (this window, the CLI, another
// window) renames the selection too: it follows the model by id. When the selected model is
// deleted, the next one in the list is selected. The choice is saved with PUT /api/settings
// (the server keeps it by model id) and read back on boot with GET /api/settings.

import * as api from "./api.js";
import * as store from "./store.js";
import { toastError } from "./ui.js";

const state = {
  models: [],
  currentId: null,
  sort: "name",
  order: "asc",
  loaded: false,
};
const listeners = new Set();

function find(name) {
  return name == null ? null : state.models.find((m) => m.model_name === name) || null;
}

function currentModelOf() {
  return state.currentId == null ? null : store.model(state.currentId);
}

function snapshot() {
  const m = currentModelOf();
  return { models: state.models, current: m ? m.model_name : null, currentModel: m, sort: state.sort, order: state.order };
}

function emit() {
  const snap = snapshot();
  for (const fn of listeners) {
    try {
      fn(snap);
    } catch (err) {
      console.error("a selection listener failed", err);
    }
  }
}

const SORTS = {
  name: (a, b) => byName(a, b),
  created: (a, b) => a.created_at.localeCompare(b.created_at) || a.id - b.id,
  updated: (a, b) => a.updated_at.localeCompare(b.updated_at) || a.id - b.id,
  size: (a, b) => (a.disk_bytes ?? 0) - (b.disk_bytes ?? 0) || byName(a, b),
};

function ordered() {
  const list = store.allModels().sort(SORTS[state.sort] || SORTS.name);
  return state.order === "desc" ? list.reverse() : list;
}

/** Call fn(state) now (if loaded) and on every change; returns an unsubscribe function. */
export function subscribe(fn) {
  listeners.add(fn);
  if (state.loaded) fn(snapshot());
  return () => listeners.delete(fn);
}

export function current() {
  return snapshot().current;
}

export function models() {
  return state.models;
}

async function persist(name) {
  try {
    await api.put("/api/settings", { selected_model: name });
  } catch (err) {
    toastError(err);
  }
}

/** The store changed: the list again, and a new current model where it was deleted (the one
 * after it in the list, else the one before). */
function onStore(what) {
  if (!what.all && !what.models.size) return; // a job's progress: the list is as it was
  const before = state.models;
  state.models = ordered();
  if (state.currentId != null && !store.model(state.currentId)) {
    const at = before.findIndex((m) => m.id === state.currentId);
    const rest = before.filter((m) => m.id !== state.currentId && store.model(m.id));
    const next = rest[Math.min(Math.max(at, 0), rest.length - 1)] || null;
    state.currentId = next ? next.id : null;
    persist(next ? next.model_name : null);
  }
  state.loaded = store.isLoaded();
  if (state.loaded) emit();
}

/** Load the models again, then make `select` (a name) current if given. The console's
 * `cllmStudio.selection.refresh()` (bridge.js): the page itself needs it no more. */
export async function refresh({ select: name } = {}) {
  await store.load();
  if (name !== undefined) await select(name);
}

/** Make `name` the current model everywhere (null clears the selection). */
export async function select(name) {
  const m = name ? find(name) || store.byName(name) : null;
  const id = m ? m.id : null;
  if (id === state.currentId) return;
  state.currentId = id;
  emit();
  await persist(m ? m.model_name : null);
}

/** Change the list order (the Models table's sortable columns). */
export async function setSort(sort, order) {
  state.sort = sort;
  state.order = order;
  state.models = ordered();
  emit();
}

/** First load: the saved selection, then the list. With nothing saved, the first model is chosen. */
export async function init() {
  store.subscribe(onStore);
  const [settings] = await Promise.all([api.get("/api/settings"), store.load()]);
  const saved = store.byName(settings.selected_model);
  state.currentId = saved ? saved.id : null;
  state.models = ordered();
  state.loaded = true;
  if (state.currentId === null && state.models.length) {
    await select([...state.models].sort(byName)[0].model_name);
  } else {
    emit();
  }
}

/** Compare two models by name the way a person reads a list. */
export function byName(a, b) {
  return a.model_name.localeCompare(b.model_name, undefined, { sensitivity: "base", numeric: true });
}
