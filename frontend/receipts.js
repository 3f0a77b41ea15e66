// The read cursor (docs/protocol.md, "Delivered and read"): the newest
// message shown in the open room is sent as `read` while the page is
// visible, at most once a second. The server never answers it, so it never
// disturbs the matching of replies to requests.

import { newestShownId } from "./render.js";
import { active } from "./rooms.js";
import { joinedConnection, send } from "./socket.js";

const INTERVAL_MS = 1000;
let timer = null;
const lastSent = new Map(); // room -> the id last sent as read

// Something new is shown (or the page is seen again): send the cursor soon.
export function noteShown() {
  if (timer === null) timer = setTimeout(flush, INTERVAL_MS);
}

function flush() {
  timer = null;
  if (document.visibilityState !== "visible") return; // sent when the page is seen again
  const state = active();
  if (!state) return;
  const conn = joinedConnection(state.room);
  const id = newestShownId(state);
  if (!conn || !id || id === lastSent.get(state.room)) return;
  send(conn, { type: "read", room: state.room, id });
  lastSent.set(state.room, id);
}
