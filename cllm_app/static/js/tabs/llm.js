// The LLM tab: talk to the selected model (Chat, with conversations kept per model) or let it
// continue a prompt (Completion). Replies stream in token by token (server-sent events read by
// api.stream); Stop asks the server to end the stream (POST /api/streams/stop), which then
// sends its final stats, and a chat reply stopped part way is kept. Sampling settings, with
// named presets, are remembered per model. A model that is training answers from its latest
// checkpoint.
//
// The side also shows how other programs reach the models: the OpenAI-compatible API's base URL
// and key (GET /api/openai/key), to copy, and Regenerate (POST /api/openai/key/regenerate),
// after which the old key opens nothing. The tab itself never calls /v1/.

import * as api from "../api.js";
import * as selection from "../selection.js";
import { mountModelSelect } from "../components/model-select.js";
import { renderSummary } from "../components/model-summary.js";
import { createSamplingControls } from "../components/sampling-controls.js";
import { confirmDialog, copyText, errorText, fill, formatAgo, formatInt, h, promptDialog, toast, toastError } from "../ui.js";

const MODE_KEY = "cllm-llm-mode";

let els = {};
let sampling;
let model = null; // the selected model (from selection.js)
let mode = "chat";
let conversations = [];
let conversation = null; // the open conversation, with its messages
let seq = 0;
// The stream in progress: {kind: "chat"|"completion", streamId, controller, stopping}
let running = null;

export function mount(panel, { openTab }) {
  const head = h("div", { class: "panel-head" },
    h("div", { class: "panel-title" },
      h("h2", {}, "LLM"),
      h("p", { class: "muted" }, "Talk to the selected model, or let it continue a text."),
    ),
  );
  mountModelSelect(head);

  els.modeChat = h("button", { type: "button", class: "segment", dataset: { testid: "llm-mode-chat" }, onclick: () => setMode("chat") }, "Chat");
  els.modeCompletion = h("button", { type: "button", class: "segment", dataset: { testid: "llm-mode-completion" }, onclick: () => setMode("completion") }, "Completion");
  els.note = h("p", { class: "llm-note", dataset: { testid: "llm-note" }, hidden: true });

  // chat: conversation list beside the messages
  els.convList = h("ul", { class: "conv-list", dataset: { testid: "conversation-list" } });
  els.newConv = h("button", { type: "button", class: "btn btn-small", dataset: { testid: "conversation-new" }, onclick: newConversation }, "New");
  els.messages = h("div", { class: "chat-messages", dataset: { testid: "chat-messages" }, "aria-live": "polite" });
  els.chatTitle = h("h3", { class: "chat-title", dataset: { testid: "chat-title" } }, "");
  els.input = h("textarea", {
    class: "input chat-input", rows: 3, placeholder: "Write a message… (Enter sends, Shift+Enter for a new line)",
    dataset: { testid: "chat-input" }, "aria-label": "Message",
  });
  els.input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  els.send = h("button", { type: "button", class: "btn btn-primary", dataset: { testid: "chat-send" }, onclick: send }, "Send");
  els.chatStop = h("button", { type: "button", class: "btn btn-danger-quiet", dataset: { testid: "chat-stop" }, onclick: stop }, "Stop");
  els.regenerate = h("button", { type: "button", class: "btn", dataset: { testid: "chat-regenerate" }, onclick: regenerate }, "Regenerate");
  els.chatError = h("p", { class: "form-error", role: "alert", dataset: { testid: "chat-error" } });
  els.chatView = h("div", { class: "llm-chat", dataset: { testid: "chat-view" } },
    h("aside", { class: "conv-side" },
      h("div", { class: "card-head" }, h("h3", {}, "Conversations"), h("span", { class: "push-right" }, els.newConv)),
      els.convList),
    h("div", { class: "chat-main" },
      els.chatTitle,
      els.messages,
      els.chatError,
      els.input,
      h("div", { class: "llm-buttons" }, els.send, els.chatStop, els.regenerate),
    ),
  );

  // completion
  els.prompt = h("textarea", { class: "input completion-prompt", rows: 5, placeholder: "A prompt for the model to continue…", dataset: { testid: "completion-prompt" }, "aria-label": "Prompt" });
  els.generate = h("button", { type: "button", class: "btn btn-primary", dataset: { testid: "completion-generate" }, onclick: complete }, "Generate");
  els.completionStop = h("button", { type: "button", class: "btn btn-danger-quiet", dataset: { testid: "completion-stop" }, onclick: stop }, "Stop");
  els.completionCopy = h("button", { type: "button", class: "btn", dataset: { testid: "completion-copy" }, onclick: () => copyText(els.output.textContent) }, "Copy");
  els.output = h("pre", { class: "completion-output", dataset: { testid: "completion-output" } });
  els.completionError = h("p", { class: "form-error", role: "alert", dataset: { testid: "completion-error" } });
  els.completionView = h("div", { class: "llm-completion", dataset: { testid: "completion-view" } },
    els.prompt,
    h("div", { class: "llm-buttons" }, els.generate, els.completionStop, els.completionCopy),
    els.completionError,
    els.output,
  );

  els.stats = h("dl", { class: "summary llm-stats", dataset: { testid: "llm-stats" } });
  els.summary = h("div", { class: "summary-wrap" });
  const samplingCard = h("section", { class: "card", "aria-labelledby": "sampling-title" });
  sampling = createSamplingControls(samplingCard);

  fill(panel,
    head,
    h("div", { class: "tab-grid" },
      h("div", { class: "tab-main" },
        h("section", { class: "card llm-card" },
          h("div", { class: "card-head" }, h("div", { class: "segmented", role: "group", "aria-label": "View" }, els.modeChat, els.modeCompletion)),
          els.note,
          els.chatView,
          els.completionView,
        ),
      ),
      h("div", { class: "tab-side" },
        h("section", { class: "card", "aria-labelledby": "llm-stats-title" },
          h("div", { class: "card-head" }, h("h3", { id: "llm-stats-title" }, "Last reply")), els.stats),
        samplingCard,
        h("section", { class: "card", "aria-labelledby": "llm-model-title" },
          h("div", { class: "card-head" }, h("h3", { id: "llm-model-title" }, "Selected model")), els.summary),
        openAiCard(),
      ),
    ),
  );
  els.openModels = () => openTab("models");
  renderStats(null);
  setMode(sessionStorage.getItem(MODE_KEY) || "chat");
  selection.subscribe(onSelection);
}

