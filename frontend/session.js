// The signed-in session: tokens, their refresh (one at a time across the
// browser's tabs), and GETs on the API with the session's token.

import { STORAGE_LAG_MS } from "./config.js";
import { postJSON, request } from "./rest.js";
import { readStorage, SESSION_KEY, writeStorage } from "./storage.js";

const REFRESH_LOCK = "aurora.refresh"; // held by the one tab (of this origin) refreshing
const ROTATED_LOCK = "aurora.rotated:"; // + a refresh token a tab has rotated (see markRotated)
const SIGNED_OUT_LOCK = "aurora.signed-out:"; // + the refresh token of a session logged out of

export const SIGNED_OUT_ELSEWHERE = "You were signed out in another tab.";

let session = null; // {token, refreshToken, issuedAt, expiresAt, username}
let userId = null; // from `ready`: tells our own messages from others'
let refreshing = null; // the refresh under way, if any
let refreshTimer = null;
// What the rest of the page does when the token changes or the session ends.
let hooks = { tokenChanged: () => {}, left: () => {} };

// tokenChanged(session): a new token for this session (extend the connection);
// left(message): this tab leaves the session (ended here or in another tab).
export function setSessionHooks(given) {
  hooks = given;
}

export function currentSession() {
  return session;
}

export function setUserId(id) {
  userId = id;
}

export function ownUserId() {
  return userId;
}

// A message (live, stored or found) this user sent.
export function isOwn(frame) {
  return userId !== null && frame.user_id === userId;
}

