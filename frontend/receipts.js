// Delivered and read (docs/protocol.md, "Delivered and read"). The page sends
// `delivered` in batches (the newest message received in each room, at most
// once a second) and `read` for the newest message that has really been on
// screen while the tab is visible: an IntersectionObserver watches every
// message row, so a row that comes into view with no scroll (an image
// loading, the window growing) counts, and one that never showed does not.
// The server never answers either, so they never disturb the matching of
// replies to requests. Other members' cursors come back as
// `receipt` frames: in a direct room each of my messages shows Sent ->
// Delivered -> Read; in a small room (cursors listed: up to 100 readers) a
// message's actions have "Seen by N", opening the list of their names.

import { compareIds, isDirect, parseId } from "./protocol.js";
import { knownRoom, markRead } from "./rooms.js";
import { apiGet, isOwn, ownUserId } from "./session.js";
import { joinedConnection, send } from "./socket.js";

const INTERVAL_MS = 1000;
const SEEN_BY_SHOWN = 20; // names in a "Seen by" list; the rest counted
let timer = null;
const sentRead = new Map(); // room -> the id last sent as read
const received = new Map(); // room -> the newest id received from others
const sentDelivered = new Map(); // room -> the id last sent as delivered
// A room's message list -> the newest id on screen there while the tab was
// visible (keyed by the list: a new sign-in has new lists, nothing carried over).
const seen = new Map();
const onScreen = new Set(); // message rows in view now (the tab visible or not)
// Half a row in view, or a tall row filling half the view: seen.
const SEEN_RATIO = 0.5;
const THRESHOLDS = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];
let rows = null; // the IntersectionObserver
// Rooms whose readers' cursors the server listed: small enough (up to 100
// readers) for "Seen by"; in others live receipts alone would name a few.
const listed = new WeakSet();

export function initReceipts() {
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") flush(); // what arrived is delivered
    else for (const row of onScreen) see(row); // in view all along: seen now
  });
  // The implicit root: a row counts as in view only where the message
  // list's own scrolling (and the window) leaves it visible.
  rows = new IntersectionObserver(onRowsMoved, { threshold: THRESHOLDS });
  const lists = document.getElementById("lists");
  new MutationObserver(onListsChanged).observe(lists, { childList: true, subtree: true });
}

// Rows come and go (a room shown, messages arriving, history loaded or
// dropped): watch every message row in the page, and no other.
function onListsChanged(records) {
  for (const record of records) {
    for (const node of record.addedNodes) eachRow(node, (row) => rows.observe(row));
    for (const node of record.removedNodes) {
      eachRow(node, (row) => {
        rows.unobserve(row);
        onScreen.delete(row);
      });
    }
  }
}

function eachRow(node, action) {
  if (node.nodeType !== Node.ELEMENT_NODE) return;
  if (node.matches(".message")) action(node);
  for (const row of node.querySelectorAll(".message")) action(row);
}

function onRowsMoved(entries) {
  for (const entry of entries) {
    const view = entry.rootBounds;
    const shown =
      entry.isIntersecting &&
      (entry.intersectionRatio >= SEEN_RATIO ||
        (view !== null && entry.intersectionRect.height >= view.height * SEEN_RATIO));
    if (shown) {
      onScreen.add(entry.target);
      see(entry.target);
    } else onScreen.delete(entry.target);
  }
}

// A row really on screen, the tab visible: its message counts as seen.
function see(row) {
  if (document.visibilityState !== "visible" || !row.isConnected) return;
  const id = row.dataset.id;
  const list = row.closest("ol.messages");
  if (!list || !parseId(id) || !later(id, seen.get(list))) return;
  seen.set(list, id);
  noteShown();
}

// Something new is shown (or the page is seen again, or scrolled): send soon.
export function noteShown() {
  if (timer === null) timer = setTimeout(flush, INTERVAL_MS);
}

// A message of someone else's reached this page: delivered, in the next batch.
export function noteReceived(frame) {
  if (isOwn(frame) || !parseId(frame.id)) return;
  if (later(frame.id, received.get(frame.room))) received.set(frame.room, frame.id);
  noteShown();
}

function later(id, than) {
  const a = parseId(id);
  const b = parseId(than);
  return Boolean(a) && (!b || compareIds(a, b) > 0);
}

function flush() {
  timer = null;
  for (const [room, id] of received) {
    const conn = joinedConnection(room);
    if (!conn || !later(id, sentDelivered.get(room))) continue;
    send(conn, { type: "delivered", room, id });
    sentDelivered.set(room, id);
  }
  for (const list of seen.keys()) {
    const state = knownRoom(list.dataset.room);
    if (state && state.list === list) sendRead(state);
    else seen.delete(list); // a room forgotten (left, removed, signed out)
  }
}

// The newest message of the room seen on screen, as `read` (also when the
// reader leaves the room: what was seen there was read).
export function sendRead(state) {
  const id = seen.get(state.list);
  const conn = joinedConnection(state.room);
  if (!conn || !id || !later(id, sentRead.get(state.room))) return;
  send(conn, { type: "read", room: state.room, id });
  sentRead.set(state.room, id);
  markRead(state, id);
}

