// The window's one picture of every model, its jobs and its newest crawl. It is filled from the
// API once (and again only when the feed says changes were missed), then kept true by the change
// feed alone: each change carries the state now of the models, jobs and crawls it touched
// (services/changes.py). Every tab renders from here, so a number shown in two places is the
// same number, and nothing in a tab keeps a copy of its own.
//
// What is too large to carry in an event (loss points, queue items, a crawl's URLs) is asked
// of the API by the view that shows it, when a change of its topic concerns its model
// (events.onChange).

import * as api from "./api.js";
import * as events from "./events.js";

const models = new Map(); // id -> the model as GET /api/models lists it
const jobs = new Map(); // id -> job: every active job, and each model's newest of each kind
const crawls = new Map(); // model id -> its crawl under way, else its newest
const seen = new Map(); // "model:1", "job:2", "crawl:1" -> the feed id that last set it
const listeners = new Set();
const ACTIVE_JOB_STATES = ["queued", "running", "stopping", "paused"];
const LIVE_CRAWL_STATES = ["queued", "running", "pausing", "stopping"];
let loaded = false;
let lastEventId = 0; // the newest change applied
let pending = null; // a load in flight
const jobsAsked = new Set(); // models whose jobs were fetched (or are being)
const crawlsAsked = new Set();

/** Call fn(what) after every change applied (and once now, if loaded); returns unsubscribe.
 * `what`: {models: Set of ids, jobs: bool, crawls: bool, all: bool}. */
export function subscribe(fn) {
  listeners.add(fn);
  if (loaded) fn({ all: true, models: new Set(), jobs: true, crawls: true });
  return () => listeners.delete(fn);
}

function emit(what) {
  for (const fn of listeners) {
    try {
      fn(what);
    } catch (err) {
      console.error("a store listener failed", err);
    }
  }
}

export const isLoaded = () => loaded;
export const model = (id) => models.get(id) || null;
export const allModels = () => [...models.values()];
export function byName(name) {
  if (name == null) return null;
  for (const m of models.values()) if (m.model_name === name) return m;
  return null;
}

/** The model's jobs, newest first (active ones and the newest of each kind). */
export function jobsOf(modelId) {
  return [...jobs.values()].filter((j) => j.model_id === modelId).sort((a, b) => b.id - a.id);
}

export function latestJob(modelId, kind) {
  return jobsOf(modelId).find((j) => j.kind === kind) || null;
}

export function activeJobs() {
  return [...jobs.values()].filter((j) => ACTIVE_JOB_STATES.includes(j.state)).sort((a, b) => a.id - b.id);
}

export const crawlOf = (modelId) => crawls.get(modelId) || null;

const FINAL_JOB_STATES = ["done", "failed", "stopped", "interrupted", "cancelled"];

/** Resolves with the job once it has ended, calling onProgress(job) with each state before;
 * `stillWanted()` false resolves null (the view moved on). The feed brings every change. */
export function untilEnded(started, { onProgress = () => {}, stillWanted = () => true } = {}) {
  accept({ job: started });
  return new Promise((resolve) => {
    let off = null;
    let finished = false;
    const finish = (value) => {
      finished = true;
      resolve(value);
      if (off) off();
    };
    const look = () => {
      if (finished) return;
      const current = jobs.get(started.id) || started;
      if (!stillWanted()) finish(null);
      else if (FINAL_JOB_STATES.includes(current.state)) finish(current);
      else onProgress(current);
    };
    off = subscribe(look);
    if (finished) off();
  });
}

// ---- applying what the server says ----------------------------------------------------------

/** Take a value unless the feed has told something newer since `asOf` (the feed id when the
 * answer carrying it was asked for). */
function take(key, asOf) {
  if ((seen.get(key) ?? -1) > asOf) return false;
  seen.set(key, asOf);
  return true;
}

function putModel(m, asOf) {
  if (!take(`model:${m.id}`, asOf)) return false;
  if (m.deleted) {
    models.delete(m.id);
    for (const [id, j] of jobs) if (j.model_id === m.id) jobs.delete(id);
    crawls.delete(m.id);
  } else {
    models.set(m.id, m);
    for (const j of jobs.values()) if (j.model_id === m.id) j.model_name = m.model_name;
  }
  return true;
}

