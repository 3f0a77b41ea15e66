// The room shown: switching to it (its list, scroll position and draft come
// back as they were), what arrives in every room (unread counts, the tab's
// title, desktop notifications), the typing indicator, the online panel and
// "Jump to newest".

import { switchDraft } from "./composer.js";
import { backToNewest, scrolled, showHistoryOf } from "./history.js";
import { DEFAULT_ROOM } from "./protocol.js";
import { arrange, mentions, scrollToEnd, trimMessages } from "./render.js";
import {
  active,
  allRooms,
  knownRoom,
  markRead,
  noteActivity,
  readCursor,
  roomLabel,
  roomsChanged,
  roomState,
  setActive,
  newer,
} from "./rooms.js";
import { loadCursors, noteShown, sendRead } from "./receipts.js";
import { closeSearch } from "./search.js";
import { currentSession, isOwn } from "./session.js";
import { joinRoom } from "./socket.js";
import { PANEL_KEY, readStorage, writeStorage } from "./storage.js";
import { $, textElement } from "./ui.js";

const lists = $("lists");
const roomName = $("room-name");
const searchInput = $("search-input");
const searchLabel = $("search-label");
const jumpButton = $("jump");
const typingLine = $("typing");
const onlinePanel = $("online");
const onlineToggle = $("online-toggle");
const onlineList = $("online-list");
const onlineCount = $("online-count");
const onlineNone = $("online-none");
const roomInfoButton = $("room-info");

const AT_NEWEST_PX = 40; // this close to the bottom counts as reading the newest
const TYPING_SHOWN_MS = 6000; // a "typing" not repeated within this is over
const ONLINE_SHOWN = 50; // names listed; the count says the rest
const TITLE = document.title;
let typingTimer = null;

export function initConversation() {
  lists.addEventListener("scroll", onScroll, { capture: true, passive: true });
  lists.addEventListener("keydown", onListKey);
  jumpButton.addEventListener("click", () => {
    const state = active();
    if (!state) return;
    backToNewest(state);
    scrollToNewest(state);
    state.list.focus();
  });
  onlineToggle.addEventListener("click", () => {
    const shown = !onlinePanel.classList.contains("shown-by-choice");
    writeStorage(PANEL_KEY, shown ? "shown" : "hidden");
    applyPanelChoice(shown);
  });
  const choice = readStorage(PANEL_KEY);
  applyPanelChoice(choice ? choice === "shown" : window.matchMedia("(min-width: 1024px)").matches);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && active()) readIfAtNewest(active());
  });
}

// On wide screens the panel shows beside the conversation unless hidden; on
// narrow ones (above the messages) only when asked for.
function applyPanelChoice(shown) {
  onlinePanel.classList.toggle("shown-by-choice", shown);
  onlineToggle.setAttribute("aria-expanded", String(shown));
}

// Show a room: its own list, scrolled where the reader left it, its draft,
// its typing and online people. Joined on the connection if it is not yet.
export function openRoom(room) {
  const previous = active();
  const state = roomState(room);
  if (previous === state && state.list.isConnected) return state;
  if (previous && previous.list.isConnected) {
    sendRead(previous); // what was on screen there was read
    const list = previous.list;
    previous.scrollTop = list.scrollTop;
    list.removeAttribute("id");
    list.remove();
    trimMessages(previous); // at its newest, it keeps only the newest few
  }
  setActive(room);
  // "New messages" goes above the first message not read when the room
  // opens, and stays there while it shows; none if all was read.
  const cursor = readCursor(room);
  state.readMark = newer(state.newestId, cursor) ? cursor : null;
  state.newFrom = state.unread ? state.unreadFrom : null;
  const label = roomLabel(state);
  state.list.id = "messages";
  state.list.dataset.testid = "messages";
  state.list.setAttribute("aria-label", `Messages in ${label}`);
  arrange(state);
  lists.replaceChildren(state.list);
  if (state.stuck) scrollToEnd(state);
  else state.list.scrollTop = state.scrollTop;
  roomName.textContent = label;
  searchInput.placeholder = `Search ${label}`;
  searchLabel.textContent = `Search ${label}`;
  roomInfoButton.hidden = room === DEFAULT_ROOM;
  closeSearch();
  switchDraft(previous, state);
  joinRoom(room, state.newestId ? null : "0-0"); // nothing shown: the room's recent window
  showHistoryOf(state);
  showTyping();
  showPresence();
  updateJump(state);
  readIfAtNewest(state);
  loadCursors(state);
  noteShown();
  roomsChanged(room);
  return state;
}