// ---- the OpenAI-compatible API ------------------------------------------------------------

function openAiCard() {
  const field = (id, testid) => {
    const input = h("input", { id, class: "input mono", readOnly: true, spellcheck: false, dataset: { testid } });
    input.addEventListener("focus", () => input.select());
    return input;
  };
  els.apiBase = field("openai-base-url", "openai-base-url");
  els.apiKey = field("openai-key", "openai-key");
  els.apiError = h("p", { class: "form-error", role: "alert", dataset: { testid: "openai-error" } });
  const copyButton = (input, testid) =>
    h("button", { type: "button", class: "btn btn-small", dataset: { testid }, onclick: () => input.value && copyText(input.value) }, "Copy");
  els.apiRegenerate = h("button", {
    type: "button", class: "btn btn-small btn-danger-quiet", dataset: { testid: "openai-key-regenerate" }, onclick: regenerateKey,
  }, "Regenerate");
  const row = (label, input, ...buttons) => h("div", { class: "field" },
    h("label", { for: input.id, class: "field-label" }, label),
    input,
    h("div", { class: "llm-buttons" }, ...buttons),
  );
  loadKey();
  return h("section", { class: "card", "aria-labelledby": "openai-title", dataset: { testid: "openai-card" } },
    h("div", { class: "card-head" }, h("h3", { id: "openai-title" }, "OpenAI-compatible API")),
    h("p", { class: "muted small" },
      "Other programs can use your models through OpenAI's API: give them this base URL and key. "
      + "The key opens only that API, and is kept until you regenerate it."),
    row("Base URL", els.apiBase, copyButton(els.apiBase, "openai-base-url-copy")),
    row("API key", els.apiKey, copyButton(els.apiKey, "openai-key-copy"), els.apiRegenerate),
    els.apiError,
  );
}

