// The Crawler tab: gather web pages into the selected model's training-data queue.
//
// A form starts a crawl (start URLs, same site or listed domains, limits, rate, user agent,
// continuous mode); the crawl card shows the model's newest crawl (or a past one picked from
// the list) with Pause / Stop / Resume, live counts, and its most recent URLs with their
// outcome and reason. The crawl under way (else the newest) is the window's store's (store.js), which the change
// feed keeps true wherever the crawl was started (the CLI's `cllm crawl` too); the past crawls
// and the recent URLs, which no event carries, are fetched when a crawl change concerns the
// model. Nothing here polls.

import * as api from "../api.js";
import * as events from "../events.js";
import * as selection from "../selection.js";
import * as store from "../store.js";
import { mountModelSelect } from "../components/model-select.js";
import { renderSummary } from "../components/model-summary.js";
import { STATES as JOB_STATES, progressBar } from "../components/job-progress.js";
import { errorText, fill, formatAgo, formatInt, h, sentence, toast, toastError } from "../ui.js";

const LIVE = ["queued", "running", "pausing", "stopping"];
const STATES = {
  ...JOB_STATES,
  running: { label: "Crawling", tone: "accent" },
  pausing: { label: "Pausing", tone: "warn" },
};
const OUTCOME_TONES = {
  fetched: "ok", duplicate: "muted", disallowed: "muted", off_site: "muted", too_big: "muted",
  wrong_type: "muted", no_text: "muted", http_error: "danger", timeout: "danger",
  redirect_error: "danger", network_error: "danger",
};
const FIELDS = [
  { field: "max_depth", help: "links to follow from a start URL", value: 2, step: "1", min: "0", max: "100" },
  { field: "max_pages", help: "pages to request at most", value: 100, step: "1", min: "1" },
  { field: "max_page_bytes", help: "largest page, in bytes", value: 2097152, step: "1024", min: "1024" },
  { field: "rate", help: "requests per second per site; 0 = no limit", value: 1, step: "any", min: "0", max: "100" },
  { field: "timeout", help: "seconds to wait for a server", value: 15, step: "any", min: "0.1" },
  { field: "train_after_tokens", help: "continuous mode: queue training past this many untrained tokens; 0 = off", value: 0, step: "1", min: "0" },
];
const COUNTS = ["queued", "fetched", "skipped", "failed", "tokens"];
const URL_ROWS = 30;

let els = {};
let panel;
let modelName = null;
let modelId = null;
let picked = null; // a past crawl the person chose to look at; else the card shows the newest
let urlsFor = null; // the crawl whose recent URLs the table was asked for
let newestId = null;
let seq = 0;
let openTabFn = () => {};

/** The crawl the card shows. */
function shownCrawl() {
  const newest = modelId != null ? store.crawlOf(modelId) : null;
  if (picked && (!newest || picked.id !== newest.id)) return picked;
  return newest;
}

export function mount(root, { openTab }) {
  panel = root;
  openTabFn = openTab;
  const head = h("div", { class: "panel-head" },
    h("div", { class: "panel-title" },
      h("h2", {}, "Crawler"),
      h("p", { class: "muted" }, "Gather web pages as training text for the selected model."),
    ),
  );
  mountModelSelect(head);

  els.form = buildForm();
  const formCard = h("section", { class: "card", "aria-labelledby": "crawl-new-title" },
    h("div", { class: "card-head" }, h("h3", { id: "crawl-new-title" }, "New crawl"),
      h("span", { class: "muted small" }, "robots.txt is obeyed; only HTML and plain text are kept")),
    els.form);

  els.pause = h("button", { type: "button", class: "btn", dataset: { testid: "crawl-pause" }, onclick: () => act("pause") }, "Pause");
  els.stop = h("button", { type: "button", class: "btn btn-danger-quiet", dataset: { testid: "crawl-stop" }, onclick: () => act("stop") }, "Stop");
  els.resume = h("button", { type: "button", class: "btn btn-primary", dataset: { testid: "crawl-resume" }, onclick: () => act("resume") }, "Resume");
  els.status = h("div", { class: "crawl-status", dataset: { testid: "crawl-status" } });
  els.urls = h("div", { class: "table-scroll" });
  const crawlCard = h("section", { class: "card", "aria-labelledby": "crawl-title", dataset: { testid: "crawl-card" } },
    h("div", { class: "card-head" }, h("h3", { id: "crawl-title" }, "Crawl"),
      h("div", { class: "run-buttons push-right" }, els.pause, els.stop, els.resume)),
    els.status,
    h("h4", { class: "small muted" }, "Recent URLs"),
    els.urls,
  );

  els.info = h("div", { class: "summary-wrap" });
  els.history = h("div", { dataset: { testid: "crawl-history" } });
  fill(panel,
    head,
    h("div", { class: "tab-grid" },
      h("div", { class: "tab-main" }, crawlCard, formCard),
      h("div", { class: "tab-side" },
        h("section", { class: "card", "aria-labelledby": "crawler-model-title" },
          h("div", { class: "card-head" }, h("h3", { id: "crawler-model-title" }, "Selected model")), els.info),
        h("section", { class: "card", "aria-labelledby": "crawler-history-title" },
          h("div", { class: "card-head" }, h("h3", { id: "crawler-history-title" }, "Past crawls")), els.history),
      ),
    ),
  );
  render();
  selection.subscribe(onSelection);
  store.subscribe((what) => {
    if (!what.all && !what.crawls) return;
    render();
    // The model's crawl arrived (or another one started): its URLs too.
    if (modelName && (shownCrawl()?.id ?? null) !== urlsFor) loadLists();
  });
  // Each page the crawl takes is its job's progress: the recent URLs follow it.
  events.onChange(["crawls", "progress"], (changes) => (modelName && changes.concerns(modelId) ? loadLists() : null));
}