// In the message list, ↑ and ↓ go from author to author (each name opens
// what can be done with that person: Enter), Home and End to the first and last.
function onListKey(event) {
  const state = active();
  if (!state || !["ArrowUp", "ArrowDown", "Home", "End"].includes(event.key)) return;
  if (event.target.closest("textarea, input")) return; // editing a message: the keys are the editor's
  const names = Array.from(state.list.querySelectorAll(".message:not(.continued) .meta .user"));
  if (!names.length) return;
  const at = names.indexOf(document.activeElement);
  if (at < 0 && (event.key === "Home" || event.key === "End")) return; // the list itself scrolls
  event.preventDefault();
  let next;
  if (event.key === "Home") next = 0;
  else if (event.key === "End") next = names.length - 1;
  else if (at < 0) next = event.key === "ArrowUp" ? names.length - 1 : 0;
  else next = Math.max(0, Math.min(names.length - 1, at + (event.key === "ArrowUp" ? -1 : 1)));
  names[next].focus();
  names[next].closest(".message").scrollIntoView({ block: "nearest" });
}

function atNewest(list) {
  return list.scrollHeight - list.scrollTop - list.clientHeight < AT_NEWEST_PX;
}

function scrollToNewest(state) {
  scrollToEnd(state);
  readIfAtNewest(state);
}

function onScroll(event) {
  const state = active();
  if (!state || event.target !== state.list) return;
  // The reader's scroll, not the page's own: at the newest or not.
  if (Math.abs(state.list.scrollTop - state.autoTop) > 1) state.stuck = !state.tail && atNewest(state.list);
  // Then, and only then, more history: what it changes is the page's own.
  scrolled(state);
  updateJump(state);
  readIfAtNewest(state);
  noteShown();
}

function updateJump(state) {
  const list = state.list;
  jumpButton.hidden = !state.tail && list.scrollHeight - list.scrollTop - list.clientHeight < list.clientHeight;
}

// The room shows, the tab is visible and the newest message is in view: all
// of it is read.
function readIfAtNewest(state) {
  if (document.visibilityState !== "visible" || state !== active() || state.tail || !atNewest(state.list)) return;
  const newest = state.newestId;
  const changed = (newest && markRead(state, newest)) || state.unread || state.mentioned;
  state.unread = 0;
  state.mentioned = false;
  if (changed) roomsChanged(state.room);
}

// A message, live or replayed, was put in its room's list.
export function arrived(frame) {
  const state = knownRoom(frame.room);
  if (!state) return;
  noteActivity(state, frame.id, frame.ts);
  if (typeof frame.user_id === "string") state.typing.delete(frame.user_id);
  if (state === active()) {
    updateJump(state);
    showTyping();
  }
  if (isOwn(frame)) {
    markRead(state, frame.id); // what one wrote is read
  } else if (newer(frame.id, readCursor(state.room)) && newer(frame.id, state.countedTo)) {
    const reading =
      state === active() && document.visibilityState === "visible" && !state.tail && atNewest(state.list);
    if (reading) markRead(state, frame.id);
    else {
      if (!state.unread) state.unreadFrom = frame.id;
      state.unread += 1;
      const mentioned = mentions(String(frame.text || ""), currentSession() ? currentSession().username : "");
      if (mentioned) state.mentioned = true;
      if (document.visibilityState !== "visible" && (state.visibility === "direct" || mentioned)) {
        notify(state, frame, mentioned);
      }
    }
  }
  roomsChanged(state.room);
}

// Unread counts in the tab's title: "(3) AuroraChat".
export function updateTitle() {
  const total = allRooms().reduce((sum, state) => sum + state.unread, 0);
  document.title = total ? `(${total > 999 ? "999+" : total}) ${TITLE}` : TITLE;
}

