// Where the API and the fan-out are (config.json beside the page), and the
// client's own timings and limits.

export const MAX_MESSAGES = 500; // shown at once; the oldest go first
export const HIDDEN_MESSAGES = 100; // kept by a room not shown, at its newest: a switch to it lays out no more
export const LINK_EARLY = 0.2; // a download link counts as expired this share of its lifetime early
export const BACKOFF_MIN_MS = 500;
export const BACKOFF_MAX_MS = 15000;
export const READY_TIMEOUT_MS = 10000; // an open socket that never says `ready` is not working
export const HEARTBEAT_MS = 25000; // the browser hides the server's pings: a ping of our own
export const PONG_TIMEOUT_MS = 10000; //   finds a dead connection before TCP does
export const RETRY_MS = 2000; // after `unavailable` / `backpressure`
export const HISTORY_PAGE = 50; // messages per scrollback or search request (the API allows 1-100)
export const INSERT_BATCH = 25; // a page's messages put in per task: 50 at once took ~25 ms of CPU
export const GAP_PAGE = 100; // per gap-fill request: the API's largest page
export const GAP_HOLD_TRIES = 5; // gap reads failed before the outbox is sent anyway (~10 s)
export const PASSWORD_MIN = 8; // the API's rule (aurora.accounts), checked here first
export const PASSWORD_MAX = 128;
export const STORAGE_LAG_MS = 10000; // at most this long for another tab's session to reach storage

let config = null; // {api_url, ws_url}, once loaded

// The wait before retry number `attempt` (0, 1, …): exponential with jitter,
// so that clients failing together do not all come back at the same instant.
export function backoffDelay(attempt) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
  return Math.round(base / 2 + Math.random() * (base / 2));
}

export function apiUrl() {
  return config.api_url;
}

export function wsUrl() {
  return config.ws_url;
}

function fallbackConfig() {
  const wsScheme = location.protocol === "https:" ? "wss:" : "ws:";
  return { api_url: location.origin, ws_url: `${wsScheme}//${location.hostname}:8080` };
}

export async function loadConfig() {
  config = await readConfig();
}

async function readConfig() {
  const fallback = fallbackConfig();
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const data = await response.json();
    return {
      api_url: stripSlash(typeof data.api_url === "string" && data.api_url ? data.api_url : fallback.api_url),
      ws_url: stripSlash(typeof data.ws_url === "string" && data.ws_url ? data.ws_url : fallback.ws_url),
    };
  } catch {
    return fallback;
  }
}

function stripSlash(url) {
  return url.replace(/\/+$/, "");
}
