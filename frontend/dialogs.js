// One modal dialog at a time for the rooms and people: its content is
// cloned from a <template> when it opens and dropped when it closes; Escape
// closes it (natively) and focus goes back where it was.

import { $ } from "./ui.js";

const dialog = $("room-dialog");
let returnFocus = null;

export function initDialogs() {
  dialog.addEventListener("close", () => {
    // The event comes after close(): the dialog may be open again meanwhile,
    // with other content (a page opened in place of another).
    if (dialog.open) return;
    dialog.replaceChildren();
    if (returnFocus && returnFocus.isConnected) returnFocus.focus();
    returnFocus = null;
  });
  dialog.addEventListener("click", (event) => {
    if (event.target.closest("[data-close]")) closeDialog();
  });
}

// Open the template `templateId`, labelled by its element `titleId`; answers
// a finder of its elements by id.
export function openDialog(templateId, titleId) {
  // In place of one open already, focus still goes back where it was before it.
  if (!dialog.open) returnFocus = document.activeElement;
  closeDialog();
  dialog.replaceChildren($(templateId).content.cloneNode(true));
  dialog.setAttribute("aria-labelledby", titleId);
  dialog.showModal();
  return (id) => dialog.querySelector(`#${id}`);
}

// The open dialog's Close (or Cancel) button.
export function closeButton() {
  return dialog.querySelector("[data-close]");
}

export function closeDialog() {
  if (dialog.open) dialog.close();
}

export function show(element, message) {
  element.textContent = message;
  element.hidden = !message;
}
