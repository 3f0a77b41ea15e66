// The rooms this page knows, one state each: what the API says of the room,
// its own message list (kept, detached, while another room shows, so that
// switching back paints at once, where the reader left it), its draft, its
// unread count and read cursor, who is typing and who is online.

import { DEFAULT_ROOM, compareIds, isDirect, parseId } from "./protocol.js";
import { readStorage, READ_KEY, writeStorage } from "./storage.js";

const rooms = new Map(); // room id -> state
let activeRoom = null;
let owner = ""; // whose read cursors these are (a browser may switch users)
let readCursors = {}; // room -> the newest message id read there
// Called when a room's listing, unread count or presence changes.
const listeners = new Set();

export function onRoomsChanged(listener) {
  listeners.add(listener);
}

export function roomsChanged(room) {
  for (const listener of listeners) listener(room);
}

function newState(room) {
  const list = document.createElement("ol");
  list.className = "messages";
  list.tabIndex = 0;
  list.setAttribute("aria-live", "polite");
  list.dataset.room = room;
  return {
    room,
    visibility: isDirect(room) ? "direct" : "public",
    title: "",
    role: null,
    peer: null, // a direct room's other person: {user, user_id}
    lastId: null, // the newest message id the API knew of
    lastTs: 0,
    list,
    newestId: null, // the newest message id shown: `since` of the next join
    history: { loading: false, end: false, gap: null, filling: false },
    draft: "",
    scrollTop: 0, // where the reader left the list, unless `stuck`
    stuck: true, // at the newest, and staying there as messages come (render.js)
    // Set while the list's end is behind the room's newest message (the
    // reader went far back, and the newest were dropped from the list): the
    // messages arriving meanwhile wait in `held` (history.js).
    tail: null,
    autoTop: -1, // where the page's own last scroll left the list
    unread: 0,
    mentioned: false,
    // The "new messages" divider, fixed when the room opens: above the first
    // message after readMark, or from newFrom (the first counted unread).
    readMark: null,
    newFrom: null,
    unreadFrom: null, // the first message counted in `unread`
    // The server's `unread` (GET /api/rooms) counts up to its `counted_to`:
    // only what arrives after it is counted here.
    countedTo: null,
    cursors: null, // user_id -> {read, delivered, user}: other members' cursors
    cursorsLoaded: false,
    typing: new Map(), // user_id -> {user, until}
    presence: null, // {count, online: Map user_id -> user, more} once the server says
  };
}

// The state of a room, made on first mention.
export function roomState(room) {
  let state = rooms.get(room);
  if (!state) {
    state = newState(room);
    rooms.set(room, state);
  }
  return state;
}

export function knownRoom(room) {
  return rooms.get(room) || null;
}

export function allRooms() {
  return Array.from(rooms.values());
}

export function active() {
  return rooms.get(activeRoom) || null;
}

export function setActive(room) {
  activeRoom = room;
}

export function forgetRoom(room) {
  rooms.delete(room);
  if (activeRoom === room) activeRoom = null;
}

// Signed out: nothing of the user's rooms stays, in the page or the browser.
export function forgetRooms() {
  rooms.clear();
  activeRoom = null;
  owner = "";
  readCursors = {};
  writeStorage(READ_KEY, null);
}

// A room entry of `GET /api/rooms` (or a room route's answer) into its state.
export function applyListing(entry) {
  if (!entry || typeof entry.room !== "string") return null;
  const state = roomState(entry.room);
  if (typeof entry.visibility === "string") state.visibility = entry.visibility;
  state.title = typeof entry.title === "string" ? entry.title : "";
  state.role = typeof entry.role === "string" ? entry.role : null;
  const peer = entry.with;
  if (peer && typeof peer.user === "string") state.peer = { user: peer.user, user_id: String(peer.user_id) };
  if (parseId(entry.last_id) && newer(entry.last_id, state.lastId)) {
    state.lastId = entry.last_id;
    state.lastTs = Number(entry.last_ts) || state.lastTs;
  }
  // Read state is the server's (read on another device counts); this
  // browser's cursors are only its cache. The open room is being read here.
  if (parseId(entry.read)) markRead(state, entry.read);
  if (Number.isInteger(entry.unread) && entry.unread >= 0 && activeRoom !== state.room) {
    state.unread = entry.unread;
    if (!state.unread) state.mentioned = false;
    // The id the count was read up to: newer than `last_id` while the newest
    // messages are not stored yet. None for a room quiet long enough for its
    // live window to lapse: everything in it is stored, up to `last_id`.
    const countedTo = parseId(entry.counted_to) ? entry.counted_to : entry.last_id;
    state.countedTo = parseId(countedTo) ? countedTo : state.countedTo;
  }
  return state;
}

// How a room is named to people: "#general", a title, or a direct room's other person.
export function roomLabel(state) {
  if (state.visibility === "direct") return state.peer ? `@${state.peer.user}` : "Direct message";
  return `#${state.title || state.room}`;
}

// Most recent activity first; #general first among rooms without any.
export function byActivity(a, b) {
  const ids = compareIds(parseId(b.lastId) || [0, 0], parseId(a.lastId) || [0, 0]);
  if (ids) return ids;
  if (a.room === DEFAULT_ROOM) return -1;
  if (b.room === DEFAULT_ROOM) return 1;
  return a.room < b.room ? -1 : 1;
}

// A message arrived in a room: its activity moves it up.
export function noteActivity(state, id, ts) {
  if (!newer(id, state.lastId)) return;
  state.lastId = id;
  state.lastTs = Number(ts) || state.lastTs;
}

export function newer(id, than) {
  const a = parseId(id);
  const b = parseId(than);
  return Boolean(a) && (!b || compareIds(a, b) > 0);
}

// -- read cursors: the newest message read in each room, kept per user in this browser

export function loadReadCursors(username) {
  owner = username;
  const stored = readStorage(READ_KEY);
  readCursors = stored && stored.user === username && stored.rooms && typeof stored.rooms === "object" ? stored.rooms : {};
}

export function readCursor(room) {
  const id = readCursors[room];
  return parseId(id) ? id : null;
}

// Where a room not shown is joined from, so that what comes after counts as
// unread and nothing is missed across a reconnect: its read cursor; a room
// never read here starts read at the newest message the listing knew of;
// one without any, from the start of its resume window ("0-0": all of it is new).
export function unreadSince(state) {
  if (!readCursor(state.room) && state.lastId) markRead(state, state.lastId);
  return readCursor(state.room) || "0-0";
}

// Moves only forward.
export function markRead(state, id) {
  if (!newer(id, readCursors[state.room])) return false;
  readCursors[state.room] = id;
  writeStorage(READ_KEY, { user: owner, rooms: readCursors });
  return true;
}
