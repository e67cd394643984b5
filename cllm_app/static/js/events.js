// The window's one line to the server's change feed (GET /api/events): every change to the
// store, made by this window, another one, the CLI or a background job, arrives here as a
// `change` event naming its topics (models, queue, jobs, progress, history, crawls, store) and
// carrying the state now of the models, jobs and crawls it touched, which store.js takes first
// (onEvent). Views that show what no event carries (loss points, queue items, conversations)
// subscribe with onChange(topics, refetch) and fetch it again: a burst of changes is coalesced into one call DEBOUNCE_MS after its first change (and
// at least MIN_GAP_MS after the previous call), and a change during a call brings one more call
// after it, so a view always ends on the last state.
// When the server could not say what was missed (it restarted, or too much happened while
// this window was away), every subscriber is called. <body data-events="open|connecting|closed">
// tells tests whether the line is up.

import * as api from "./api.js";

const DEBOUNCE_MS = 100;
const MIN_GAP_MS = 300; // between the end of one call and the next: an ingest of many files commits all the time
const FIRST_READY_MS = 3000; // boot waits at most this long for the feed before loading anyway

const subscribers = new Set();
const eventHooks = new Set(); // fn(event) for every change, at once (store.js)
const missedHooks = new Set(); // fn() when the feed had to start over
let source = null;
let readyOnce = false;
let firstReady = null;

function setState(state) {
  document.body.dataset.events = state;
}

/** `event`: {topics, model_ids} of a change, or null for "anything may have changed". */
function deliver(event) {
  for (const sub of subscribers) {
    if (event !== null && !sub.topics.some((t) => event.topics.includes(t))) continue;
    // The models concerned, gathered until the call: null when one change did not say.
    if (event === null || !event.model_ids?.length) sub.models = null;
    else if (sub.models !== null) for (const id of event.model_ids) sub.models.add(id);
    schedule(sub);
  }
}

function schedule(sub) {
  if (sub.running) {
    sub.again = true;
  } else if (!sub.timer) {
    const wait = Math.max(DEBOUNCE_MS, MIN_GAP_MS - (performance.now() - sub.endedAt));
    sub.timer = setTimeout(() => run(sub), wait);
  }
}

async function run(sub) {
  sub.timer = null;
  sub.running = true;
  const models = sub.models;
  sub.models = new Set();
  try {
    await sub.fn({ concerns: (id) => models === null || models.has(id) });
  } catch (err) {
    console.warn("refreshing after a change failed", err);
  } finally {
    sub.running = false;
    sub.endedAt = performance.now();
    if (sub.again) {
      sub.again = false;
      schedule(sub);
    }
  }
}

/**
 * Open the feed (once). Resolves when it is up (or after FIRST_READY_MS), so what the views
 * load next is never older than the first change they will hear of.
 */
export function start() {
  if (source) return firstReady;
  let resolveFirst;
  firstReady = new Promise((resolve) => {
    resolveFirst = resolve;
    setTimeout(resolve, FIRST_READY_MS);
  });
  setState("connecting");
  source = api.eventSource("/api/events");
  source.addEventListener("ready", (e) => {
    setState("open");
    const { resumed } = JSON.parse(e.data);
    // The first `ready` is the baseline the views load from; a later one that could not
    // resume means changes may have been missed.
    if (readyOnce && !resumed) {
      for (const fn of missedHooks) fn();
      deliver(null);
    }
    readyOnce = true;
    resolveFirst();
  });
  source.addEventListener("change", (e) => {
    const event = JSON.parse(e.data);
    for (const fn of eventHooks) fn(event); // the store first, so views called next see it
    deliver(event);
  });
  source.addEventListener("error", () => {
    // CLOSED: refused (no or a wrong token), so it will not retry; the first loads show why.
    setState(source.readyState === EventSource.CLOSED ? "closed" : "connecting");
    if (source.readyState === EventSource.CLOSED) resolveFirst();
  });
  return firstReady;
}

/**
 * Call fn(changes) (it may be async) after changes of any of `topics`; `changes.concerns(id)`
 * tells whether they may concern the model of that id. Returns an unsubscribe function.
 */
export function onChange(topics, fn) {
  const sub = { topics: [...topics], fn, timer: null, running: false, again: false, models: new Set(), endedAt: -Infinity };
  subscribers.add(sub);
  return () => {
    clearTimeout(sub.timer);
    subscribers.delete(sub);
  };
}

/** Call fn(event) with every change as it arrives, before any onChange subscriber (store.js). */
export function onEvent(fn) {
  eventHooks.add(fn);
  return () => eventHooks.delete(fn);
}

/** Call fn() when the feed reconnected without being able to say what was missed. */
export function onMissed(fn) {
  missedHooks.add(fn);
  return () => missedHooks.delete(fn);
}