// -- desktop notifications: for direct messages and mentions, while the tab is hidden

function notify(state, frame, mentioned) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const who = typeof frame.user === "string" ? frame.user : "Someone";
  const title = mentioned && state.visibility !== "direct" ? `${who} in ${roomLabel(state)}` : who;
  const text = typeof frame.text === "string" && frame.text ? frame.text : "sent a file";
  try {
    const shown = new Notification(title, { body: text.slice(0, 200), tag: state.room });
    shown.addEventListener("click", () => {
      window.focus();
      openRoom(state.room);
      shown.close();
    });
  } catch {
    // Some browsers only notify from a service worker: the badge and title still tell.
  }
}

// -- typing: "Ana is typing…", "Ana and Ben are typing…", "Several people are typing…"

export function typingFrame(frame) {
  const state = knownRoom(frame.room);
  if (!state || typeof frame.user_id !== "string" || isOwn(frame)) return;
  if (frame.typing === true) {
    const user = typeof frame.user === "string" ? frame.user : "Someone";
    state.typing.set(frame.user_id, { user, until: Date.now() + TYPING_SHOWN_MS });
  } else state.typing.delete(frame.user_id);
  if (state === active()) showTyping();
}

export function typingText(names) {
  if (!names.length) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  if (names.length === 3) return `${names[0]}, ${names[1]} and ${names[2]} are typing…`;
  return "Several people are typing…";
}

function showTyping() {
  clearTimeout(typingTimer);
  const state = active();
  if (!state) {
    typingLine.textContent = "";
    return;
  }
  const now = Date.now();
  for (const [id, entry] of state.typing) if (entry.until <= now) state.typing.delete(id);
  typingLine.textContent = typingText(Array.from(state.typing.values(), (entry) => entry.user));
  if (state.typing.size) {
    const next = Math.min(...Array.from(state.typing.values(), (entry) => entry.until)) - now;
    typingTimer = setTimeout(showTyping, Math.max(100, next));
  }
}

// -- presence (docs/protocol.md): a snapshot after `joined`, then changes

export function presenceFrame(frame) {
  const state = knownRoom(frame.room);
  if (!state) return;
  const person = (entry) => entry && typeof entry.user === "string" && typeof entry.user_id === "string";
  if (Array.isArray(frame.online)) {
    const online = new Map();
    for (const entry of frame.online.filter(person)) online.set(entry.user_id, entry.user);
    state.presence = { count: Number(frame.count) || online.size, online, more: frame.more === true };
  } else if (person(frame)) {
    const presence = state.presence || { count: 0, online: new Map(), more: false };
    if (frame.status === "online") presence.online.set(frame.user_id, frame.user);
    else if (frame.status === "offline") presence.online.delete(frame.user_id);
    presence.count = Number.isFinite(Number(frame.count)) ? Number(frame.count) : presence.online.size;
    state.presence = presence;
  } else return;
  if (state === active()) showPresence();
}

function showPresence() {
  const state = active();
  const presence = state && state.presence;
  onlineNone.hidden = Boolean(presence);
  onlineCount.textContent = presence ? `(${presence.count})` : "";
  if (!presence) {
    onlineList.replaceChildren();
    return;
  }
  const names = Array.from(presence.online.entries())
    .sort((a, b) => a[1].localeCompare(b[1]))
    .slice(0, ONLINE_SHOWN);
  onlineList.replaceChildren(
    ...names.map(([userId, user]) => {
      const item = document.createElement("li");
      const name = textElement("button", "user", user);
      name.type = "button";
      name.dataset.user = user;
      name.dataset.userId = userId;
      name.setAttribute("aria-haspopup", "dialog");
      item.appendChild(name);
      return item;
    }),
  );
  const rest = presence.count - names.length;
  if (rest > 0) onlineList.appendChild(textElement("li", "hint", `and ${rest} more`));
}

// The page left the session: nothing of the rooms stays shown.
export function clearConversation() {
  lists.replaceChildren();
  typingLine.textContent = "";
  onlineList.replaceChildren();
  onlineCount.textContent = "";
  onlineNone.hidden = false;
  jumpButton.hidden = true;
  document.title = TITLE;
}
