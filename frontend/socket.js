// The WebSocket connection: connect with the token as a subprotocol, join
// every room of the sidebar from the newest message shown in it, answer
// frames in order, keep it alive, and reconnect (refreshing the token when it
// is refused) with jittered backoff when it drops.

import {
  HEARTBEAT_MS,
  PONG_TIMEOUT_MS,
  READY_TIMEOUT_MS,
  RETRY_MS,
  backoffDelay,
  wsUrl,
} from "./config.js";
import { CLOSE, MAX_JOINED, SUBPROTOCOL, newClientId } from "./protocol.js";
import { forgetNewest, newestShownId } from "./render.js";
import { knownRoom } from "./rooms.js";
import { currentSession, endSession, expired, refreshSession, setUserId } from "./session.js";
import { setStatus, showNotice } from "./ui.js";

let current = null; // the connection: {ws, opened, ready, rooms, inflight, ...}
let attempt = 0; // reconnections since the last `ready`: the backoff's exponent
let authRetried = false; // a 4001 (or refused upgrade) gets one refresh, then login
let reconnectTimer = null;
let readyBefore = false; // a `ready` came since sign-in: the next one is a reconnect
// What the page does with the room's frames (see setFrameHandlers).
let handlers = null;

// message(frame): a `message` of a room, live or replayed; change(frame):
// an `edit`, `delete` or `react` of one of its messages; ack(frame);
// rateLimited(request, frame) and refused(request, code, text): answers to a
// send; replayed(room, gap): the `missed` messages after a join are in, with
// {after: an id} if the resume window no longer reached back to the last one
// shown; typing(frame), presence(frame); gone(room, reason): a room this
// user may no longer read (`left` with a reason, or a join refused);
// receipt(frame): a member's delivered and read cursors moved;
// rooms(): the rooms to join, in order of preference; roomsChanged(): the
// user's list of rooms changed (`rooms_changed`, or a reconnect, which may
// have lost one).
export function setFrameHandlers(given) {
  handlers = given;
}

// The connection, if it may carry messages to `room`: joined, its replay in.
export function joinedConnection(room) {
  const joined = current && current.rooms.get(room);
  return joined && joined.joined && joined.replaying === 0 ? current : null;
}

export function connected() {
  return Boolean(current && current.ready);
}

// Join a room on the open connection (a room just created, opened or
// joined), from the newest message shown in it, else from `since`.
export function joinRoom(room, since = null) {
  const conn = current;
  if (!conn || !conn.ready || conn.rooms.has(room) || conn.rooms.size >= MAX_JOINED) return;
  const state = knownRoom(room);
  const shown = state && newestShownId(state);
  const from = shown || since;
  conn.rooms.set(room, { joined: false, replaying: 0, since: shown || null });
  send(conn, { type: "join", room, ...(from && { since: from }) }, { kind: "join", room });
}

// Stop receiving a room on this connection (membership is the API's).
export function leaveRoom(room) {
  const conn = current;
  if (!conn || !conn.rooms.has(room)) return;
  conn.rooms.delete(room);
  send(conn, { type: "leave", room }, { kind: "leave", room });
}

// Tell the room's members whether this user is typing (not stored).
export function sendTyping(room, typing) {
  const conn = joinedConnection(room);
  if (conn) send(conn, { type: "typing", room, typing });
}

export function startConnecting() {
  attempt = 0;
  connect();
}

// The network is back: try now rather than at the end of the backoff.
export function reconnectNow() {
  if (currentSession() && !current) startConnecting();
}

// A new token for the session: extend the open connection with it.
export function reauth(session) {
  if (current && current.ready) send(current, { type: "auth", token: session.token }, { kind: "auth" });
}