/** The app shows this tab. (Everything it shows is kept true while it is hidden.) */
export function shown() {}

// ---- the form ------------------------------------------------------------------------------

function field(id, label, input, help) {
  return h("div", { class: "field" },
    h("label", { for: id, class: "field-label mono" }, label), input,
    help ? h("span", { class: "field-help" }, help) : null);
}

function buildForm() {
  els.inputs = {};
  els.startUrls = h("textarea", {
    id: "crawl-start_urls", class: "input", rows: 3, name: "start_urls", spellcheck: false,
    placeholder: "https://example.org/\nhttps://example.org/blog/", dataset: { testid: "crawl-start-urls" },
  });
  els.startUrls.addEventListener("input", () => els.startUrls.removeAttribute("aria-invalid"));
  els.sameSite = h("input", { type: "radio", name: "crawl-scope", value: "same", checked: true, dataset: { testid: "crawl-scope-same" }, onchange: syncScope });
  els.listed = h("input", { type: "radio", name: "crawl-scope", value: "domains", dataset: { testid: "crawl-scope-domains" }, onchange: syncScope });
  els.domains = h("input", {
    id: "crawl-allowed_domains", class: "input", type: "text", placeholder: "example.org, docs.example.org",
    disabled: true, dataset: { testid: "crawl-domains" },
  });
  els.userAgent = h("input", { id: "crawl-user_agent", class: "input", type: "text", dataset: { testid: "crawl-user_agent" } });
  const numbers = FIELDS.map(({ field: name, help, value, step, min, max }) => {
    const id = `crawl-${name}`;
    const input = h("input", { id, class: "input input-num", type: "number", name, step, min, max, value: String(value), dataset: { testid: id } });
    input.addEventListener("input", () => input.removeAttribute("aria-invalid"));
    els.inputs[name] = input;
    return field(id, name, input, help);
  });
  els.start = h("button", { type: "submit", class: "btn btn-primary", dataset: { testid: "crawl-start" } }, "Start crawl");
  els.error = h("p", { class: "form-error", role: "alert", dataset: { testid: "crawl-error" } });
  return h("form", { class: "training-form", novalidate: true, onsubmit: start, dataset: { testid: "crawl-form" } },
    field("crawl-start_urls", "start_urls", els.startUrls, "one URL per line"),
    h("fieldset", { class: "field crawl-scope" },
      h("legend", { class: "field-label" }, "Scope"),
      h("label", {}, els.sameSite, " the start URLs' own sites"),
      h("label", {}, els.listed, " these domains and their subdomains:"),
      els.domains),
    h("div", { class: "settings-grid" }, numbers,
      field("crawl-user_agent", "user_agent", els.userAgent, "sent with every request; empty = CLLM Studio's")),
    h("div", { class: "form-actions" }, els.start),
    els.error,
  );
}

function syncScope() {
  els.domains.disabled = !els.listed.checked;
  if (els.listed.checked) els.domains.focus();
}

