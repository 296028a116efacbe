// Calls to the gateway: the API key header, and every failure turned into a message a
// person understands (ApiError). The page is served by the gateway, so paths are relative
// to it and no CORS is involved.

const KEY_STORAGE = "docparse.apiKey";

export function storedKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return ""; // storage disabled: the key lives for this page only
  }
}

export function storeKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    /* storage disabled */
  }
}

/** A failed call. `kind`: "auth", "too-large", "busy", "invalid", "unsupported",
 * "network", "server", "stream"; `body` is the answer's JSON when it had one (Extract's 422 carries `raw`). */
export class ApiError extends Error {
  constructor(kind, message, { status = 0, body = null, logId = "" } = {}) {
    super(message);
    this.name = "ApiError";
    this.kind = kind;
    this.status = status;
    this.body = body;
    this.logId = logId;
  }
}

/** The server's own words from either error shape: the HPS envelope's errorMsg, or the
 * GLM-OCR routes' `error`. */
function serverMessage(body) {
  if (!body || typeof body !== "object") return "";
  return String(body.errorMsg || body.error || "");
}

function retryAfterSeconds(response) {
  const value = response.headers.get("Retry-After");
  const seconds = Number.parseInt(value ?? "", 10);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : null;
}

function laterText(seconds) {
  return seconds === null ? "try again in a moment" : `try again in ${seconds} s`;
}

/** The ApiError for an answer that is not 2xx. */
async function errorFor(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    /* not JSON (a proxy's page): the status says enough */
  }
  const said = serverMessage(body);
  const options = { status: response.status, body, logId: body?.logId || "" };
  const retry = retryAfterSeconds(response);
  switch (response.status) {
    case 401:
    case 403:
      return new ApiError("auth", storedKey()
        ? "The server did not accept this API key. Enter a valid key above and try again."
        : "This server needs an API key. Enter it above and try again.", options);
    case 413:
      return new ApiError("too-large", `The file is too large for this server${said ? ` (${said})` : ""}.`, options);
    case 422:
    case 400:
      return new ApiError("invalid", said || "The server could not read this request.", options);
    case 429:
      return new ApiError("busy", `Too many requests for this API key; ${laterText(retry)}.`, options);
    case 501:
      return new ApiError("unsupported", said || "This server cannot do that.", options);
    case 503:
      return new ApiError("busy", `The server is busy; ${laterText(retry)}.`, options);
    case 504:
      return new ApiError("server", "The server took too long to finish this document.", options);
    default:
      return new ApiError("server", `The server failed (HTTP ${response.status})${said ? `: ${said}` : "."}`, options);
  }
}

/** POST a form; the Response when it is 2xx, else throws ApiError. An abort (Cancel)
 * is passed on as the AbortError it is. */
export async function postForm(path, form, { signal } = {}) {
  const headers = {};
  const key = storedKey();
  if (key) headers["X-API-Key"] = key;
  let response;
  try {
    response = await fetch(path, { method: "POST", body: form, headers, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("network", "Could not reach the server. Check the connection and try again.");
  }
  if (!response.ok) throw await errorFor(response);
  return response;
}

/** POST a form and read its JSON answer; an ApiError for a 2xx that is not JSON. */
export async function postFormJson(path, form, options) {
  const response = await postForm(path, form, options);
  try {
    return await response.json();
  } catch {
    throw new ApiError("server", "The server's answer was not JSON.", { status: response.status });
  }
}

/** ApiError for an `error` event: the stream had started, then the document failed. */
export function streamError(payload) {
  const said = serverMessage(payload) || "the server gave no reason";
  return new ApiError("stream", `The document failed while it was being parsed: ${said}`, {
    status: payload?.errorCode || 0, body: payload, logId: payload?.logId || "",
  });
}

/** The message to show for any error thrown by the calls above (or a bug). */
export function describe(error) {
  if (error instanceof ApiError) return error.message;
  if (error?.name === "TypeError") return "Could not reach the server. Check the connection and try again.";
  return `Something went wrong: ${error?.message || error}`;
}
