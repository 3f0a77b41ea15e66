// What a reader can do to a message (docs/protocol.md, "Changing a message"):
// "React" on every message, opening a picker of emoji; "Edit" and "Delete" on
// their own, and "Delete" on others' for a room's owner and admins. The bar
// is built when a message is hovered or focused (a list of thousands keeps
// no buttons it does not show); from a focused author name, → reaches it.
// A change goes over the WebSocket; one the fan-out cannot check (`use_rest`:
// older than the resume window) or made while offline goes to its REST twin.

import { isMine, reactedHere, showDeleted, showEdited } from "./changes.js";
import { closeDialog, openDialog } from "./dialogs.js";
import { closeSeenBy, seenBy, toggleSeenBy } from "./receipts.js";
import { active } from "./rooms.js";
import { apiRequest } from "./session.js";
import { sendChange } from "./socket.js";
import { $, showNotice } from "./ui.js";

export const REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "😢", "👀", "✅"];

const lists = $("lists");

// Who may delete a message: its author, or the room's owner and admins (the
// server's rule is aurora.changes.may_delete; it has the last word).
export function mayDelete(state, item) {
  return item.classList.contains("own") || state.role === "owner" || state.role === "admin";
}

export function initActions() {
  lists.addEventListener("pointerover", (event) => offerActions(event.target));
  lists.addEventListener("focusin", (event) => offerActions(event.target));
  lists.addEventListener("click", onClick);
  lists.addEventListener("keydown", onKey);
  document.addEventListener("pointerdown", (event) => {
    if (event.target.closest(".picker, .seen-by, .actions")) return;
    closePicker();
    closeSeenBy();
  });
}

// A message that can change, with no bar yet (or one made for another role).
function offerActions(target) {
  const state = active();
  const item = target.closest && target.closest(".message[data-id]");
  if (!state || !item || item.classList.contains("deleted") || item.querySelector(".editor")) return;
  const kinds = ["React"];
  if (item.classList.contains("own")) kinds.push("Edit");
  if (mayDelete(state, item)) kinds.push("Delete");
  const seen = seenBy(state, item.dataset.id); // null: a direct room, or too large a one
  if (seen && seen.length) kinds.push(`Seen by ${seen.length}`);
  const bar = item.querySelector(".actions");
  // Never rebuilt under an open picker or list: their buttons say they are open.
  if (bar && (bar.dataset.kinds === kinds.join() || item.querySelector(".picker, .seen-by"))) return;
  const fresh = document.createElement("div");
  fresh.className = "actions";
  fresh.setAttribute("role", "group");
  fresh.setAttribute("aria-label", "Message actions");
  fresh.setAttribute("aria-live", "off"); // the list is a live region: controls are not news
  fresh.dataset.kinds = kinds.join();
  for (const kind of kinds) {
    const button = document.createElement("button");
    button.type = "button";
    button.tabIndex = -1; // reached with the arrow keys: the list is the tab stop
    button.dataset.action = kind.startsWith("Seen by") ? "seen" : kind.toLowerCase();
    button.textContent = kind;
    if (kind === "React") button.setAttribute("aria-haspopup", "true");
    if (kind.startsWith("Seen by")) button.setAttribute("aria-expanded", "false");
    fresh.appendChild(button);
  }
  if (bar) bar.replaceWith(fresh);
  else item.querySelector(".meta").after(fresh);
}

function onClick(event) {
  const state = active();
  const item = event.target.closest(".message[data-id]");
  if (!state || !item) return;
  const action = event.target.closest(".actions button");
  const emoji = event.target.closest(".picker button");
  const chip = event.target.closest(".reactions .chip");
  if (action && action.dataset.action === "edit") openEditor(item);
  else if (action && action.dataset.action === "delete") confirmDelete(state, item);
  else if (action && action.dataset.action === "react") togglePicker(item, action);
  else if (action && action.dataset.action === "seen") toggleSeenBy(state, item, action);
  else if (emoji) {
    closePicker({ focus: true });
    react(state, item, emoji.dataset.emoji, !isMine(item, emoji.dataset.emoji));
  } else if (chip) react(state, item, chip.dataset.emoji, !isMine(item, chip.dataset.emoji));
}

function onKey(event) {
  const editor = event.target.closest(".editor");
  if (editor) {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      closeEditor(editor.closest(".message"), { focus: true });
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      saveEdit(editor.closest(".message"), editor);
    }
    return;
  }
  if (event.key === "Escape" && event.target.closest(".picker")) {
    event.stopPropagation();
    closePicker({ focus: true });
    return;
  }
  if (event.key === "Escape" && event.target.closest(".seen-by")) {
    event.stopPropagation();
    closeSeenBy({ focus: true });
    return;
  }
  // ← and → move along the message's controls: its name, its actions, its
  // reaction chips.
  if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
  const item = event.target.closest(".message[data-id]");
  if (!item || !event.target.matches("button")) return;
  offerActions(item);
  const row = Array.from(item.querySelectorAll(".meta .user, .actions button, .picker button, .reactions .chip"));
  const at = row.indexOf(event.target);
  if (at < 0) return;
  const next = row[at + (event.key === "ArrowRight" ? 1 : -1)];
  if (!next) return;
  event.preventDefault();
  next.focus();
}

// -- the reaction picker: one open at a time, under the message it is for

