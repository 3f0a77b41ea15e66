// Messages typed but not yet acknowledged: shown at once as *Sending…*, sent
// in order on each new connection with the same client_id until the server
// stores them, kept in this tab's storage across reloads.

import { validAttachments } from "./attachments.js";
import { MAX_MESSAGES, RETRY_MS } from "./config.js";
import { messageFrame, parseId, RETRYABLE_ERRORS } from "./protocol.js";
import { advanceNewest, insertItem, renderFrame, renderMessage, setItemState } from "./render.js";
import { knownRoom, roomState } from "./rooms.js";
import { currentSession, isOwn, ownUserId } from "./session.js";
import { joinedConnection, send } from "./socket.js";
import { PENDING_KEY, readStorage, writeStorage } from "./storage.js";
import { showNotice } from "./ui.js";

// In the order typed: client_id -> {clientId, room, text, attachments, item, conn}.
// `conn` is the connection it was last sent on; a new connection resends it.
const outbox = new Map();
// Our messages already acknowledged whose broadcast has not arrived yet:
// client_id -> list item, so the broadcast updates it instead of adding one.
const echoes = new Map();
let holdUntil = 0; // after `rate_limited`, nothing is sent before this time
let holdTimer = null;
const holds = new Set(); // what the outbox waits for (see holdOutbox)

// A message shows at once, marked as sending, and stays in the outbox until
// its ack or broadcast arrives, across reconnects and reloads.
export function queueMessage(room, text, attachments, clientId) {
  const user = currentSession().username;
  const item = renderMessage({ user, userId: ownUserId() || "", text, attachments, own: true });
  item.classList.add("pending");
  item.dataset.clientId = clientId;
  setItemState(item, "Sending…");
  insertItem(roomState(room), item, true);
  outbox.set(clientId, { clientId, room, text, attachments, item, conn: null });
}

// Messages typed before a reload are still owed to the server.
export function restoreOutbox() {
  for (const { client_id: clientId, room, text, attachments } of readStorage(PENDING_KEY) || []) {
    if (typeof clientId === "string" && typeof text === "string" && typeof room === "string") {
      queueMessage(room, text, validAttachments(attachments), clientId);
    }
  }
}

export function saveOutbox() {
  const entries = Array.from(outbox.values(), (m) => ({
    client_id: m.clientId,
    room: m.room,
    text: m.text,
    attachments: m.attachments,
  }));
  writeStorage(PENDING_KEY, entries.length ? entries : null);
}

// The page leaves the session: nothing is owed any more.
export function clearOutbox() {
  outbox.clear();
  echoes.clear();
  holds.clear();
  holdUntil = 0;
  clearTimeout(holdTimer);
  writeStorage(PENDING_KEY, null);
}

// A send of ours the server stored while the page was away is among the
// messages missed, with its client_id: it is settled there, not sent again (a
// resend is deduplicated only for IDEMPOTENCY_TTL_SECONDS). So the outbox
// waits while they are read; a failed read releases it too.
export function holdOutbox(holder) {
  holds.add(holder);
}

export function releaseOutbox(holder) {
  holds.delete(holder);
  flushOutbox();
}

// Send, in the order typed, what has not been sent on this connection yet,
// to each room the connection has joined (and replayed).
export function flushOutbox() {
  if (holds.size) return;
  const wait = holdUntil - Date.now();
  if (wait > 0) {
    clearTimeout(holdTimer);
    holdTimer = setTimeout(flushOutbox, wait);
    return;
  }
  for (const message of outbox.values()) {
    const conn = joinedConnection(message.room);
    if (!conn || message.conn === conn) continue;
    message.conn = conn;
    const frame = messageFrame(message.room, message.text, message.attachments, message.clientId);
    send(conn, frame, { kind: "message", clientId: message.clientId });
  }
}

// Sent: the server stored it (`ack`, possibly a duplicate of an earlier send).
export function settle(clientId, id) {
  const message = outbox.get(clientId);
  if (!message) return null;
  outbox.delete(clientId);
  saveOutbox();
  const item = message.item;
  item.classList.remove("pending");
  setItemState(item, "");
  if (id) item.dataset.id = id;
  return item;
}

export function onAck(frame) {
  if (typeof frame.client_id !== "string") return;
  const item = settle(frame.client_id, frame.id);
  // The broadcast may still come (live or in a replay): it updates this item.
  if (item) echoes.set(frame.client_id, item);
}

export function onRateLimited(request, frame) {
  const wait = Math.max(100, Number(frame.retry_after_ms) || 1000);
  holdUntil = Date.now() + wait;
  requeue(request);
  showNotice(`You're sending too fast; retrying in ${Math.ceil(wait / 1000)} s.`);
}

// The server answered a send of ours with an `error`.
export function onRefused(request, code, text) {
  if (RETRYABLE_ERRORS.has(code)) {
    holdUntil = Date.now() + RETRY_MS;
    requeue(request);
    showNotice(`Not sent yet (${text}); retrying.`);
  } else fail(request.clientId, text);
}

// Not sent this time: send again later, with the same client_id.
function requeue(request) {
  const message = request.kind === "message" && outbox.get(request.clientId);
  if (message) message.conn = null;
  flushOutbox();
}

function fail(clientId, reason) {
  const message = outbox.get(clientId);
  if (!message) return;
  outbox.delete(clientId);
  saveOutbox();
  message.item.classList.replace("pending", "failed");
  setItemState(message.item, `Not sent: ${reason}`);
  showNotice(`Message not sent: ${reason}`, { error: true });
}

// A room we can no longer send to (removed, left): what was owed there fails.
export function dropRoom(room, reason) {
  for (const message of Array.from(outbox.values())) if (message.room === room) fail(message.clientId, reason);
}

// A `message` frame, live or replayed, into its room's list. Our own replaces
// its pending copy, so nothing shows twice. Answers whether it was new.
export function receive(frame) {
  const state = knownRoom(frame.room);
  if (!state) return false;
  const id = parseId(frame.id);
  if (id && !advanceNewest(state, frame.id)) return false;
  const own = isOwn(frame);
  const clientId = own && typeof frame.client_id === "string" ? frame.client_id : null;
  // The list's end is behind the newest (the reader is far back): it waits.
  if (state.tail && !(clientId && outbox.has(clientId))) {
    if (state.tail.held.push(frame) > MAX_MESSAGES) state.tail.held.shift();
    return true;
  }
  let item = null;
  if (clientId) {
    item = settle(clientId, frame.id) || echoes.get(clientId) || null;
    echoes.delete(clientId);
  }
  // Our own pending copy already shows (and has fetched) the attachments: keep them.
  const shown = item && item.querySelector(".attachments");
  const fresh = renderFrame(frame, { own, attachments: !shown });
  if (shown) fresh.appendChild(shown);
  if (id) fresh.dataset.id = frame.id;
  if (item) item.remove();
  insertItem(state, fresh, own);
  return true;
}