function connect() {
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  const session = currentSession();
  if (!session || current) return;
  if (expired(session)) {
    renewThenConnect();
    return;
  }
  setStatus("connecting", attempt ? "Reconnecting…" : "Connecting…");
  let ws;
  try {
    ws = new WebSocket(wsUrl(), [SUBPROTOCOL, `bearer.${session.token}`]);
  } catch {
    scheduleReconnect();
    return;
  }
  const conn = { ws, opened: false, ready: false, rooms: new Map(), inflight: [], timers: [] };
  current = conn;

  ws.addEventListener("open", () => {
    if (current !== conn) return;
    conn.opened = true;
    if (ws.protocol !== SUBPROTOCOL) {
      showNotice("The chat server does not speak protocol v1.", { error: true, sticky: true });
      drop(conn);
      return;
    }
    conn.timers.push(
      setTimeout(() => {
        if (!conn.ready) drop(conn);
      }, READY_TIMEOUT_MS),
    );
  });
  ws.addEventListener("message", (event) => {
    if (current === conn) onFrame(conn, event.data);
  });
  ws.addEventListener("close", (event) => {
    if (current !== conn) return;
    detach(conn);
    onClose(conn, event);
  });
}

// Forget a connection: what was in flight on it stays in the outbox, which
// sends it again on the next connection.
function detach(conn) {
  if (current === conn) current = null;
  // Changes waiting for an answer will not get one on this connection: they
  // go over REST, which is safe to repeat (an edit to the same text, a delete
  // of a deleted message, an explicit on/off reaction change nothing more).
  for (const request of conn.inflight) {
    if (request.kind === "change") request.reject(changeError("offline", "Not connected."));
  }
  conn.timers.forEach((timer) => clearTimeout(timer));
  clearInterval(conn.heartbeat);
}

// Give up on a connection that is not working and start over.
function drop(conn) {
  detach(conn);
  if (conn.ws.readyState <= WebSocket.OPEN) conn.ws.close(1000, "reconnecting");
  scheduleReconnect();
}

// Signed out: close the connection and forget the refresh already tried.
export function disconnect() {
  authRetried = false;
  readyBefore = false;
  clearTimeout(reconnectTimer);
  reconnectTimer = null;
  const conn = current;
  if (!conn) return;
  detach(conn);
  if (conn.ws.readyState <= WebSocket.OPEN) conn.ws.close(1000, "log out");
}

async function onClose(conn, event) {
  if (!currentSession()) return;
  const reason = event.reason;
  switch (event.code) {
    case CLOSE.AUTH:
      renewThenConnect();
      return;
    case CLOSE.FORBIDDEN:
      endSession(reason || "The chat server refused this session. Please log in again.");
      return;
    case CLOSE.TOO_MANY:
      showNotice(`${reason || "Too many connections"}: close another tab or device. Retrying…`, {
        error: true,
        sticky: true,
      });
      attempt = Math.max(attempt, 5); // the slow end of the backoff
      scheduleReconnect();
      return;
    case CLOSE.TOO_SLOW:
      showNotice("Disconnected for falling behind; reconnecting.");
      break;
    default:
      break;
  }
  if (!conn.opened) {
    // A refused upgrade (401, 403, 503) looks like a network failure to a
    // browser. If the server is reachable, suspect the token: renew it once.
    const reachable = await fanoutReachable();
    if (!currentSession() || current) return;
    if (reachable && !authRetried) {
      renewThenConnect();
      return;
    }
  }
  scheduleReconnect();
}

// The token was refused (4001) or is expired: refresh once, then connect with
// the new one; a refresh the server refuses means logging in again.
async function renewThenConnect() {
  if (authRetried) {
    endSession("Your session has ended. Please log in again.");
    return;
  }
  authRetried = true;
  setStatus("connecting", "Renewing session…");
  const outcome = await refreshSession();
  if (!currentSession()) return;
  if (outcome === "invalid") endSession("Your session has ended. Please log in again.");
  else if (outcome === "unavailable") {
    authRetried = false; // the refresh did not happen: it may be tried again
    scheduleReconnect();
  } else connect();
}

function scheduleReconnect() {
  if (!currentSession() || current) return;
  const delay = backoffDelay(attempt); // a restarted server is not hit by every client at once
  attempt += 1;
  setStatus("reconnecting", `Offline — retrying in ${Math.max(1, Math.round(delay / 1000))} s`);
  clearTimeout(reconnectTimer);
  reconnectTimer = setTimeout(connect, delay);
}

