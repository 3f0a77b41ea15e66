// The sign-in view: log in, or register then log in, with the form's
// username and password.

import { PASSWORD_MAX, PASSWORD_MIN } from "./config.js";
import { postJSON } from "./rest.js";
import { sessionFrom } from "./session.js";
import { $ } from "./ui.js";

const view = $("auth-view");
const form = $("auth-form");
const username = $("username");
const password = $("password");
const loginButton = $("login");
const registerButton = $("register");
const error = $("auth-error");

// signedIn(session): what the page does with the session a login answered.
export function initLogin(signedIn) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    authenticate(false, signedIn);
  });
  registerButton.addEventListener("click", () => authenticate(true, signedIn));
}

export function showSignIn(message) {
  view.hidden = false;
  showAuthError(message || "");
  (username.value ? password : username).focus();
}

export function focusUsername() {
  username.focus();
}

export function hideSignIn() {
  view.hidden = true;
}

function credentials() {
  return { username: username.value.trim(), password: password.value };
}

function checkCredentials({ username: name, password: secret }, registering) {
  if (!name || !secret) return "Enter a username and a password.";
  if (registering) {
    if (!/^[A-Za-z0-9_.-]{3,32}$/.test(name)) {
      return "Username must be 3-32 characters: letters, digits, '_', '.', '-'";
    }
    if (secret.length < PASSWORD_MIN || secret.length > PASSWORD_MAX) {
      return `Password must be ${PASSWORD_MIN}-${PASSWORD_MAX} characters`;
    }
  }
  return null;
}

async function authenticate(registering, signedIn) {
  const creds = credentials();
  const problem = checkCredentials(creds, registering);
  if (problem) {
    showAuthError(problem);
    return;
  }
  showAuthError("");
  setAuthBusy(true, registering);
  try {
    if (registering) await postJSON("/api/auth/register", creds);
    const session = sessionFrom(await postJSON("/api/auth/login", creds));
    password.value = "";
    signedIn(session);
  } catch (failure) {
    showAuthError(failure.message || "Something went wrong.");
  } finally {
    setAuthBusy(false, registering);
  }
}

function setAuthBusy(busy, registering) {
  loginButton.disabled = busy;
  registerButton.disabled = busy;
  form.setAttribute("aria-busy", String(busy));
  loginButton.textContent = busy && !registering ? "Logging in…" : "Log in";
  registerButton.textContent = busy && registering ? "Registering…" : "Register";
}

export function showAuthError(message) {
  error.textContent = message;
  error.hidden = !message;
}