function showKey(info) {
  els.apiBase.value = info.base_url;
  els.apiKey.value = info.api_key;
  els.apiError.textContent = "";
}

async function loadKey() {
  try {
    showKey(await api.get("/api/openai/key"));
  } catch (err) {
    els.apiError.textContent = errorText(err);
  }
}

async function regenerateKey() {
  const ok = await confirmDialog({
    title: "Make a new API key?",
    message: "Programs that use the current key stop working at once, until you give them the new one.",
    confirmLabel: "Regenerate", danger: true,
  });
  if (!ok) return;
  try {
    showKey(await api.post("/api/openai/key/regenerate"));
    toast("A new API key is in place; the old one no longer works", { kind: "ok" });
  } catch (err) {
    els.apiError.textContent = errorText(err);
  }
}

function setMode(next) {
  mode = next === "completion" ? "completion" : "chat";
  sessionStorage.setItem(MODE_KEY, mode);
  els.modeChat.setAttribute("aria-pressed", String(mode === "chat"));
  els.modeCompletion.setAttribute("aria-pressed", String(mode === "completion"));
  els.chatView.hidden = mode !== "chat";
  els.completionView.hidden = mode !== "completion";
}

// ---- selection ----------------------------------------------------------------------------

function onSelection({ currentModel }) {
  const previous = model;
  model = currentModel;
  renderNote();
  renderSummary(els.summary, model, { openModels: els.openModels });
  if (previous && model && previous.id === model.id) {
    if (previous.model_name !== model.model_name) sampling.load(model.model_name); // renamed
    renderButtons();
    return;
  }
  if (running) cancelRunning();
  conversation = null;
  conversations = [];
  els.output.textContent = "";
  els.chatError.textContent = "";
  els.completionError.textContent = "";
  renderStats(null);
  sampling.load(model ? model.model_name : null);
  loadConversations();
}

function renderNote() {
  let text = "";
  if (!model) text = "Choose a model above, or create one in the Models tab.";
  else if (model.busy && model.busy.kind === "train") text = `“${model.model_name}” is training: it answers from its latest checkpoint.`;
  else if (!model.steps_trained) text = `“${model.model_name}” has not trained yet, so it answers with random characters. Train it in the Training tab.`;
  els.note.textContent = text;
  els.note.hidden = !text;
}

// ---- conversations ------------------------------------------------------------------------

async function loadConversations({ open = null, keepError = false } = {}) {
  const mine = ++seq;
  if (!model) {
    renderConversations();
    renderChat();
    return;
  }
  try {
    const listing = await api.get(`/api/models/${api.seg(model.model_name)}/conversations`);
    if (mine !== seq) return;
    conversations = listing.conversations;
    const id = open ?? conversation?.id ?? conversations[0]?.id ?? null;
    renderConversations();
    if (id !== null && conversations.some((c) => c.id === id)) await openConversation(id, { keepError });
    else {
      conversation = null;
      renderChat();
    }
  } catch (err) {
    if (mine === seq) toastError(err);
  }
}

/** `keepError`: the conversation is read again after a reply: a refusal said under the chat stays. */
async function openConversation(id, { keepError = false } = {}) {
  const mine = ++seq;
  try {
    const c = await api.get(`/api/conversations/${id}`);
    if (mine !== seq) return;
    conversation = c;
    if (!keepError) els.chatError.textContent = "";
    renderConversations();
    renderChat();
  } catch (err) {
    if (mine === seq) toastError(err);
  }
}

