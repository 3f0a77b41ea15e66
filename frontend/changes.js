// What happens to a message after it is sent: edits, deletes and reactions
// (docs/protocol.md, "Changing a message"), live and in history, shown on the
// message's list item.

import { appendLinkedText, shownItem } from "./render.js";
import { knownRoom } from "./rooms.js";

// An `edit`, `delete` or `react` frame: the message it names, if shown, changes.
// One not shown (older than what is loaded) is read from history when loaded.
export function applyChange(frame) {
  const state = knownRoom(frame.room);
  const item = state && typeof frame.message_id === "string" ? shownItem(state, frame.message_id) : null;
  if (!item || item.classList.contains("deleted")) return;
  if (frame.type === "delete") showDeleted(item);
  else if (frame.type === "edit" && typeof frame.text === "string") showEdited(item, frame.text);
  else if (frame.type === "react" && Array.isArray(frame.reactions)) showReactions(item, frame.reactions);
}

// A stored message's state (its history form) on its freshly rendered item.
export function showStoredState(item, message) {
  if (message.deleted) showDeleted(item);
  else {
    if (message.edited_at) markEdited(item);
    if (Array.isArray(message.reactions)) showReactions(item, message.reactions);
  }
}

function showDeleted(item) {
  item.classList.add("deleted");
  const text = item.querySelector(".text");
  if (text) text.textContent = "Message deleted";
  for (const gone of item.querySelectorAll(".attachments, .reactions")) gone.remove();
}

function showEdited(item, text) {
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

// [{emoji, count}] as "👍 2  🎉 1" under the text (none: nothing shown).
function showReactions(item, reactions) {
  let line = item.querySelector(".reactions");
  const shown = reactions.filter((r) => typeof r.emoji === "string" && Number(r.count) > 0);
  if (!shown.length) {
    if (line) line.remove();
    return;
  }
  if (!line) {
    line = document.createElement("p");
    line.className = "reactions";
    item.appendChild(line);
  }
  line.textContent = shown.map((r) => `${r.emoji} ${Number(r.count)}`).join("  ");
}
