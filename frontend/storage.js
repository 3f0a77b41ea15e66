// What the page keeps in the browser: the session is the browser's, shared by
// its tabs (localStorage); the outbox is one tab's (sessionStorage), so two
// tabs never send each other's messages. The theme chosen and the read cursors
// are the browser's too.

export const SESSION_KEY = "aurora.session"; // {token, refresh_token, issued_at, expires_at}
export const PENDING_KEY = "aurora.pending"; // [{client_id, text, attachments}] not yet acknowledged
export const THEME_KEY = "aurora.theme"; // "light" | "dark"; absent: the system's
export const READ_KEY = "aurora.read"; // {user, rooms: {room: the newest id read}}
export const PANEL_KEY = "aurora.online-panel"; // "shown" | "hidden", as the person chose
const STORAGE = {
  [SESSION_KEY]: "localStorage",
  [PENDING_KEY]: "sessionStorage",
  [THEME_KEY]: "localStorage",
  [READ_KEY]: "localStorage",
  [PANEL_KEY]: "localStorage",
};

export function readStorage(key) {
  try {
    return JSON.parse(window[STORAGE[key]].getItem(key));
  } catch {
    return null; // storage disabled or garbage: start without it
  }
}

export function writeStorage(key, value) {
  try {
    if (value === null) window[STORAGE[key]].removeItem(key);
    else window[STORAGE[key]].setItem(key, JSON.stringify(value));
  } catch {
    // Storage disabled: the session lasts as long as the page.
  }
}