function putJob(j, asOf) {
  if (!take(`job:${j.id}`, asOf)) return false;
  jobs.set(j.id, j);
  // Older finished jobs of the same model and kind are no longer "the newest": forget them.
  for (const [id, other] of jobs) {
    if (other.model_id === j.model_id && other.kind === j.kind && other.id < j.id
        && !ACTIVE_JOB_STATES.includes(other.state)) jobs.delete(id);
  }
  return true;
}

function putCrawl(c, asOf) {
  if (!take(`crawl:${c.model_id}`, asOf)) return false;
  crawls.set(c.model_id, c);
  return true;
}

/** An answer of the API about models (a create, a rename, a settings change): shown at once,
 * and the feed's event for the same change follows. */
export function accept({ model: m, job, crawl } = {}) {
  const what = { models: new Set(), jobs: false, crawls: false, all: false };
  if (m) {
    const { lineage, ...summary } = m; // a details answer: the store keeps the listing's fields
    if (putModel(summary, lastEventId)) what.models.add(m.id);
  }
  if (job && putJob(job, lastEventId)) what.jobs = true;
  if (crawl && putCrawl(crawl, lastEventId)) what.crawls = true;
  if (what.models.size || what.jobs || what.crawls) emit(what);
}

function onEvent(event) {
  lastEventId = Math.max(lastEventId, event.id);
  const what = { models: new Set(), jobs: false, crawls: false, all: false };
  if (event.incomplete) {
    load();
    return;
  }
  for (const m of event.models || []) if (putModel(m, event.id)) what.models.add(m.id);
  for (const j of event.jobs || []) if (putJob(j, event.id)) what.jobs = true;
  for (const c of event.crawls || []) if (putCrawl(c, event.id)) what.crawls = true;
  if (what.models.size || what.jobs || what.crawls) emit(what);
}

// ---- loading --------------------------------------------------------------------------------

/** Everything again: the models and every active job (a model's older jobs and its crawls are
 * asked for when a tab first shows them). */
export function load() {
  if (pending) return pending;
  pending = (async () => {
    const asOf = lastEventId;
    try {
      const [{ models: listed }, { jobs: active }] = await Promise.all([
        api.get("/api/models"),
        api.get(`/api/jobs${api.query({ active: 1 })}`),
      ]);
      const ids = new Set(listed.map((m) => m.id));
      for (const id of [...models.keys()]) if (!ids.has(id)) putModel({ id, deleted: true }, asOf);
      for (const m of listed) putModel(m, asOf);
      for (const j of active) putJob(j, asOf);
      jobsAsked.clear();
      crawlsAsked.clear();
      loaded = true;
      emit({ all: true, models: new Set(ids), jobs: true, crawls: true });
    } finally {
      pending = null;
    }
  })();
  return pending;
}

/** Ask the API once per model (again after a failure) for what no event has brought yet. */
async function askOnce(asked, modelId, fetch) {
  const m = models.get(modelId);
  if (!m || asked.has(modelId)) return;
  asked.add(modelId);
  try {
    await fetch(m, lastEventId);
  } catch (err) {
    asked.delete(modelId);
    if (err.code !== "model_not_found") throw err;
  }
}

/** Make sure the model's newest jobs are here (a tab shows its last run). */
export function needJobs(modelId) {
  return askOnce(jobsAsked, modelId, async (m, asOf) => {
    const { jobs: list } = await api.get(`/api/jobs${api.query({ model_name: m.model_name })}`);
    let changed = false;
    const kinds = new Set();
    for (const j of list) {
      if (ACTIVE_JOB_STATES.includes(j.state) || !kinds.has(j.kind)) {
        kinds.add(j.kind);
        changed = putJob(j, asOf) || changed;
      }
    }
    if (changed) emit({ models: new Set(), jobs: true, crawls: false, all: false });
  });
}

/** Make sure the model's crawl is here (the Crawler tab shows it): the one under way, else the newest. */
export function needCrawl(modelId) {
  return askOnce(crawlsAsked, modelId, async (m, asOf) => {
    const { crawls: list } = await api.get(`/api/models/${api.seg(m.model_name)}/crawls`);
    const shown = list.find((c) => LIVE_CRAWL_STATES.includes(c.state)) || list[0];
    if (shown && putCrawl(shown, asOf)) emit({ models: new Set(), jobs: false, crawls: true, all: false });
  });
}

/** Boot: follow the feed, then load. A feed that had to start over (changes missed) loads again. */
export async function init() {
  events.onEvent(onEvent);
  events.onMissed(() => load().catch((err) => console.warn("reloading the models failed", err)));
  await load();
}
