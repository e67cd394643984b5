// The one shared model selection: which model is current, and the list of models.
//
// Every tab's selector reads from here and writes here; nobody keeps a copy of the list.
// The choice is saved with PUT /api/settings (the server keeps it by model id, so a rename
// never leaves an old name behind) and read back on boot with GET /api/settings. The list is
// fetched again whenever the store's models, queues or jobs change (events.js), whoever
// changed them: this window, another one, the CLI or a job.

import * as api from "./api.js";
import * as events from "./events.js";
import { toastError } from "./ui.js";

const state = {
  models: [],
  current: null,
  sort: "name",
  order: "asc",
  loaded: false,
  fetchedAt: 0, // performance.now() when the list shown was asked for
};
const listeners = new Set();
let refreshSeq = 0;
let latest = Promise.resolve(); // the newest refresh: an older one that lost the race waits for it
let pendingSelect; // {name} asked of a refresh that has not landed yet

function snapshot() {
  return {
    models: state.models,
    current: state.current,
    currentModel: find(state.current),
    sort: state.sort,
    order: state.order,
    fetchedAt: state.fetchedAt,
  };
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

function find(name) {
  return name == null ? null : state.models.find((m) => m.model_name === name) || null;
}

/** Call fn(state) now (if loaded) and on every change; returns an unsubscribe function. */
export function subscribe(fn) {
  listeners.add(fn);
  if (state.loaded) fn(snapshot());
  return () => listeners.delete(fn);
}

export function current() {
  return state.current;
}

export function currentModel() {
  return find(state.current);
}

export function models() {
  return state.models;
}

export function getState() {
  return snapshot();
}

async function persist(name) {
  try {
    await api.put("/api/settings", { selected_model: name });
  } catch (err) {
    toastError(err);
    if (err.code === "model_not_found") await refresh();
  }
}

/** Fetch the list (in the Models table's sort order) and tell everyone.
 * `select`: a name to make current (e.g. a model just created, renamed or restored). A refresh
 * overtaken by a newer one (a change announced meanwhile) hands its `select` on to that one
 * and resolves when that one has landed. */
export function refresh({ select } = {}) {
  if (select !== undefined) pendingSelect = { name: select };
  const mine = ++refreshSeq;
  latest = load(mine);
  return latest;
}

async function load(mine) {
  const askedAt = performance.now();
  const { models } = await api.get(`/api/models${api.query({ sort: state.sort, order: state.order })}`);
  if (mine !== refreshSeq) return latest;
  state.models = models;
  state.loaded = true;
  state.fetchedAt = askedAt;
  const chosen = pendingSelect;
  pendingSelect = undefined;
  if (chosen) {
    state.current = find(chosen.name) ? chosen.name : null;
    emit();
    await persist(state.current);
    return;
  }
  if (state.current !== null && !find(state.current)) {
    // Renamed or deleted elsewhere: the server follows the model by id, so ask it.
    const settings = await api.get("/api/settings");
    if (mine !== refreshSeq) return latest;
    state.current = find(settings.selected_model) ? settings.selected_model : null;
  }
  emit();
}

/** Make `name` the current model everywhere (null clears the selection). */
export async function select(name) {
  const value = name || null;
  if (value === state.current) return;
  state.current = value;
  emit();
  await persist(value);
}

/** Change the list order (the Models table's sortable columns). */
export async function setSort(sort, order) {
  state.sort = sort;
  state.order = order;
  await refresh();
}

/** First load: the saved selection, then the list. With nothing saved, the first model is chosen. */
export async function init() {
  events.onChange(["models", "queue", "jobs"], () => refresh());
  const settings = await api.get("/api/settings");
  state.current = settings.selected_model ?? null;
  await refresh();
  if (state.current === null && state.models.length) {
    const first = [...state.models].sort(byName)[0];
    await select(first.model_name);
  }
}

/** Compare two models by name the way a person reads a list. */
export function byName(a, b) {
  return a.model_name.localeCompare(b.model_name, undefined, { sensitivity: "base", numeric: true });
}