function renderConversations() {
  fill(els.convList, conversations.length ? conversations.map((c) => {
    const current = conversation && conversation.id === c.id;
    return h("li", { class: `conv-item${current ? " is-current" : ""}`, dataset: { testid: "conversation-item", id: String(c.id) } },
      h("button", {
        type: "button", class: "conv-open", "aria-current": current ? "true" : null, title: c.title,
        dataset: { testid: "conversation-open" },
        onclick: () => { if (!running) openConversation(c.id); },
      },
      h("span", { class: "conv-title", dataset: { testid: "conversation-title" } }, c.title),
      h("span", { class: "muted small" }, `${c.message_count} ${c.message_count === 1 ? "message" : "messages"} · ${formatAgo(c.updated_at)}`)),
      h("button", { type: "button", class: "btn btn-small conv-action", title: "Rename", "aria-label": `Rename ${c.title}`, dataset: { testid: "conversation-rename" }, onclick: () => renameConversation(c) }, "Rename"),
      h("button", { type: "button", class: "btn btn-small btn-danger-quiet conv-action", title: "Delete", "aria-label": `Delete ${c.title}`, dataset: { testid: "conversation-delete" }, onclick: () => deleteConversation(c) }, "Delete"),
    );
  }) : h("li", { class: "empty" }, model ? "No conversations yet: write a message to start one." : ""));
  els.newConv.disabled = !model || Boolean(running);
}

async function newConversation() {
  if (!model) return;
  try {
    const c = await api.post(`/api/models/${api.seg(model.model_name)}/conversations`, {});
    conversations = [c, ...conversations];
    conversation = c;
    renderConversations();
    renderChat();
    els.input.focus();
  } catch (err) {
    toastError(err);
  }
}

async function renameConversation(c) {
  const title = await promptDialog({
    title: "Rename conversation", label: "Title", value: c.title, confirmLabel: "Rename",
    validate: (v) => (v.trim() ? { ok: true } : { ok: false, message: "A title needs some text." }),
  });
  if (title === null) return;
  try {
    const renamed = await api.patch(`/api/conversations/${c.id}`, { title });
    conversations = conversations.map((x) => (x.id === c.id ? { ...x, title: renamed.title } : x));
    if (conversation && conversation.id === c.id) conversation = { ...conversation, title: renamed.title };
    renderConversations();
    renderChat();
  } catch (err) {
    toastError(err);
  }
}

async function deleteConversation(c) {
  const ok = await confirmDialog({
    title: "Delete conversation?", message: `“${c.title}” and its ${c.message_count} messages will be deleted for good.`,
    confirmLabel: "Delete", danger: true,
  });
  if (!ok) return;
  try {
    await api.del(`/api/conversations/${c.id}`);
    if (conversation && conversation.id === c.id) conversation = null;
    toast(`Deleted “${c.title}”`, { kind: "ok" });
    await loadConversations();
  } catch (err) {
    toastError(err);
  }
}

// ---- the chat -----------------------------------------------------------------------------

function messageNode(m) {
  const text = h("div", { class: "msg-text", dataset: { testid: "message-text" } }, m.content);
  const meta = h("div", { class: "msg-meta muted small", dataset: { testid: "message-meta" } }, messageMeta(m));
  const node = h("div", { class: `msg msg-${m.role}`, dataset: { testid: "message", role: m.role } },
    h("div", { class: "msg-head" },
      h("span", { class: "msg-role" }, m.role === "user" ? "You" : model ? model.model_name : "Model"),
      h("button", { type: "button", class: "btn btn-small msg-copy", dataset: { testid: "message-copy" }, onclick: () => copyText(text.textContent) }, "Copy"),
    ),
    text,
    meta,
  );
  return { node, text, meta };
}

function messageMeta(m) {
  if (m.role !== "assistant" || m.completion_tokens == null) return "";
  const parts = [`${formatInt(m.completion_tokens)} tokens`];
  if (m.tokens_per_sec) parts.push(`${m.tokens_per_sec.toFixed(1)} tokens/s`);
  if (m.finish_reason === "cancelled") parts.push("stopped");
  else if (m.finish_reason === "length") parts.push("reached max_new_tokens");
  return parts.join(" · ");
}

function renderChat() {
  fill(els.chatTitle, conversation ? conversation.title : model ? "New conversation" : "");
  const nodes = (conversation?.messages || []).map((m) => messageNode(m).node);
  fill(els.messages, nodes.length ? nodes : h("p", { class: "empty" }, model ? "Say something to the model." : ""));
  els.messages.scrollTop = els.messages.scrollHeight;
  renderButtons();
}

