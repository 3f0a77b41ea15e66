// The rooms' dialogs: create a room (public or private), browse and join
// public rooms, and a room's page: its members and their roles, invite,
// remove, ban, leave. The controls shown follow the user's role; the API
// decides (docs: README, "Rooms people own").

import { openRoom } from "./conversation.js";
import { closeButton, closeDialog, initDialogs, openDialog, show } from "./dialogs.js";
import { DEFAULT_ROOM, ROOM_RULE } from "./protocol.js";
import { active, applyListing, roomLabel, roomsChanged } from "./rooms.js";
import { apiGet, apiRequest, currentSession } from "./session.js";
import { joinRoom } from "./socket.js";
import { $, textElement } from "./ui.js";

const ROLES = ["member", "admin", "owner"];
const MANAGERS = ["owner", "admin"];
const path = (room) => `/api/rooms/${encodeURIComponent(room)}`;

// What the page does when the user leaves a room (it goes from the sidebar).
let leftRoom = () => {};

export function initRoomDialogs({ left }) {
  leftRoom = left;
  initDialogs();
  $("new-room").addEventListener("click", openNewRoom);
  $("browse-rooms").addEventListener("click", openBrowse);
  $("room-info").addEventListener("click", () => active() && openRoomInfo(active().room));
}

// A room the user is now in: listed, joined, shown.
export function enterRoom(entry) {
  const state = applyListing(entry);
  if (!state) return;
  joinRoom(state.room, "0-0");
  openRoom(state.room);
  roomsChanged(state.room);
}

// -- New room

function openNewRoom() {
  const find = openDialog("new-room-template", "new-room-title");
  const form = find("new-room-form");
  const name = find("room-name-input");
  const error = find("new-room-error");
  const create = find("create-room");
  name.focus();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const room = name.value.trim();
    if (!ROOM_RULE.test(room) || room.startsWith("dm:")) {
      show(error, "A room name is 1–64 letters, digits, _ . : - (not starting with dm:).");
      name.focus();
      return;
    }
    show(error, "");
    create.disabled = true;
    const visibility = find("room-private").checked ? "private" : "public";
    try {
      const answer = await apiRequest("POST", "/api/rooms", { room, visibility });
      closeDialog();
      enterRoom(answer.room);
    } catch (failure) {
      show(error, failure.code === "room_exists" ? `“${room}” is taken. Choose another name.` : failure.message);
      create.disabled = false;
      name.focus();
    }
  });
}

// -- Browse public rooms

function openBrowse() {
  const find = openDialog("browse-template", "browse-title");
  const list = find("browse-list");
  const status = find("browse-status");
  const more = find("browse-more");
  let cursor = null;
  const page = async () => {
    more.hidden = true;
    try {
      const query = new URLSearchParams({ scope: "public", ...(cursor && { cursor }) });
      const answer = await apiGet(`/api/rooms?${query}`);
      const entries = (Array.isArray(answer.rooms) ? answer.rooms : []).filter((e) => e && typeof e.room === "string");
      list.append(...entries.map(browseItem));
      cursor = typeof answer.next_cursor === "string" ? answer.next_cursor : null;
      more.hidden = !cursor;
      status.textContent = list.children.length ? "" : "No public rooms yet.";
    } catch (failure) {
      status.textContent = `Could not list the rooms: ${failure.message}`;
    }
  };
  more.addEventListener("click", page);
  page().then(() => {
    const first = list.isConnected && (list.querySelector("button") || closeButton());
    if (first) first.focus();
  });
}

function browseItem(entry) {
  const item = document.createElement("li");
  item.appendChild(textElement("span", "browse-name", `#${entry.title || entry.room}`));
  const button = document.createElement("button");
  button.type = "button";
  button.className = "button";
  button.textContent = entry.role ? "Open" : "Join";
  button.setAttribute("aria-label", `${button.textContent} #${entry.title || entry.room}`);
  // Joining over the socket makes the user a member (docs/protocol.md).
  button.addEventListener("click", () => {
    closeDialog();
    enterRoom({ ...entry, role: entry.role || "member" });
  });
  item.appendChild(button);
  return item;
}

// -- A room's page: about, members, invite, ban, leave

