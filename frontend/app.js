// AuroraChat browser client: native ES modules, no build step. It speaks
// protocol v1 (docs/protocol.md); this module wires the others together and
// starts and ends the page's session. Message data is only ever rendered with
// textContent, never as HTML.

import { closeAccount, initAccount } from "./account.js";
import { applyChange } from "./changes.js";
import { initComposer, focusComposer, resetComposer } from "./composer.js";
import { loadConfig } from "./config.js";
import { initHistory, resetHistory, startGapFill } from "./history.js";
import { focusUsername, hideSignIn, initLogin, showAuthError, showSignIn } from "./login.js";
import { clearOutbox, flushOutbox, onAck, onRateLimited, onRefused, receive, restoreOutbox } from "./outbox.js";
import { noteShown } from "./receipts.js";
import { clearList } from "./render.js";
import { request } from "./rest.js";
import { closeSearch, initSearch } from "./search.js";
import {
  beginSession,
  currentSession,
  endSession,
  expired,
  forgetSession,
  saveSession,
  scheduleRefresh,
  setSessionHooks,
  storedSession,
  useToken,
} from "./session.js";
import { disconnect, reauth, reconnectNow, setFrameHandlers, startConnecting } from "./socket.js";
import { SESSION_KEY } from "./storage.js";
import { initTheme } from "./theme.js";
import { $, hideNotice, setStatus } from "./ui.js";

const chatView = $("chat-view");
const sessionBar = $("session");
const whoami = $("whoami");
const logoutButton = $("logout");

function startSession(session) {
  if (expired(session) && !session.refreshToken) {
    endSession("Your session has expired. Please log in again.");
    return;
  }
  beginSession(session);
  whoami.textContent = session.username;
  hideSignIn();
  chatView.hidden = false;
  sessionBar.hidden = false;
  restoreOutbox();
  startConnecting();
  focusComposer();
}

// This tab leaves the session, ended here or in another tab.
function leaveSession(message) {
  forgetSession();
  closeAccount();
  disconnect();
  clearList();
  clearOutbox();
  resetHistory();
  closeSearch();
  resetComposer();
  hideNotice();
  chatView.hidden = true;
  sessionBar.hidden = true;
  setStatus("offline", "Offline");
  showSignIn(message);
}

async function logout() {
  const session = currentSession();
  const token = session && session.token;
  endSession("");
  if (!token) return;
  try {
    // Revokes this access token and its refresh token on every server at once.
    await request("POST", "/api/auth/logout", { token });
  } catch {
    // Already invalid, or the server is unreachable: the page forgot it anyway.
  }
}

// Another tab logged in, refreshed or logged out: this one follows.
function onSessionStored() {
  const stored = storedSession();
  const current = currentSession();
  if (!stored) {
    if (current) leaveSession("You were signed out in another tab.");
  } else if (!current) {
    startSession(stored);
  } else if (stored.username !== current.username) {
    leaveSession("");
    startSession(stored);
  } else if (stored.token !== current.token) {
    useToken(stored);
  }
}

setSessionHooks({ tokenChanged: reauth, left: leaveSession });
setFrameHandlers({
  message(frame) {
    receive(frame);
    noteShown();
  },
  change: applyChange,
  ack: onAck,
  rateLimited: onRateLimited,
  refused: onRefused,
  replayed(gap) {
    if (gap) startGapFill(gap); // the outbox waits for it
    flushOutbox();
    noteShown();
  },
});

initTheme();
initLogin((session) => {
  startSession(session);
  saveSession(); // the browser's other tabs follow (onSessionStored)
});
initComposer();
initHistory();
initSearch();
initAccount();
logoutButton.addEventListener("click", () => logout());
window.addEventListener("storage", (event) => {
  if (event.key === SESSION_KEY || event.key === null) onSessionStored(); // null: storage cleared
});
window.addEventListener("online", () => reconnectNow());
// Background tabs run timers late: catch up on a refresh that is due.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && currentSession()) {
    scheduleRefresh();
    noteShown();
  }
});

async function init() {
  showAuthError("");
  setStatus("offline", "Offline");
  await loadConfig();
  document.body.dataset.ready = "true";
  const session = storedSession();
  if (session) startSession(session);
  else focusUsername();
}

init();