async function fanoutReachable() {
  const url = wsUrl().replace(/^ws/, "http") + "/healthz";
  try {
    await fetch(url, { mode: "no-cors", cache: "no-store" });
    return true;
  } catch {
    return false;
  }
}

// Every request frame gets exactly one reply, in order (docs/protocol.md), so
// the replies are matched to `inflight` first in, first out.
export function send(conn, frame, request) {
  if (conn.ws.readyState !== WebSocket.OPEN) return; // closing: its close event follows
  conn.ws.send(JSON.stringify(frame));
  if (request) conn.inflight.push(request);
}

// An edit, delete or react frame (docs/protocol.md, "Changing a message"):
// resolves with its `ack`, rejects with an Error carrying the refusal's
// `code` ("offline" when no connection could carry it).
export function sendChange(frame) {
  const conn = current;
  if (!conn || !conn.ready || conn.ws.readyState !== WebSocket.OPEN) {
    return Promise.reject(changeError("offline", "Not connected."));
  }
  const clientId = newClientId();
  return new Promise((resolve, reject) => {
    send(conn, { ...frame, client_id: clientId }, { kind: "change", resolve, reject });
  });
}

function changeError(code, text) {
  const error = new Error(text);
  error.code = code;
  return error;
}

function reply(conn) {
  return conn.inflight.shift() || { kind: "none" };
}

function onFrame(conn, raw) {
  let frame;
  try {
    frame = JSON.parse(raw);
  } catch {
    return;
  }
  if (!frame || typeof frame !== "object") return;
  switch (frame.type) {
    case "ready":
      if (conn.ready) reply(conn); // the answer to a re-`auth`
      else onReady(conn, frame);
      break;
    case "joined":
      reply(conn);
      onJoined(conn, frame);
      break;
    case "message": {
      const joined = conn.rooms.get(frame.room);
      if (!joined) break;
      handlers.message(frame);
      if (joined.replaying > 0 && --joined.replaying === 0) replayed(frame.room, joined);
      break;
    }
    case "edit":
    case "delete":
    case "react": {
      const joined = conn.rooms.get(frame.room);
      if (!joined) break;
      handlers.change(frame);
      // Changes are replayed with the messages, and counted in `missed`.
      if (joined.replaying > 0 && --joined.replaying === 0) replayed(frame.room, joined);
      break;
    }
    case "ack": {
      const request = reply(conn);
      if (request.kind === "change") request.resolve(frame);
      else handlers.ack(frame);
      break;
    }
    case "receipt":
      if (conn.rooms.has(frame.room)) handlers.receipt(frame);
      break;
    case "rate_limited":
      onRateLimited(conn, reply(conn), frame);
      break;
    case "error":
      onError(conn, reply(conn), frame);
      break;
    case "pong":
      reply(conn);
      conn.pingSentAt = 0;
      break;
    case "left":
      onLeft(conn, frame);
      break;
    case "typing":
      if (conn.rooms.has(frame.room)) handlers.typing(frame);
      break;
    case "presence":
      if (conn.rooms.has(frame.room)) handlers.presence(frame);
      break;
    case "rooms_changed": // this user's list of rooms changed: read it again
      handlers.roomsChanged();
      break;
    default:
      break; // anything newer
  }
}

function onReady(conn, frame) {
  conn.ready = true;
  attempt = 0;
  authRetried = false;
  if (typeof frame.user_id === "string") setUserId(frame.user_id);
  if (readyBefore) handlers.roomsChanged(); // a `rooms_changed` may have been lost meanwhile
  readyBefore = true;
  setStatus("connecting", "Joining…");
  // Each room from the last message shown in it; with none shown, the room
  // open now from its recent window, the others from where they were read
  // (what came since counts as unread; see rooms.unreadSince).
  for (const { room, since } of handlers.rooms()) joinRoom(room, since);
  conn.heartbeat = setInterval(() => heartbeat(conn), HEARTBEAT_MS);
}

