// What happens to a message after it is sent: edits, deletes and reactions
// (docs/protocol.md, "Changing a message"), live and in history, shown on the
// message's list item. Reactions show as chips ("👍 2"), the reader's own
// pressed: history says which are theirs (`me`); live frames give counts
// only, so the reader's own adds and removes are tracked as they come.

import { appendLinkedText, shownItem } from "./render.js";
import { knownRoom } from "./rooms.js";
import { isOwn } from "./session.js";

// "room/message id" -> the emoji the reader has on that message.
const mine = new Map();

// An `edit`, `delete` or `react` frame: the message it names, if shown, changes.
// One not shown (older than what is loaded, or dropped while the reader is
// far back) is read from history when loaded.
export function applyChange(frame) {
  const state = knownRoom(frame.room);
  if (!state || typeof frame.message_id !== "string") return;
  if (frame.type === "react" && isOwn(frame) && typeof frame.emoji === "string") {
    noteMine(frame.room, frame.message_id, frame.emoji, frame.on === true);
  }
  const item = shownItem(state, frame.message_id);
  if (!item) changeHeld(state, frame); // waiting while the reader is far back
  if (!item || item.classList.contains("deleted")) return;
  if (frame.type === "delete") showDeleted(item);
  else if (frame.type === "edit" && typeof frame.text === "string") showEdited(item, frame.text);
  else if (frame.type === "react" && Array.isArray(frame.reactions)) showReactions(item, frame.reactions);
}

// A message that arrived while the reader was far back waits as its frame
// (render.js, `tail`): the frame takes the change, and shows it when it goes in.
function changeHeld(state, change) {
  const frame = state.tail && state.tail.held.find((held) => held.id === change.message_id);
  if (!frame || frame.deleted) return;
  if (change.type === "delete") Object.assign(frame, { deleted: true, text: "", attachments: [], reactions: [] });
  else if (change.type === "edit" && typeof change.text === "string") {
    Object.assign(frame, { text: change.text, edited_at: change.ts || true });
  } else if (change.type === "react" && Array.isArray(change.reactions)) frame.reactions = change.reactions;
}

// A stored message's state (its history form) on its freshly rendered item.
export function showStoredState(item, message, room) {
  if (message.deleted) showDeleted(item);
  else {
    if (message.edited_at) markEdited(item);
    if (Array.isArray(message.reactions)) {
      for (const r of message.reactions) {
        if (typeof r.emoji === "string" && typeof r.me === "boolean") noteMine(room, message.id, r.emoji, r.me);
      }
      showReactions(item, message.reactions, room);
    }
  }
}

function noteMine(room, id, emoji, on) {
  const key = `${room}/${id}`;
  const set = mine.get(key) || new Set();
  if (on) set.add(emoji);
  else set.delete(emoji);
  if (set.size) mine.set(key, set);
  else mine.delete(key);
}

// Whether the reader has `emoji` on the message of `item`.
export function isMine(item, emoji) {
  const set = mine.get(`${item.closest(".messages").dataset.room}/${item.dataset.id}`);
  return Boolean(set && set.has(emoji));
}

// The reader added or removed a reaction and the server took it: counts
// come with the broadcast, the pressed state at once.
export function reactedHere(item, emoji, on) {
  noteMine(item.closest(".messages").dataset.room, item.dataset.id, emoji, on);
  const chip = Array.from(item.querySelectorAll(".reactions .chip")).find((c) => c.dataset.emoji === emoji);
  if (chip) chip.setAttribute("aria-pressed", String(on));
}

export function showDeleted(item) {
  item.classList.add("deleted");
  const text = item.querySelector(".text");
  if (text) text.textContent = "Message deleted";
  for (const gone of item.querySelectorAll(".attachments, .reactions, .actions, .editor")) gone.remove();
  if (text) text.hidden = false;
}

export function showEdited(item, text) {
  const body = item.querySelector(".text");
  if (!body) return;
  body.textContent = "";
  appendLinkedText(body, text);
  markEdited(item);
}

function markEdited(item) {
  const meta = item.querySelector(".meta");
  if (!meta || meta.querySelector(".edited")) return;
  const label = document.createElement("span");
  label.className = "edited";
  label.textContent = "edited";
  meta.appendChild(label);
}

// [{emoji, count}] as chips under the text, each a button that toggles the
// reader's own (none: nothing shown).
function showReactions(item, reactions, room = null) {
  let line = item.querySelector(".reactions");
  const shown = reactions.filter((r) => typeof r.emoji === "string" && Number(r.count) > 0);
  if (!shown.length) {
    if (line) line.remove();
    return;
  }
  if (!line) {
    line = document.createElement("div");
    line.className = "reactions";
    item.appendChild(line);
  }
  const roomId = room || item.closest(".messages")?.dataset.room;
  const have = mine.get(`${roomId}/${item.dataset.id}`);
  line.replaceChildren(
    ...shown.map((r) => {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "chip";
      chip.tabIndex = -1;
      chip.dataset.emoji = r.emoji;
      chip.setAttribute("aria-pressed", String(Boolean(have && have.has(r.emoji))));
      chip.textContent = `${r.emoji} ${Number(r.count)}`;
      return chip;
    }),
  );
}