function togglePicker(item, button) {
  const open = item.querySelector(".picker");
  closePicker();
  if (open) return;
  const picker = document.createElement("div");
  picker.className = "picker";
  picker.setAttribute("role", "group");
  picker.setAttribute("aria-label", "Reactions");
  picker.setAttribute("aria-live", "off");
  for (const emoji of REACTIONS) {
    const choice = document.createElement("button");
    choice.type = "button";
    choice.tabIndex = -1;
    choice.dataset.emoji = emoji;
    choice.textContent = emoji; // named by the emoji alone
    picker.appendChild(choice);
  }
  item.classList.add("picking");
  button.setAttribute("aria-expanded", "true");
  item.appendChild(picker); // under the text and the chips
  picker.querySelector("button").focus();
}

// `focus`: back to its React button, moved there before the picker goes
// (focus inside the message is what keeps the bar shown).
function closePicker({ focus = false } = {}) {
  for (const picker of lists.querySelectorAll(".picker")) {
    const item = picker.closest(".message");
    const button = item.querySelector('.actions [data-action="react"]');
    if (button) button.setAttribute("aria-expanded", "false");
    if (button && focus) button.focus();
    item.classList.remove("picking");
    picker.remove();
  }
}

// -- the inline editor: the text selected and focused; Enter saves, Escape cancels

function openEditor(item) {
  const body = item.querySelector(".text");
  if (!body || item.querySelector(".editor")) return;
  const editor = document.createElement("textarea");
  editor.className = "editor";
  editor.setAttribute("aria-label", "Edit message");
  editor.maxLength = 4000;
  editor.rows = Math.min(8, body.textContent.split("\n").length + 1);
  editor.value = body.textContent; // the text as typed: links and marks are text nodes inside
  body.hidden = true;
  item.querySelector(".actions")?.remove();
  body.after(editor);
  editor.focus();
  editor.select();
}

function closeEditor(item, { focus = false } = {}) {
  const editor = item.querySelector(".editor");
  if (editor) editor.remove();
  const body = item.querySelector(".text");
  if (body) body.hidden = false;
  if (focus) {
    // Focus left with the editor: the bar is held shown until it is back.
    item.classList.add("actions-held");
    offerActions(item);
    const edit = item.querySelector('.actions [data-action="edit"]');
    if (edit) edit.focus();
    item.classList.remove("actions-held");
  }
}

async function saveEdit(item, editor) {
  const state = active();
  const text = editor.value;
  const before = item.querySelector(".text").textContent;
  if (!text.trim()) {
    showNotice("A message cannot be empty: delete it instead.", { error: true });
    return;
  }
  closeEditor(item, { focus: true });
  if (text === before || !state) return;
  const id = item.dataset.id;
  const done = await change(
    { type: "edit", room: state.room, id, text },
    () => apiRequest("PATCH", messagePath(state.room, id), { text }),
  );
  if (done) showEdited(item, text);
}

// A delete is for everyone and cannot be undone: asked first, in a dialog
// focused on its Delete button (Enter confirms, Escape or Cancel keeps the
// message, and focus goes back to the message's actions).
const QUOTED_CHARS = 280;

function confirmDelete(state, item) {
  const find = openDialog("delete-template", "delete-title");
  const name = item.querySelector(".meta .user");
  const author = (name && name.dataset.user) || "";
  find("delete-about").textContent = item.classList.contains("own")
    ? "Your message will be removed for everyone in this room."
    : `${author || "This person"}'s message will be removed for everyone in this room.`;
  const text = (item.querySelector(".text") || {}).textContent || "";
  find("delete-quote").textContent = text.length > QUOTED_CHARS ? `${text.slice(0, QUOTED_CHARS)}…` : text;
  find("delete-confirm").focus();
  // The bar stays shown while the dialog is open, so that focus can come back
  // to its Delete (a hidden button cannot take focus).
  item.classList.add("picking");
  $("room-dialog").addEventListener("close", () => item.classList.remove("picking"), { once: true });
  find("delete-form").addEventListener("submit", (event) => {
    event.preventDefault();
    closeDialog();
    if (item.isConnected && !item.classList.contains("deleted")) remove(state, item);
  });
}

async function remove(state, item) {
  const id = item.dataset.id;
  const done = await change({ type: "delete", room: state.room, id }, () =>
    apiRequest("DELETE", messagePath(state.room, id)),
  );
  if (done) {
    showDeleted(item);
    state.list.focus();
  }
}

async function react(state, item, emoji, on) {
  const id = item.dataset.id;
  const path = `${messagePath(state.room, id)}/reactions/${encodeURIComponent(emoji)}`;
  const done = await change({ type: "react", room: state.room, id, emoji, on }, () =>
    apiRequest(on ? "PUT" : "DELETE", path),
  );
  if (done) reactedHere(item, emoji, on);
}

function messagePath(room, id) {
  return `/api/rooms/${encodeURIComponent(room)}/messages/${encodeURIComponent(id)}`;
}

const REFUSALS = {
  forbidden: "You may not change that message.",
  deleted: "That message was deleted.",
  not_found: "That message no longer exists.",
  rate_limited: "Too many changes at once; try again in a moment.",
};

// Over the socket, else its REST twin; a refusal is said in a notice.
// Answers whether the change was made.
async function change(frame, overRest) {
  try {
    try {
      await sendChange(frame);
    } catch (error) {
      if (error.code !== "use_rest" && error.code !== "offline") throw error;
      await overRest();
    }
    return true;
  } catch (error) {
    showNotice(REFUSALS[error.code] || `Not changed: ${error.message}`, { error: true });
    return false;
  }
}
