// The account dialog: change the password, log out everywhere. Both end
// every session of the user on the server (and close its sockets); a password
// change answers a new session, which this browser keeps. The dialog's
// content is cloned from its <template> when it opens and dropped when it
// closes, so its password fields exist only while it is open.

import { PASSWORD_MAX, PASSWORD_MIN } from "./config.js";
import { request } from "./rest.js";
import { currentSession, endSession, markSignedOut, replaceSession } from "./session.js";
import { $ } from "./ui.js";

const openButton = $("account");
const dialog = $("account-dialog");
const template = $("account-template");
let parts = null; // the open dialog's elements

export function initAccount() {
  openButton.addEventListener("click", openAccount);
  // Escape closes the modal dialog natively; focus goes back to the button.
  dialog.addEventListener("close", () => {
    dialog.replaceChildren();
    parts = null;
    if (currentSession()) openButton.focus();
  });
}

function openAccount() {
  dialog.replaceChildren(template.content.cloneNode(true));
  const find = (id) => dialog.querySelector(`#${id}`);
  parts = {
    form: find("password-form"),
    current: find("current-password"),
    next: find("new-password"),
    change: find("change-password"),
    error: find("password-error"),
    done: find("password-done"),
    everywhere: find("logout-everywhere"),
    everywhereError: find("everywhere-error"),
  };
  find("account-username").value = currentSession() ? currentSession().username : "";
  find("account-close").addEventListener("click", closeAccount);
  parts.form.addEventListener("submit", (event) => {
    event.preventDefault();
    changePassword(parts);
  });
  parts.everywhere.addEventListener("click", () => logoutEverywhere(parts));
  dialog.showModal();
  parts.current.focus();
}

export function closeAccount() {
  if (dialog.open) dialog.close();
}

function show(element, message) {
  element.textContent = message;
  element.hidden = !message;
}

function problemWith(currentPassword, newPassword) {
  if (!currentPassword) return "Enter your current password.";
  if (newPassword.length < PASSWORD_MIN || newPassword.length > PASSWORD_MAX) {
    return `The new password is too weak: use ${PASSWORD_MIN} to ${PASSWORD_MAX} characters.`;
  }
  if (newPassword === currentPassword) return "The new password is the same as the current one.";
  return null;
}

// The API's refusals, in this dialog's words.
function explain(failure) {
  if (failure.code === "invalid_credentials") return "The current password is wrong.";
  if (failure.code === "invalid_password") return `The new password is too weak: ${failure.message}.`;
  if (failure.code === "rate_limited") return "Too many wrong passwords. Wait a few minutes and try again.";
  return failure.message || "Something went wrong.";
}

async function changePassword(dialogParts) {
  const { current, next, error, done } = dialogParts;
  const body = { current_password: current.value, new_password: next.value };
  const problem = problemWith(body.current_password, body.new_password);
  show(done, "");
  if (problem) {
    show(error, problem);
    (body.current_password ? next : current).focus();
    return;
  }
  show(error, "");
  setBusy(dialogParts, true);
  try {
    await replaceSession((token) => request("POST", "/api/auth/password", { token, body }));
    dialogParts.form.reset();
    show(done, "Password changed. Every other session has been signed out.");
  } catch (failure) {
    show(error, explain(failure));
    (failure.code === "invalid_credentials" ? current : next).focus();
  } finally {
    setBusy(dialogParts, false);
  }
}

async function logoutEverywhere(dialogParts) {
  const session = currentSession();
  if (!session) return;
  show(dialogParts.everywhereError, "");
  setBusy(dialogParts, true);
  const unmark = await markSignedOut(session); // before the server closes this browser's other tabs
  try {
    await request("POST", "/api/auth/logout", { token: session.token, body: { everywhere: true } });
  } catch (failure) {
    unmark();
    // Unlike a plain logout, the point is the other devices: say it did not happen.
    show(dialogParts.everywhereError, `Could not log out everywhere: ${failure.message}`);
    setBusy(dialogParts, false);
    return;
  }
  closeAccount();
  endSession("You logged out everywhere.");
}

function setBusy({ form, change, everywhere }, busy) {
  change.disabled = busy;
  everywhere.disabled = busy;
  form.setAttribute("aria-busy", String(busy));
}
