// What protocol v1 (docs/protocol.md) fixes: the room id rule, the
// subprotocol, close codes, frame limits, message ids and the `message` frame.

export const DEFAULT_ROOM = "general"; // open after signing in
export const ROOM_RULE = /^[A-Za-z0-9_.:-]{1,64}$/;
export const MAX_JOINED = 100; // rooms on one connection (`too_many_rooms` above)
export const SUBPROTOCOL = "aurora.v1";
export const CLOSE = { AUTH: 4001, FORBIDDEN: 4003, TOO_SLOW: 4008, TOO_MANY: 4029 };
export const MAX_FRAME_BYTES = 16 * 1024; // the server closes the connection (1009) above this
export const MAX_ATTACHMENTS = 5; // per message; types and sizes: the API says
// Errors after which resending the same message may help.
export const RETRYABLE_ERRORS = new Set(["unavailable", "backpressure", "not_joined"]);

// "<ms>-<seq>": compared as two integers, never as strings.
export function parseId(id) {
  const match = typeof id === "string" ? /^(\d+)-(\d+)$/.exec(id) : null;
  return match ? [Number(match[1]), Number(match[2])] : null;
}

export function compareIds(a, b) {
  return a[0] - b[0] || a[1] - b[1];
}

export function newClientId() {
  // getRandomValues works on plain http too (randomUUID needs a secure context).
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// The server ignores blank text without an answer; its idea of blank is
// Python's str.strip(), which also strips \x1c-\x1f and \x85.
export function isBlank(text) {
  return !text.replace(/[\s\x1c-\x1f\x85]/g, "");
}

// A direct room (`POST /api/dms`): ids in the reserved `dm:` prefix.
export function isDirect(room) {
  return room.startsWith("dm:");
}

export function messageFrame(room, text, attachments, clientId) {
  const frame = { type: "message", room, text, client_id: clientId };
  if (attachments.length) frame.attachments = attachments;
  return frame;
}