function decodeClaims(token) {
  // Display only (username); the server verifies the signature.
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = part + "=".repeat((4 - (part.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

// A login or refresh answer as a session. Expiry is counted from `expires_in`
// on this machine's clock, so a skewed clock does not matter.
export function sessionFrom(data) {
  if (typeof data.token !== "string" || !data.token) throw new Error("The server sent no token.");
  const claims = decodeClaims(data.token) || {};
  const now = Date.now();
  const lifetime = Number(data.expires_in) > 0 ? Number(data.expires_in) * 1000 : 0;
  return {
    token: data.token,
    refreshToken: typeof data.refresh_token === "string" ? data.refresh_token : null,
    issuedAt: now,
    expiresAt: lifetime ? now + lifetime : Number(claims.exp) * 1000 || now,
    username: typeof claims.username === "string" ? claims.username : "",
  };
}

export function storedSession() {
  const data = readStorage(SESSION_KEY);
  if (!data || typeof data.token !== "string") return null;
  const claims = decodeClaims(data.token) || {};
  return {
    token: data.token,
    refreshToken: typeof data.refresh_token === "string" ? data.refresh_token : null,
    issuedAt: Number(data.issued_at) || Date.now(),
    expiresAt: Number(data.expires_at) || Number(claims.exp) * 1000 || 0,
    username: typeof claims.username === "string" ? claims.username : "",
  };
}

// The browser's other tabs follow (a `storage` event).
export function saveSession() {
  const s = session;
  writeStorage(
    SESSION_KEY,
    s && { token: s.token, refresh_token: s.refreshToken, issued_at: s.issuedAt, expires_at: s.expiresAt },
  );
}

export function expired(s) {
  return s.expiresAt <= Date.now();
}

export function beginSession(s) {
  session = s;
  scheduleRefresh();
}

// This tab forgets the session; storage and the other tabs are untouched.
export function forgetSession() {
  session = null;
  userId = null;
  clearTimeout(refreshTimer);
}

// The session is over, for every tab of the browser.
export function endSession(message) {
  writeStorage(SESSION_KEY, null);
  hooks.left(message);
}

// Refresh well before expiry: a fifth of the lifetime ahead (at least a minute,
// at most half the lifetime), so a long-open tab never holds a dead token.
export function scheduleRefresh() {
  clearTimeout(refreshTimer);
  const s = session;
  if (!s || !s.refreshToken) return;
  const lifetime = s.expiresAt - s.issuedAt;
  const lead = Math.min(lifetime / 2, Math.max(60000, lifetime / 5));
  const delay = Math.min(2 ** 31 - 1, Math.max(0, s.expiresAt - lead - Date.now()));
  refreshTimer = setTimeout(refreshOnTime, delay);
}

async function refreshOnTime() {
  const outcome = await refreshSession();
  if (outcome === "invalid") endSession("Your session has ended. Please log in again.");
  else if (outcome === "unavailable") {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refreshOnTime, 20000 + Math.random() * 20000);
  }
}

// One refresh at a time, in this tab and across the browser's tabs: the refresh
// token rotates, and presenting a rotated one ends the session (it looks stolen).
// Answers "ok", "stale" (signed out meanwhile), "invalid" or "unavailable".
export function refreshSession() {
  if (!refreshing) {
    const before = session;
    refreshing = withRefreshLock(() => doRefresh(before)).finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

// Web Locks exist in secure contexts only (https, localhost, 127.0.0.1);
// elsewhere each tab refreshes on its own, as one tab always may.
function withRefreshLock(task) {
  return navigator.locks ? navigator.locks.request(REFRESH_LOCK, task) : task();
}

async function doRefresh(before) {
  if (!before || !before.refreshToken) return "invalid";
  // Another tab may have rotated the refresh token while this one waited for
  // the lock: its new session is ours too.
  const stored = await rotatedSession(before.refreshToken);
  if (stored) {
    if (session && session.token !== stored.token) useToken(stored);
    return session ? "ok" : "stale";
  }
  let data;
  try {
    data = await postJSON("/api/auth/refresh", { refresh_token: before.refreshToken });
  } catch (error) {
    if (error.status !== 400 && error.status !== 401) return "unavailable";
    if (session === before && (await lockHeld(SIGNED_OUT_LOCK + before.refreshToken))) {
      endSession(SIGNED_OUT_ELSEWHERE);
      return "stale";
    }
    return "invalid";
  }
  if (session !== before) return "stale"; // logged out meanwhile
  useToken(sessionFrom(data));
  saveSession();
  await markRotated(before.refreshToken); // before the refresh lock is released
  return "ok";
}

// A call that ends every session of the user and answers a new one for this
// browser (a password change). It runs under the refresh lock, and the new
// session is stored before the lock is released: the server closes every open
// socket (4001), and the refresh each tab then tries finds the new session
// instead of presenting the refresh token that was just revoked.
export function replaceSession(call) {
  return withRefreshLock(async () => {
    const before = session;
    if (!before) throw new Error("Signed out.");
    const data = await call(before.token);
    if (session !== before) return; // logged out meanwhile
    useToken(sessionFrom(data));
    saveSession();
    if (before.refreshToken) await markRotated(before.refreshToken);
  });
}

// Chromium hands localStorage writes to other tabs asynchronously: the next
// tab to get the refresh lock may still read the old session, and would
// present the rotated refresh token. The lock manager has no such lag, so the
// tab that rotates a refresh token also holds a lock named after it (until
// the tab closes), and a tab that sees that lock waits for storage to catch up.
function markRotated(refreshToken) {
  return holdLock(ROTATED_LOCK + refreshToken); // never released
}

// This tab logs out of `s`; call it before the server revokes the session.
// The server then closes every tab's socket, and the refresh each tab tries is
// refused; storage may not yet have told those tabs (see markRotated), but
// this lock does, so they say they were signed out rather than that it ended.
// Resolves to a function that takes the mark back (the logout failed).
export function markSignedOut(s) {
  if (!s.refreshToken) return Promise.resolve(() => {}); // no refresh to tell
  return holdLock(SIGNED_OUT_LOCK + s.refreshToken);
}

// Resolves, once the lock is held, to the function that releases it.
function holdLock(name) {
  if (!navigator.locks) return Promise.resolve(() => {});
  return new Promise((granted) => {
    navigator.locks.request(name, () => new Promise((release) => granted(release)));
  });
}

async function lockHeld(name) {
  if (!navigator.locks) return false;
  const { held } = await navigator.locks.query();
  return held.some((lock) => lock.name === name);
}

// The stored session, if it no longer holds `refreshToken` (another tab
// rotated it); null if it does, and nobody has rotated it.
async function rotatedSession(refreshToken) {
  const rotated = () => {
    const stored = storedSession();
    return stored && stored.refreshToken !== refreshToken ? stored : null;
  };
  if (rotated() || !navigator.locks) return rotated();
  if (!(await lockHeld(ROTATED_LOCK + refreshToken))) return null;
  for (let waited = 0; !rotated() && waited < STORAGE_LAG_MS; waited += 50) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return rotated();
}

// A new token for the session this tab is in (refreshed here or in another
// tab): keep it, and extend the open connection with it rather than let the
// server close it (4001).
export function useToken(s) {
  session = s;
  scheduleRefresh();
  hooks.tokenChanged(s);
}

// A GET on the API with the session's token.
export function apiGet(path) {
  return apiRequest("GET", path);
}

// A request to the API with the session's token. A refused token (401) goes
// through the page's refresh, once, and the request is repeated.
export async function apiRequest(method, path, body = undefined) {
  for (let renewed = false; ; renewed = true) {
    if (!session) throw new Error("Signed out.");
    try {
      return await request(method, path, { token: session.token, body });
    } catch (error) {
      if (error.status !== 401 || renewed) throw error;
      const outcome = await refreshSession();
      if (outcome === "invalid") {
        endSession("Your session has ended. Please log in again.");
        throw error;
      }
      if (outcome === "unavailable") throw new Error("Cannot renew the session now. Try again.");
    }
  }
}