export async function openRoomInfo(room) {
  const find = openDialog("room-info-template", "room-info-title");
  const error = find("room-info-error");
  const done = find("room-info-done");
  find("room-info-title").textContent = room;
  let details;
  try {
    details = (await apiGet(path(room))).room || {};
  } catch (failure) {
    show(error, `Could not read the room: ${failure.message}`);
    return;
  }
  const state = applyListing(details);
  if (!state || !find("room-info-title")) return; // closed meanwhile
  const me = currentSession() ? currentSession().username : "";
  const role = state.role;
  const manager = MANAGERS.includes(role);
  find("room-info-title").textContent = roomLabel(state);
  const kind = { public: "Public room", private: "Private room", direct: "Direct messages" }[state.visibility] || "Room";
  find("room-info-about").textContent = role ? `${kind} · you are ${role === "member" ? "a member" : `its ${role}`}` : kind;

  const act = async (method, url, body, message) => {
    show(error, "");
    show(done, "");
    try {
      await apiRequest(method, url, body);
      show(done, message);
      return true;
    } catch (failure) {
      show(error, failure.message);
      return false;
    }
  };
  const reopen = () => openRoomInfo(room);

  if (Array.isArray(details.members) && state.visibility !== "direct") {
    find("members-section").hidden = false;
    find("member-list").replaceChildren(
      ...details.members
        .filter((m) => m && typeof m.user === "string")
        .map((member) => memberItem(member, { role, me, room, act, reopen })),
    );
  }
  const managed = manager && state.visibility !== "direct";
  if (managed && state.visibility === "private") {
    const form = find("invite-form");
    form.hidden = false;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const who = find("invite-name").value.trim();
      if (who && (await act("PUT", `${path(room)}/members/${encodeURIComponent(who)}`, {}, `${who} was invited.`))) {
        reopen();
      }
    });
  }
  if (managed) {
    const form = find("ban-form");
    form.hidden = false;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const who = find("ban-name").value.trim();
      if (who) await act("PUT", `${path(room)}/bans/${encodeURIComponent(who)}`, undefined, `${who} was banned.`);
    });
  }
  const leave = find("leave-room");
  leave.hidden = !role || state.visibility === "direct" || room === DEFAULT_ROOM;
  leave.addEventListener("click", async () => {
    if (await act("DELETE", `${path(room)}/members/${encodeURIComponent(me)}`, undefined, "")) {
      closeDialog();
      leftRoom(room, `You left ${roomLabel(state)}.`);
    }
  });
  (find("invite-form").hidden ? closeButton() : find("invite-name")).focus();
}

function memberItem(member, { role, me, room, act, reopen }) {
  const item = document.createElement("li");
  item.className = "member";
  const name = textElement("button", "user", member.user);
  name.type = "button";
  name.dataset.user = member.user;
  name.dataset.userId = String(member.user_id || "");
  name.setAttribute("aria-haspopup", "dialog");
  item.append(name, textElement("span", "member-role", member.role));
  const self = member.user === me;
  const url = `${path(room)}/members/${encodeURIComponent(member.user)}`;
  // Only the owner makes admins or hands the room over; admins manage members.
  const mayManage = !self && (role === "owner" || (role === "admin" && member.role === "member"));
  if (mayManage) {
    const select = document.createElement("select");
    select.setAttribute("aria-label", `Role of ${member.user}`);
    for (const option of role === "owner" ? ROLES : ["member"]) {
      select.appendChild(new Option(option, option, false, option === member.role));
    }
    select.addEventListener("change", async () => {
      if (await act("PUT", url, { role: select.value }, `${member.user} is now ${select.value}.`)) reopen();
    });
    const remove = textElement("button", "button button-ghost", "Remove");
    remove.type = "button";
    remove.setAttribute("aria-label", `Remove ${member.user}`);
    remove.addEventListener("click", async () => {
      if (await act("DELETE", url, undefined, `${member.user} was removed.`)) reopen();
    });
    const ban = textElement("button", "button button-ghost", "Ban");
    ban.type = "button";
    ban.setAttribute("aria-label", `Ban ${member.user}`);
    ban.addEventListener("click", async () => {
      if (await act("PUT", `${path(room)}/bans/${encodeURIComponent(member.user)}`, undefined, `${member.user} was banned.`)) {
        reopen();
      }
    });
    item.append(select, remove, ban);
  }
  return item;
}