function heartbeat(conn) {
  if (conn.pingSentAt && Date.now() - conn.pingSentAt > PONG_TIMEOUT_MS) {
    drop(conn);
  } else if (!conn.pingSentAt) {
    conn.pingSentAt = Date.now();
    send(conn, { type: "ping" }, { kind: "ping" });
  }
}

function onJoined(conn, frame) {
  const joined = conn.rooms.get(frame.room);
  if (!joined) return;
  joined.joined = true;
  setStatus("online", "Connected");
  // The window no longer reaches back to the last message shown: what lies
  // between it and the first message replayed is read from the history API.
  if (frame.recovered === false && joined.since) joined.gap = { after: joined.since };
  // The `missed` messages follow. The outbox is sent after them: one of ours
  // that the server stored before the line dropped shows up there and is
  // settled, not resent (a resend is deduplicated only for IDEMPOTENCY_TTL_SECONDS).
  joined.replaying = Math.max(0, Number(frame.missed) || 0);
  if (joined.replaying) {
    const giveUp = () => {
      if (!joined.replaying) return;
      joined.replaying = 0; // should not happen; better a deduplicated resend than none
      replayed(frame.room, joined);
    };
    conn.timers.push(setTimeout(giveUp, READY_TIMEOUT_MS));
  } else replayed(frame.room, joined);
}

function replayed(room, joined) {
  const gap = joined.gap || null;
  joined.gap = null;
  handlers.replayed(room, gap);
}

// Taken out of a room (removed, banned, deleted), or a `leave` answered.
function onLeft(conn, frame) {
  if (typeof frame.room !== "string") return;
  if (!frame.reason) {
    reply(conn); // the answer to our `leave`
    return;
  }
  conn.rooms.delete(frame.room);
  handlers.gone(frame.room, String(frame.reason));
}

// A limit answered a request (docs/protocol.md): a send waits in the outbox;
// a join or a re-auth is asked again once the wait is over; a ping was
// answered all the same (the server is there).
function onRateLimited(conn, request, frame) {
  if (request.kind === "change") {
    request.reject(changeError("rate_limited", "Too many changes at once; try again in a moment."));
    return;
  }
  if (request.kind === "message") {
    handlers.rateLimited(request, frame);
    return;
  }
  const wait = Math.max(100, Number(frame.retry_after_ms) || RETRY_MS);
  if (request.kind === "ping") {
    conn.pingSentAt = 0;
  } else if (request.kind === "join") {
    const again = () => {
      if (current !== conn) return;
      send(conn, { type: "join", room: ROOM, since: conn.since || "0-0" }, { kind: "join" });
    };
    conn.timers.push(setTimeout(again, wait));
  } else if (request.kind === "auth") {
    conn.timers.push(setTimeout(() => current === conn && reauthAgain(conn), wait));
  }
}

function onError(conn, request, frame) {
  const code = typeof frame.code === "string" ? frame.code : "error";
  const text = typeof frame.message === "string" && frame.message ? frame.message : code;
  if (request.kind === "message") {
    handlers.refused(request, code, text);
    return;
  }
  if (request.kind === "change") {
    request.reject(changeError(code, text));
    return;
  }
  if (request.kind === "join" && code === "invalid_id") {
    const state = knownRoom(request.room);
    if (state) forgetNewest(state); // not an id this server knows: start from its window
    send(conn, { type: "join", room: request.room, since: "0-0" }, request);
    return;
  }
  if (request.kind === "join") {
    conn.rooms.delete(request.room);
    if (code === "forbidden") handlers.gone(request.room, "forbidden");
    else showNotice(`Could not open ${request.room}: ${text}`, { error: true });
    return;
  }
  if (request.kind === "auth") {
    // The new token could not be checked right now; try again shortly.
    conn.timers.push(setTimeout(() => current === conn && reauthAgain(conn), RETRY_MS));
  }
  showNotice(text, { error: true });
}

function reauthAgain(conn) {
  const session = currentSession();
  if (session) send(conn, { type: "auth", token: session.token }, { kind: "auth" });
}
