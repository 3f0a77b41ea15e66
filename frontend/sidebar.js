// The rooms sidebar: the user's rooms and direct rooms, most recent activity
// first, each with its unread count; the rooms are read from `GET /api/rooms`
// at the start and now and then after (an invitation shows up there), and
// every room listed is joined on the connection. Alt+ArrowUp / Alt+ArrowDown
// switch rooms from anywhere.

import { openRoom, updateTitle } from "./conversation.js";
import { DEFAULT_ROOM } from "./protocol.js";
import {
  active,
  allRooms,
  applyListing,
  byActivity,
  knownRoom,
  onRoomsChanged,
  roomLabel,
  roomState,
  unreadSince,
} from "./rooms.js";
import { apiGet, currentSession } from "./session.js";
import { joinRoom } from "./socket.js";
import { $, textElement } from "./ui.js";

const roomList = $("room-list");
const dmList = $("dm-list");
const dmHint = $("dm-hint");
const notifyButton = $("notify");

const LISTING_PAGES = 4; // of the API's page size: the rooms a sidebar lists
// The server pushes `rooms_changed` when the user's rooms change (an
// invitation, a new direct room); the timed re-read covers a push lost to a
// reconnect.
const RELIST_MS = 30000;
const PUSHED_GAP_MS = 1000; // pushed re-reads: at most one a second, the last never dropped
let relistTimer = null;
let pushedTimer = null;
let pushedAt = 0;
let listedOnce = false; // the user's rooms were listed once in this session
let drawPending = false;

export function initSidebar() {
  onRoomsChanged(() => {
    // Many changes in one task (a replay): drawn once, before the next frame.
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => {
      drawPending = false;
      drawSidebar();
    });
  });
  for (const list of [roomList, dmList]) {
    list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-room]");
      if (button) openRoom(button.dataset.room);
    });
  }
  document.addEventListener("keydown", (event) => {
    if (!event.altKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown") || !currentSession()) return;
    event.preventDefault();
    switchBy(event.key === "ArrowUp" ? -1 : 1);
  });
  // Permission is asked only when the person chooses to.
  notifyButton.addEventListener("click", async () => {
    await Notification.requestPermission();
    updateNotifyButton();
  });
  updateNotifyButton();
}

function updateNotifyButton() {
  notifyButton.hidden = !("Notification" in window) || Notification.permission !== "default";
}

// Signed in: #general, then the user's rooms as the API lists them.
export async function startRooms() {
  roomState(DEFAULT_ROOM);
  drawSidebar();
  await relist();
}

export function stopRooms() {
  clearTimeout(relistTimer);
  clearTimeout(pushedTimer);
  pushedTimer = null;
  listedOnce = false;
  roomList.replaceChildren();
  dmList.replaceChildren();
}

// The server said the user's rooms changed: read them again, soon (a burst
// of invitations is one re-read).
export function relistSoon() {
  if (pushedTimer) return;
  const wait = Math.max(0, pushedAt + PUSHED_GAP_MS - Date.now());
  pushedTimer = setTimeout(() => {
    pushedTimer = null;
    pushedAt = Date.now();
    relist();
  }, wait);
}

// Read the user's rooms again: new ones are joined (their unread messages
// since the read cursor replayed).
export async function relist() {
  clearTimeout(relistTimer);
  const session = currentSession();
  try {
    let cursor = null;
    for (let page = 0; page < LISTING_PAGES; page += 1) {
      const answer = await apiGet(`/api/rooms${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ""}`);
      if (currentSession() !== session) return;
      for (const entry of Array.isArray(answer.rooms) ? answer.rooms : []) {
        // A room that appears after the first listing (an invitation, a
        // direct message someone else started) is new: all of it is unread.
        const fresh = listedOnce && entry && typeof entry.room === "string" && !knownRoom(entry.room);
        const state = applyListing(entry);
        if (state) joinRoom(state.room, fresh ? "0-0" : unreadSince(state));
      }
      cursor = typeof answer.next_cursor === "string" ? answer.next_cursor : null;
      if (!cursor) break;
    }
    listedOnce = true;
  } catch {
    // Offline or refused: the sidebar keeps what it has, and tries again.
  }
  if (currentSession() !== session) return;
  drawSidebar();
  relistTimer = setTimeout(relist, RELIST_MS);
}

// The rooms to join on a new connection, the one shown first.
export function roomsToJoin() {
  const shown = active();
  const ordered = allRooms().sort((a, b) => (a === shown ? -1 : b === shown ? 1 : byActivity(a, b)));
  return ordered.map((state) => ({
    room: state.room,
    since: state === shown ? "0-0" : unreadSince(state), // the shown room: its recent window
  }));
}

function switchBy(step) {
  const order = [...sorted(false), ...sorted(true)];
  const at = order.indexOf(active());
  const next = order[(at + step + order.length) % order.length];
  if (!next) return;
  openRoom(next.room);
  const button = document.querySelector(`#sidebar button[data-room="${CSS.escape(next.room)}"]`);
  if (button) button.focus();
}

function sorted(direct) {
  return allRooms()
    .filter((state) => (state.visibility === "direct") === direct)
    .sort(byActivity);
}

export function drawSidebar() {
  const focused = document.activeElement && document.activeElement.closest("#sidebar button[data-room]");
  const focusedRoom = focused ? focused.dataset.room : null;
  roomList.replaceChildren(...sorted(false).map(roomItem));
  const direct = sorted(true);
  dmList.replaceChildren(...direct.map(roomItem));
  dmHint.hidden = direct.length > 0;
  if (focusedRoom) {
    const again = document.querySelector(`#sidebar button[data-room="${CSS.escape(focusedRoom)}"]`);
    if (again) again.focus();
  }
  updateTitle();
}

function roomItem(state) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "room-link";
  button.dataset.room = state.room;
  if (state === active()) button.setAttribute("aria-current", "page");
  if (state.visibility === "private") button.classList.add("private");
  button.appendChild(textElement("span", "room-label", roomLabel(state)));
  if (state.visibility === "private") button.appendChild(textElement("span", "room-tag", "private"));
  if (state.unread && state !== active()) {
    const badge = textElement("span", state.mentioned ? "badge badge-mention" : "badge", String(state.unread));
    badge.dataset.testid = "unread";
    button.append(badge, textElement("span", "visually-hidden", state.unread === 1 ? " unread message" : " unread messages"));
    button.classList.add("has-unread");
  }
  item.appendChild(button);
  return item;
}

