// The read cursor (docs/protocol.md, "Delivered and read"): the newest
// message shown is sent as `read` while the page is visible, at most once a
// second. The server never answers it, so it never disturbs the matching of
// replies to requests.

import { ROOM } from "./protocol.js";
import { newestShownId } from "./render.js";
import { joinedConnection, send } from "./socket.js";

const INTERVAL_MS = 1000;
let timer = null;
let lastSent = null;

// Something new is shown (or the page is seen again): send the cursor soon.
export function noteShown() {
  if (timer === null) timer = setTimeout(flush, INTERVAL_MS);
}

function flush() {
  timer = null;
  if (document.visibilityState !== "visible") return; // sent when the page is seen again
  const conn = joinedConnection();
  const id = newestShownId();
  if (!conn || !id || id === lastSent) return;
  send(conn, { type: "read", room: ROOM, id });
  lastSent = id;
}
