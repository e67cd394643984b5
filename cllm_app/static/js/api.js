// The one module that talks to the server. Everything else imports get/post/patch/put/del.
//
// The app is opened at http://127.0.0.1:PORT/#token=SECRET. The secret rides in the URL
// fragment (never sent to the server, never logged); on first load it is moved into
// sessionStorage, wiped from the visible address, and sent as X-CLLM-Token on every request.

const TOKEN_KEY = "cllm-token";
const TOKEN_HEADER = "X-CLLM-Token";

function takeTokenFromUrl() {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(history.state, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

let token = takeTokenFromUrl();

/** Whether this page was given a launch token at all. */
export function hasToken() {
  return Boolean(token);
}

/** A refusal from the server (or no answer at all): code, message and HTTP status. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

const unreachable = () =>
  new ApiError(0, "unreachable", "The app's server did not answer. Is CLLM Studio still running?");

/** The answer's JSON body, or null when it has none (or it is not JSON). */
async function jsonOf(response) {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

/** The ApiError for a refused request, from the server's {"error": {code, message}}. */
function refusal(response, data) {
  const error = data && data.error ? data.error : {};
  return new ApiError(
    response.status,
    error.code || `http_${response.status}`,
    error.message || `The server answered ${response.status} ${response.statusText}`.trim(),
  );
}

/** The JSON of a successful answer; a refusal throws its ApiError. */
async function answer(response) {
  const data = await jsonOf(response);
  if (!response.ok) throw refusal(response, data);
  return data;
}

async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (token) headers[TOKEN_HEADER] = token;
  const init = { method, headers, cache: "no-store", credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw unreachable();
  }
  return answer(response);
}

/** A file the server sends (a CSV) as a Blob. Fetched, not a link: the launch token goes in
 * its header, never in a URL. A refusal throws its ApiError as for JSON. */
export async function getBlob(path) {
  const headers = { Accept: "*/*" };
  if (token) headers[TOKEN_HEADER] = token;
  let response;
  try {
    response = await fetch(path, { headers, cache: "no-store", credentials: "same-origin" });
  } catch {
    throw unreachable();
  }
  if (response.ok) return response.blob();
  throw refusal(response, await jsonOf(response));
}

/** Build a query string from an object, skipping null/undefined values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** Path segment for a model name (names may hold spaces and letters of any script). */
export function seg(value) {
  return encodeURIComponent(value);
}

export const get = (path) => request("GET", path);
export const post = (path, body = {}) => request("POST", path, body);
export const patch = (path, body = {}) => request("PATCH", path, body);
export const put = (path, body = {}) => request("PUT", path, body);
export const del = (path, body) => request("DELETE", path, body);

/**
 * POST multipart form data (files from a file input or a drop) and return the JSON answer;
 * a refusal throws an ApiError as with post(). The browser sets the multipart Content-Type.
 */
export async function upload(path, formData) {
  const headers = { Accept: "application/json" };
  if (token) headers[TOKEN_HEADER] = token;
  let response;
  try {
    response = await fetch(path, { method: "POST", headers, body: formData, cache: "no-store", credentials: "same-origin" });
  } catch {
    throw unreachable();
  }
  return answer(response);
}

/**
 * POST `body` and read the server-sent events of the answer as they arrive:
 * onEvent(name, data) is called for each `event:`/`data:` block (data parsed as JSON).
 * EventSource cannot POST or send the token header, so this reads the fetch body stream.
 * A refusal before the stream starts throws an ApiError; `signal` (an AbortSignal) cancels,
 * and the promise then rejects with an AbortError.
 */
export async function stream(path, body, { onEvent, signal } = {}) {
  const headers = { Accept: "text/event-stream", "Content-Type": "application/json" };
  if (token) headers[TOKEN_HEADER] = token;
  let response;
  try {
    response = await fetch(path, {
      method: "POST", headers, body: JSON.stringify(body ?? {}), cache: "no-store", credentials: "same-origin", signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw unreachable();
  }
  if (!response.ok) throw refusal(response, await jsonOf(response));
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) onEvent?.(name, JSON.parse(data));
    }
  }
}

/**
 * An EventSource on `path` (a GET answering server-sent events). EventSource cannot set
 * headers, so the token rides in the query string (the server takes it there for event
 * streams only). It reconnects by itself, sending the last id it saw as Last-Event-ID.
 */
export function eventSource(path) {
  const url = token ? `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : path;
  return new EventSource(url);
}