// -- other members' cursors

// A `receipt` frame: that member's cursors in the room, now.
export function receiptFrame(frame) {
  const state = knownRoom(frame.room);
  if (!state || typeof frame.user_id !== "string") return;
  remember(state, frame.user_id, frame.read, frame.delivered, frame.user);
  if (isDirect(state.room)) labelDirect(state);
}

function remember(state, userId, read, delivered, user = null) {
  state.cursors = state.cursors || new Map();
  const known = state.cursors.get(userId) || {};
  state.cursors.set(userId, {
    read: parseId(read) ? read : known.read || null,
    delivered: parseId(delivered) ? delivered : known.delivered || null,
    user: typeof user === "string" ? user : known.user || null,
  });
}

// A room opened: its members' cursors read once (rooms of up to 100 readers).
export async function loadCursors(state) {
  if (state.cursorsLoaded) return;
  state.cursorsLoaded = true;
  try {
    const answer = await apiGet(`/api/rooms/${encodeURIComponent(state.room)}/receipts`);
    for (const entry of Array.isArray(answer) ? answer : answer.receipts || []) {
      if (entry && typeof entry.user_id === "string") remember(state, entry.user_id, entry.read, entry.delivered);
    }
    listed.add(state);
  } catch {
    // Too large a room, or offline: live receipts still come.
  }
  if (isDirect(state.room)) labelDirect(state);
}

// In a direct room: each of my messages Sent, Delivered or Read, from the
// other member's cursors.
export function labelDirect(state) {
  if (!isDirect(state.room)) return;
  const me = ownUserId();
  let peer = null;
  for (const [userId, cursor] of state.cursors || []) if (userId !== me) peer = cursor;
  for (const item of state.list.querySelectorAll(".message.own[data-id]:not(.deleted)")) {
    const id = parseId(item.dataset.id);
    let stage = "Sent";
    if (peer && parseId(peer.read) && compareIds(parseId(peer.read), id) >= 0) stage = "Read";
    else if (peer && parseId(peer.delivered) && compareIds(parseId(peer.delivered), id) >= 0) stage = "Delivered";
    let label = item.querySelector(".receipt-state");
    if (!label) {
      label = document.createElement("span");
      label.className = "receipt-state";
      item.querySelector(".meta").appendChild(label);
    }
    if (label.textContent !== stage) label.textContent = stage;
  }
}

// The members (not me) whose read cursor is at or past a message of a room
// (not a direct one) whose cursors are known; null when they are not.
export function seenBy(state, id) {
  const at = parseId(id);
  if (!at || !state.cursors || !listed.has(state) || isDirect(state.room)) return null;
  const names = [];
  const me = ownUserId();
  for (const [userId, cursor] of state.cursors) {
    if (userId === me || !parseId(cursor.read) || compareIds(parseId(cursor.read), at) < 0) continue;
    names.push(cursor.user || nameOf(state, userId) || "someone");
  }
  return names.sort((a, b) => a.localeCompare(b));
}

// "Seen by N" opens, under the message, the list of their names: focus moves
// into it (a screen reader reads "Seen by, list, N items"); Escape, the
// button again or a click elsewhere closes it, focus back on the button.
export function toggleSeenBy(state, item, button) {
  const open = item.querySelector(".seen-by");
  closeSeenBy();
  if (open) return;
  const names = seenBy(state, item.dataset.id) || [];
  const box = document.createElement("div");
  box.className = "seen-by";
  box.id = `seen-by-${item.dataset.id}`;
  box.setAttribute("aria-live", "off"); // the list is a live region: this is not news
  const list = document.createElement("ul");
  list.tabIndex = -1;
  list.setAttribute("aria-label", "Seen by");
  for (const name of names.slice(0, SEEN_BY_SHOWN)) {
    const entry = document.createElement("li");
    entry.textContent = name;
    list.appendChild(entry);
  }
  if (names.length > SEEN_BY_SHOWN) {
    const more = document.createElement("li");
    more.textContent = `and ${names.length - SEEN_BY_SHOWN} more`;
    list.appendChild(more);
  }
  if (!names.length) {
    const none = document.createElement("li");
    none.textContent = "Nobody yet";
    list.appendChild(none);
  }
  box.appendChild(list);
  button.setAttribute("aria-expanded", "true");
  button.setAttribute("aria-controls", box.id);
  item.classList.add("picking"); // keeps the bar shown while the list is open
  item.appendChild(box);
  list.focus();
}

// `focus`: back to its "Seen by" button.
export function closeSeenBy({ focus = false } = {}) {
  for (const box of document.querySelectorAll("#lists .seen-by")) {
    const item = box.closest(".message");
    const button = item.querySelector('.actions [data-action="seen"]');
    if (button) button.setAttribute("aria-expanded", "false");
    if (button && focus) button.focus();
    item.classList.remove("picking");
    box.remove();
  }
}

function nameOf(state, userId) {
  if (state.presence && state.presence.online.has(userId)) return state.presence.online.get(userId);
  const author = state.list.querySelector(`.user[data-user-id="${CSS.escape(userId)}"]`);
  return author ? author.dataset.user : null;
}