function renderButtons() {
  const busy = Boolean(running);
  els.send.disabled = !model || busy;
  els.input.disabled = !model;
  els.chatStop.disabled = !(running && running.kind === "chat");
  const last = conversation?.messages?.at(-1);
  els.regenerate.disabled = !model || busy || !last;
  els.generate.disabled = !model || busy;
  els.completionStop.disabled = !(running && running.kind === "completion");
  els.newConv.disabled = !model || busy;
}

async function send() {
  if (!model || running) return;
  const content = els.input.value;
  if (!content.trim()) {
    els.chatError.textContent = "Write something first: the message is empty.";
    return;
  }
  els.chatError.textContent = "";
  let created = null; // a conversation started for this message: it goes again if the message is refused
  if (!conversation) {
    try {
      created = conversation = await api.post(`/api/models/${api.seg(model.model_name)}/conversations`, {});
      conversations = [conversation, ...conversations];
    } catch (err) {
      els.chatError.textContent = errorText(err);
      return;
    }
  }
  sampling.remember();
  let started = false;
  const ok = await chatStream(`/api/conversations/${conversation.id}/messages`, { content, sampling: sampling.values() }, () => {
    started = true;
    els.input.value = "";
  }, { keep: Boolean(created) });
  if (created && !started) {
    // Refused before it began (a sampling setting out of range): no empty conversation stays behind.
    await api.del(`/api/conversations/${created.id}`).catch(() => {});
    if (conversation && conversation.id === created.id) conversation = null;
    await loadConversations({ keepError: true });
  }
  if (ok) els.input.focus();
}

async function regenerate() {
  if (!model || running || !conversation) return;
  els.chatError.textContent = "";
  const last = conversation.messages.at(-1);
  if (last && last.role === "assistant") {
    conversation.messages = conversation.messages.slice(0, -1);
    renderChat();
  }
  sampling.remember();
  await chatStream(`/api/conversations/${conversation.id}/regenerate`, { sampling: sampling.values() });
}

/** Stream a chat reply into a new message bubble; returns true when the stream ended well. */
async function chatStream(path, body, onStarted = () => {}, { keep = false } = {}) {
  const convId = conversation.id;
  const run = { kind: "chat", streamId: null, controller: new AbortController(), stopping: false };
  running = run;
  renderButtons();
  renderConversations();
  const bubble = messageNode({ role: "assistant", content: "" });
  bubble.node.classList.add("is-streaming");
  const paint = painter(bubble.text, () => { els.messages.scrollTop = els.messages.scrollHeight; });
  let ok = false;
  try {
    ok = await streamReply(run, path, body, {
      paint,
      errorEl: els.chatError,
      onStart: (data) => {
        if (data.user_message) conversation.messages.push(data.user_message);
        onStarted();
        renderChat();
        els.messages.querySelector(".empty")?.remove();
        els.messages.append(bubble.node);
      },
      onDone: (data) => {
        if (data.message) conversation.messages.push(data.message);
      },
    });
  } finally {
    if (running === run) running = null;
  }
  if (keep && !ok && !conversation?.messages?.length) {
    renderButtons(); // send() takes the refused conversation away, keeping the error
  } else if (conversation && conversation.id === convId) {
    await loadConversations({ open: convId, keepError: true });
  } else {
    renderButtons();
  }
  return ok;
}

// ---- completion ---------------------------------------------------------------------------

async function complete() {
  if (!model || running) return;
  const prompt = els.prompt.value;
  if (!prompt) {
    els.completionError.textContent = "Write a prompt first: the prompt is empty.";
    return;
  }
  els.completionError.textContent = "";
  const run = { kind: "completion", streamId: null, controller: new AbortController(), stopping: false };
  running = run;
  renderButtons();
  els.output.textContent = "";
  const promptNode = h("span", { class: "completion-echo" }, prompt);
  const generated = h("span", { class: "completion-generated", dataset: { testid: "completion-generated" } });
  els.output.append(promptNode, generated);
  const paint = painter(generated);
  sampling.remember();
  try {
    await streamReply(run, `/api/models/${api.seg(model.model_name)}/complete`,
      { prompt, sampling: sampling.values() }, { paint, errorEl: els.completionError });
  } finally {
    if (running === run) running = null;
    paint.flush();
    generated.normalize();
    renderButtons();
  }
}

