// The account dialog: change the password, log out everywhere. Both end
// every session of the user on the server (and close its sockets); a password
// change answers a new session, which this browser keeps.

import { PASSWORD_MAX, PASSWORD_MIN } from "./config.js";
import { request } from "./rest.js";
import { currentSession, endSession, replaceSession } from "./session.js";
import { $ } from "./ui.js";

const openButton = $("account");
const dialog = $("account-dialog");
const closeButton = $("account-close");
const form = $("password-form");
const current = $("current-password");
const next = $("new-password");
const changeButton = $("change-password");
const error = $("password-error");
const done = $("password-done");
const everywhereButton = $("logout-everywhere");
const everywhereError = $("everywhere-error");

export function initAccount() {
  openButton.addEventListener("click", openAccount);
  closeButton.addEventListener("click", closeAccount);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    changePassword();
  });
  everywhereButton.addEventListener("click", logoutEverywhere);
  // Escape closes the modal dialog natively; focus goes back to the button.
  dialog.addEventListener("close", () => {
    resetForm();
    if (currentSession()) openButton.focus();
  });
}

function openAccount() {
  resetForm();
  $("account-username").value = currentSession() ? currentSession().username : "";
  dialog.showModal();
  current.focus();
}

export function closeAccount() {
  if (dialog.open) dialog.close();
}

function resetForm() {
  form.reset();
  show(error, "");
  show(done, "");
  show(everywhereError, "");
  setBusy(false);
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

async function changePassword() {
  const body = { current_password: current.value, new_password: next.value };
  const problem = problemWith(body.current_password, body.new_password);
  show(done, "");
  if (problem) {
    show(error, problem);
    (body.current_password ? next : current).focus();
    return;
  }
  show(error, "");
  setBusy(true);
  try {
    await replaceSession((token) => request("POST", "/api/auth/password", { token, body }));
    form.reset();
    show(done, "Password changed. Every other session has been signed out.");
  } catch (failure) {
    show(error, explain(failure));
    (failure.code === "invalid_credentials" ? current : next).focus();
  } finally {
    setBusy(false);
  }
}

async function logoutEverywhere() {
  const session = currentSession();
  if (!session) return;
  show(everywhereError, "");
  setBusy(true);
  try {
    await request("POST", "/api/auth/logout", { token: session.token, body: { everywhere: true } });
  } catch (failure) {
    // Unlike a plain logout, the point is the other devices: say it did not happen.
    show(everywhereError, `Could not log out everywhere: ${failure.message}`);
    setBusy(false);
    return;
  }
  closeAccount();
  endSession("You logged out everywhere.");
}

function setBusy(busy) {
  changeButton.disabled = busy;
  everywhereButton.disabled = busy;
  form.setAttribute("aria-busy", String(busy));
}
