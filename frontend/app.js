// AuroraChat browser client: native ES modules, no build step. It speaks
// protocol v1 (docs/protocol.md); this module wires the others together and
// starts and ends the page's session. Message data is only ever rendered with
// textContent, never as HTML.

import { closeAccount, initAccount } from "./account.js";
import { initActions } from "./actions.js";
import { applyChange } from "./changes.js";
import { initComposer, focusComposer, resetComposer } from "./composer.js";
import { loadConfig } from "./config.js";
import {
  arrived,
  clearConversation,
  initConversation,
  openRoom,
  presenceFrame,
  typingFrame,
} from "./conversation.js";
import { closeDialog } from "./dialogs.js";
import { fillView, initHistory, startGapFill } from "./history.js";
import { focusUsername, hideSignIn, initLogin, showAuthError, showSignIn } from "./login.js";
import {
  clearOutbox,
  dropRoom,
  flushOutbox,
  onAck,
  onRateLimited,
  onRefused,
  receive,
  restoreOutbox,
} from "./outbox.js";
import { initPeople } from "./people.js";
import { DEFAULT_ROOM } from "./protocol.js";
import { initReceipts, labelDirect, noteReceived, noteShown, receiptFrame } from "./receipts.js";
import { setReader } from "./render.js";
import { request } from "./rest.js";
import { initRoomDialogs } from "./roomdialogs.js";
import { active, allRooms, forgetRoom, forgetRooms, knownRoom, loadReadCursors, roomLabel, roomsChanged } from "./rooms.js";
import { closeSearch, initSearch } from "./search.js";
import { initSidebar, relist, relistSoon, roomsToJoin, startRooms, stopRooms } from "./sidebar.js";
import {
  beginSession,
  currentSession,
  endSession,
  expired,
  forgetSession,
  markSignedOut,
  saveSession,
  scheduleRefresh,
  isOwn,
  setSessionHooks,
  SIGNED_OUT_ELSEWHERE,
  storedSession,
  useToken,
} from "./session.js";
import { disconnect, leaveRoom, reauth, reconnectNow, setFrameHandlers, startConnecting } from "./socket.js";
import { SESSION_KEY } from "./storage.js";
import { initTheme } from "./theme.js";
import { $, hideNotice, setStatus, showNotice } from "./ui.js";

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
  setReader(session.username);
  loadReadCursors(session.username);
  hideSignIn();
  chatView.hidden = false;
  sessionBar.hidden = false;
  startRooms();
  openRoom(DEFAULT_ROOM);
  restoreOutbox();
  startConnecting();
  focusComposer();
}

// Taken out of a room, or left it: it goes from the sidebar, with a notice;
// what was still to be sent there fails.
function roomGone(room, message) {
  const state = knownRoom(room);
  if (!state) return;
  const label = roomLabel(state);
  dropRoom(room, `you are no longer in ${label}`);
  leaveRoom(room);
  const shown = state === active();
  forgetRoom(room);
  if (shown) {
    // #general, unless that is the room gone (banned from it): then another.
    const next = room === DEFAULT_ROOM ? allRooms()[0] : { room: DEFAULT_ROOM };
    if (next) openRoom(next.room);
  }
  roomsChanged(room);
  showNotice(message || `You can no longer read ${label}.`, { error: true, sticky: false });
}

const GONE = {
  removed: (label) => `You were removed from ${label}.`,
  banned: (label) => `You were banned from ${label}.`,
  deleted: (label) => `${label} was deleted.`,
};

// This tab leaves the session, ended here or in another tab.
function leaveSession(message) {
  forgetSession();
  closeAccount();
  closeDialog();
  disconnect();
  clearOutbox();
  stopRooms();
  clearConversation();
  forgetRooms();
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
  endSession("");
  if (!session) return;
  // Before the server closes the other tabs' sockets; never taken back, as
  // this tab has forgotten the session whatever the server answers.
  await markSignedOut(session);
  try {
    // Revokes this access token and its refresh token on every server at once.
    await request("POST", "/api/auth/logout", { token: session.token });
  } catch {
    // Already invalid, or the server is unreachable: the page forgot it anyway.
  }
}

// Another tab logged in, refreshed or logged out: this one follows.
function onSessionStored() {
  const stored = storedSession();
  const current = currentSession();
  if (!stored) {
    if (current) leaveSession(SIGNED_OUT_ELSEWHERE);
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
    if (receive(frame)) arrived(frame);
    noteReceived(frame);
    const state = knownRoom(frame.room);
    if (state && isOwn(frame)) labelDirect(state);
  },
  receipt: receiptFrame,
  change: applyChange,
  ack: onAck,
  rateLimited: onRateLimited,
  refused: onRefused,
  replayed(room, gap) {
    const state = knownRoom(room);
    if (gap && state) startGapFill(state, gap); // the outbox waits for it
    else if (state) fillView(state);
    flushOutbox();
    noteShown();
    if (state) labelDirect(state);
  },
  typing: typingFrame,
  presence: presenceFrame,
  gone(room, reason) {
    const state = knownRoom(room);
    const say = GONE[reason];
    roomGone(room, state && say ? say(roomLabel(state)) : "");
  },
  rooms: roomsToJoin,
  roomsChanged: relistSoon,
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
initConversation();
initActions();
initReceipts();
initSidebar();
initRoomDialogs({ left: roomGone });
initPeople();
logoutButton.addEventListener("click", () => logout());
window.addEventListener("storage", (event) => {
  if (event.key === SESSION_KEY || event.key === null) onSessionStored(); // null: storage cleared
});
window.addEventListener("online", () => reconnectNow());
// Background tabs run timers late: catch up on a refresh that is due.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && currentSession()) {
    scheduleRefresh();
    relist();
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