/** One streamed reply, for the chat and the completion alike: the text painted as it comes, the
 *  live count, the stats at the end, an error shown in `errorEl`. They differ only in what the
 *  start and done events add (`onStart`, `onDone`). Returns true when the reply ended well. */
async function streamReply(run, path, body, { paint, errorEl, onStart = () => {}, onDone = () => {} }) {
  let count = 0;
  let ok = false;
  const started = performance.now();
  try {
    await api.stream(path, body, {
      signal: run.controller.signal,
      onEvent: (name, data) => {
        if (name === "start") {
          run.streamId = data.stream_id;
          onStart(data);
          if (run.stopping) stop();
        } else if (name === "token") {
          paint.add(data.text);
          count += data.pieces || 1;
          renderLive(count, started);
        } else if (name === "done") {
          paint.flush();
          onDone(data);
          renderStats(data);
          ok = true;
        } else if (name === "error") {
          errorEl.textContent = errorText(data);
        }
      },
    });
  } catch (err) {
    if (err.name !== "AbortError") errorEl.textContent = errorText(err);
  }
  return ok;
}

// ---- stop, stats, copy --------------------------------------------------------------------

async function stop() {
  const run = running;
  if (!run) return;
  run.stopping = true;
  if (!run.streamId) return; // asked again as soon as the start event names the stream
  try {
    const answer = await api.post("/api/streams/stop", { stream_id: run.streamId });
    if (!answer.stopped && running === run) run.controller.abort();
  } catch (err) {
    run.controller.abort(); // the server is unreachable: at least stop reading
    toastError(err);
  }
}

function cancelRunning() {
  const run = running;
  running = null;
  if (run.streamId) api.post("/api/streams/stop", { stream_id: run.streamId }).catch(() => {});
  run.controller.abort();
}

function statRow(label, value, testid) {
  return [h("dt", {}, label), h("dd", { dataset: { testid } }, value)];
}

/** Text that arrives thousands of pieces a second reaches the page once per frame. */
function painter(el, after = () => {}) {
  let pending = "";
  let queued = false;
  const flush = () => {
    queued = false;
    if (!pending) return;
    el.append(pending);
    pending = "";
    after();
  };
  return {
    add(text) {
      pending += text;
      if (!queued) {
        queued = true;
        requestAnimationFrame(flush);
      }
    },
    flush,
  };
}

let liveFrame = null;

function renderLive(count, started) {
  // Like the text, the live counters are drawn at most once per frame.
  if (liveFrame !== null) cancelAnimationFrame(liveFrame);
  liveFrame = requestAnimationFrame(() => {
    liveFrame = null;
    drawLive(count, started);
  });
}

function drawLive(count, started) {
  const seconds = (performance.now() - started) / 1000;
  fill(els.stats,
    statRow("Tokens", `${formatInt(count)} so far`, "stat-tokens"),
    statRow("Speed", seconds > 0 ? `${(count / seconds).toFixed(1)} tokens/s` : "–", "stat-speed"),
  );
}

function renderStats(stats) {
  if (liveFrame !== null) cancelAnimationFrame(liveFrame);
  liveFrame = null;
  if (!stats) {
    fill(els.stats, h("p", { class: "empty" }, "Counts and speed of the last reply show here."));
    return;
  }
  const reason = { stop: "the model ended it", length: "reached max_new_tokens", cancelled: "stopped" }[stats.finish_reason] || "–";
  fill(els.stats,
    statRow("Tokens", `${formatInt(stats.completion_tokens)} generated · ${formatInt(stats.prompt_tokens)} in the prompt`, "stat-tokens"),
    statRow("Speed", stats.tokens_per_sec ? `${stats.tokens_per_sec.toFixed(1)} tokens/s` : "–", "stat-speed"),
    statRow("First token", stats.time_to_first_token != null ? `${(stats.time_to_first_token * 1000).toFixed(0)} ms` : "–", "stat-first"),
    statRow("Ended", reason, "stat-reason"),
  );
}