/** The request body from the form, or a message saying which field is wrong. */
function formBody() {
  const urls = els.startUrls.value.split(/\s+/).filter(Boolean);
  if (!urls.length) return { problem: "Give at least one start URL.", input: els.startUrls };
  const body = { start_urls: urls };
  for (const [name, input] of Object.entries(els.inputs)) {
    const text = input.value.trim();
    if (text === "" || Number.isNaN(Number(text))) return { problem: `${name} needs a number.`, input };
    body[name] = Number(text);
  }
  if (els.listed.checked) {
    body.allowed_domains = els.domains.value.split(/[\s,]+/).filter(Boolean);
    if (!body.allowed_domains.length) return { problem: "List at least one domain, or crawl the start URLs' own sites.", input: els.domains };
  }
  if (els.userAgent.value.trim()) body.user_agent = els.userAgent.value.trim();
  return { body };
}

async function start(event) {
  event.preventDefault();
  if (!modelName) return;
  els.error.textContent = "";
  for (const el of els.form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  const { body, problem, input } = formBody();
  if (problem) {
    els.error.textContent = problem;
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  els.start.disabled = true;
  try {
    const started = await api.post(`/api/models/${api.seg(modelName)}/crawls`, body);
    picked = null;
    store.accept({ crawl: started });
    toast(`Started crawl #${started.id} for ${modelName}`, { kind: "ok" });
    await loadLists();
  } catch (err) {
    els.error.textContent = errorText(err);
    const name = err.code?.startsWith("invalid_") ? err.code.slice("invalid_".length) : null;
    const bad = name === "start_urls" ? els.startUrls : name === "allowed_domains" ? els.domains : name === "user_agent" ? els.userAgent : els.inputs[name];
    if (bad) {
      bad.setAttribute("aria-invalid", "true");
      bad.focus();
    }
  } finally {
    renderControls();
  }
}

// ---- the model, its crawls -----------------------------------------------------------------

function onSelection({ currentModel }) {
  renderSummary(els.info, currentModel, { openModels: () => openTabFn("models") });
  const id = currentModel ? currentModel.id : null;
  modelName = currentModel ? currentModel.model_name : null;
  if (id !== modelId) {
    modelId = id;
    picked = null;
    pastCrawls = null;
    els.error.textContent = "";
    fill(els.urls);
    render();
    if (id != null) store.needCrawl(id).catch(toastError);
    loadLists();
  }
  renderControls();
}

/** What no event carries: the model's past crawls, and the shown crawl's recent URLs. */
async function loadLists() {
  const mine = ++seq;
  if (!modelName) {
    fill(els.history, h("p", { class: "empty" }, "Select a model to see its crawls."));
    return;
  }
  try {
    const { crawls } = await api.get(`/api/models/${api.seg(modelName)}/crawls`);
    if (mine !== seq) return;
    renderHistory(crawls);
    const c = shownCrawl();
    urlsFor = c ? c.id : null;
    if (!c) {
      fill(els.urls);
      return;
    }
    const { urls } = await api.get(`/api/crawls/${c.id}/urls${api.query({ limit: URL_ROWS })}`);
    if (mine === seq && shownCrawl()?.id === c.id) renderUrls(urls);
  } catch (err) {
    if (mine === seq && err.code !== "model_not_found") toastError(err);
  }
}

let pastCrawls = null; // the last list fetched, drawn again when the shown crawl changes

function renderHistory(crawls = pastCrawls) {
  if (crawls === null) return;
  pastCrawls = crawls;
  newestId = crawls.length ? crawls[0].id : null;
  if (!crawls.length) {
    fill(els.history, h("p", { class: "empty", dataset: { testid: "crawl-history-empty" } }, "No crawls yet."));
    return;
  }
  const current = shownCrawl();
  fill(els.history, h("ul", { class: "jobs-list" }, crawls.map((c) => h("li", {
    class: `jobs-item${current && current.id === c.id ? " is-current" : ""}`, dataset: { crawlId: String(c.id), testid: "crawl-history-item" },
  },
    h("div", { class: "jobs-item-head" },
      h("button", { type: "button", class: "link jobs-model", title: "Show this crawl", onclick: () => show(c) }, `Crawl #${c.id}`),
      badge(c.state),
    ),
    h("p", { class: "muted small" }, `${c.settings.start_urls[0]}${c.settings.start_urls.length > 1 ? ` +${c.settings.start_urls.length - 1}` : ""}`),
    h("p", { class: "muted small" }, `${formatInt(c.fetched)} fetched · ${formatInt(c.tokens)} tokens · ${formatAgo(c.created_at)}`),
  ))));
}

function show(c) {
  picked = c.id !== newestId ? c : null;
  render();
  loadLists();
}

// ---- the crawl card ------------------------------------------------------------------------

function badge(state) {
  const spec = STATES[state] || { label: state, tone: "muted" };
  return h("span", { class: `badge badge-${spec.tone}`, dataset: { state, testid: "crawl-state" } }, spec.label);
}

function render() {
  renderStatus();
  renderControls();
  renderHistory();
}

function renderStatus() {
  const c = shownCrawl();
  if (!c) {
    fill(els.status, h("p", { class: "empty", dataset: { testid: "crawl-none" } },
      modelName ? "No crawl yet. Give start URLs below and press Start crawl." : "Select a model to crawl for it."));
    fill(els.urls);
    els.status.dataset.state = "";
    return;
  }
  const s = c.settings;
  els.status.dataset.state = c.state;
  els.status.dataset.crawlId = String(c.id);
  // A crawl that ran out of links before max_pages is done all the same: its bar is full.
  const fraction = c.state === "done" ? 1 : Math.min(1, c.requested / s.max_pages);
  const pages = c.state === "done" && c.requested < s.max_pages
    ? `${formatInt(c.requested)} ${c.requested === 1 ? "page" : "pages"} (of at most ${formatInt(s.max_pages)})`
    : `${formatInt(c.requested)} / ${formatInt(s.max_pages)} pages`;
  fill(els.status,
    h("div", { class: "run-status" }, badge(c.state),
      h("span", { class: "muted small" }, `Crawl #${c.id} · started ${formatAgo(c.created_at)}`),
      h("span", { class: "push-right mono small", dataset: { testid: "crawl-pages" } }, pages)),
    progressBar(fraction, { label: "Crawl progress" }),
    h("dl", { class: "run-stats" }, COUNTS.map((k) => h("div", { class: "run-stat" },
      h("dt", {}, k === "tokens" ? "Tokens added" : sentence(k)),
      h("dd", { dataset: { testid: `crawl-count-${k}` } }, formatInt(c[k]))))),
    h("p", { class: "muted small" },
      `${s.allowed_domains.length ? `Domains: ${s.allowed_domains.join(", ")}` : "Same site"} · depth ${s.max_depth} · `,
      `${s.rate ? `${s.rate} requests/s per site` : "no rate limit"}`,
      s.train_after_tokens ? ` · trains past ${formatInt(s.train_after_tokens)} untrained tokens (${c.trainings_queued} queued)` : ""),
    c.message ? h("p", { class: "job-message small muted", dataset: { testid: "crawl-message" } }, sentence(c.message)) : null,
  );
}

function renderUrls(urls) {
  if (!urls.length) {
    fill(els.urls, h("p", { class: "empty" }, "No URL has been fetched yet."));
    return;
  }
  fill(els.urls, h("table", { class: "table", dataset: { testid: "crawl-urls-table" } },
    h("thead", {}, h("tr", {}, h("th", {}, "URL"), h("th", {}, "Outcome"), h("th", {}, "Reason"), h("th", { class: "num" }, "Tokens"))),
    h("tbody", {}, urls.map((u) => h("tr", { dataset: { outcome: u.outcome || "", url: u.url } },
      h("td", { class: "path", title: u.final_url && u.final_url !== u.url ? `${u.url} → ${u.final_url}` : u.url }, u.title ? `${u.title} — ${u.url}` : u.url),
      h("td", {}, h("span", { class: `badge badge-${OUTCOME_TONES[u.outcome] || "muted"}` }, (u.outcome || "").replace("_", " "))),
      h("td", { class: "small" }, u.reason || ""),
      h("td", { class: "num" }, u.token_count ? formatInt(u.token_count) : "–"),
    ))),
  ));
}

function renderControls() {
  const crawl = shownCrawl();
  const live = Boolean(crawl && LIVE.includes(crawl.state));
  els.start.disabled = !modelName || live;
  els.pause.disabled = !crawl || !["queued", "running"].includes(crawl.state);
  els.stop.disabled = !crawl || !["queued", "running", "pausing", "paused", "interrupted"].includes(crawl.state);
  els.resume.disabled = !crawl || !crawl.resumable;
}

async function act(action) {
  const crawl = shownCrawl();
  if (!crawl) return;
  const id = crawl.id;
  try {
    const answer = await api.post(`/api/crawls/${id}/${action}`, {});
    if (picked && picked.id === answer.id && action !== "resume") picked = answer;
    else picked = null;
    store.accept({ crawl: answer });
    render();
    if (action === "resume") toast(`Resumed crawl #${id}`, { kind: "ok" });
  } catch (err) {
    toastError(err);
  }
}
