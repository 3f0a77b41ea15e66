// A room's list of messages: each as a list item built with textContent only,
// put in id order, grouped by author and time, with day and "new messages"
// dividers, at most MAX_MESSAGES of them while the reader is at the newest
// (HIDDEN_MESSAGES while the room is not shown);
// and the newest id shown, which the next join resumes from.

import { renderAttachments, validAttachments } from "./attachments.js";
import { HIDDEN_MESSAGES, MAX_MESSAGES } from "./config.js";
import { compareIds, parseId } from "./protocol.js";

// Messages of one author less than this apart are shown as one group.
const GROUP_MS = 5 * 60 * 1000;

export function newestShownId(state) {
  return state.newestId;
}

// Record `id` as the newest shown in the room if it is newer than the newest;
// answers whether it was. A room's messages arrive in id order: one that is
// not newer was shown.
export function advanceNewest(state, id) {
  const last = parseId(state.newestId);
  if (last && compareIds(parseId(id), last) <= 0) return false;
  state.newestId = id;
  return true;
}

// Not an id the server knows: the next join starts from the room's window.
export function forgetNewest(state) {
  state.newestId = null;
}

let reader = ""; // the signed-in user's name: "@reader" is highlighted

export function setReader(name) {
  reader = name;
}

// A `message` frame, or a stored message (the same shape), as a list item.
export function renderFrame(frame, { own, attachments }) {
  return renderMessage({
    user: typeof frame.user === "string" ? frame.user : "unknown",
    userId: typeof frame.user_id === "string" ? frame.user_id : "",
    text: typeof frame.text === "string" ? frame.text : "",
    attachments: attachments ? validAttachments(frame.attachments) : [],
    ts: Number(frame.ts),
    own,
    mention: own ? null : reader,
  });
}

export function renderMessage({ user, userId = "", text, attachments, ts, own, mention = null }) {
  const item = document.createElement("li");
  item.className = own ? "message own" : "message";
  // Its day, for the dividers, and its author and time, for the groups
  // (arrange); one still sending is today's and now.
  const when = Number.isFinite(ts) && ts > 0 ? ts : Date.now();
  item.dataset.day = dayKey(new Date(when));
  item.dataset.ts = String(when);
  item.dataset.author = userId || `name:${user}`;

  const meta = document.createElement("div");
  meta.className = "meta";
  // The author's name opens what can be done with that person (people.js).
  const name = document.createElement("button");
  name.type = "button";
  name.className = "user";
  name.dataset.user = user;
  if (userId) name.dataset.userId = userId;
  name.setAttribute("aria-haspopup", "dialog");
  // Not a tab stop of its own (a long list would be hundreds): the list is,
  // and the arrow keys move between names in it (conversation.js).
  name.tabIndex = -1;
  name.textContent = user;
  meta.appendChild(name);

  if (Number.isFinite(ts) && ts > 0) meta.appendChild(timeElement(new Date(ts)));

  const body = document.createElement("p");
  body.className = "text";
  appendLinkedText(body, text, mention);
  if (mention && mentions(text, mention)) item.classList.add("mentions-me");

  item.append(meta, body);
  if (attachments.length) item.appendChild(renderAttachments(attachments));
  return item;
}

// A local calendar day as "year-month-day" (months from 0), and back.
const dayKey = (when) => `${when.getFullYear()}-${when.getMonth()}-${when.getDate()}`;
const dayFromKey = (key) => new Date(...key.split("-").map(Number));

function daysAgo(when, now) {
  const midnight = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  return Math.round((midnight(now) - midnight(when)) / 86400000);
}

// Date formatters, made once: toLocaleDateString and its kin build a new
// formatter on every call, which made rendering a page of history slow.
const formatters = new Map();

function formatter(options) {
  const key = JSON.stringify(options);
  let made = formatters.get(key);
  if (!made) {
    made = new Intl.DateTimeFormat([], options);
    formatters.set(key, made);
  }
  return made;
}

// "Today", "Yesterday" or the date (`length`: "short" or "long" names).
function dayName(when, length) {
  const now = new Date();
  const ago = daysAgo(when, now);
  if (ago === 0) return "Today";
  if (ago === 1) return "Yesterday";
  const year = when.getFullYear() === now.getFullYear() ? undefined : "numeric";
  return formatter({ weekday: length, day: "numeric", month: length, year }).format(when);
}

// "14:05" today; "Yesterday 14:05" or "Mon 3 Dec 14:05" before; the full
// date and time in its title.
function timeElement(when) {
  const clock = formatter({ hour: "2-digit", minute: "2-digit" }).format(when);
  const today = daysAgo(when, new Date()) === 0;
  const day = today ? "" : dayName(when, "short");
  const time = document.createElement("time");
  time.className = "time";
  time.dateTime = when.toISOString();
  time.title = `${today ? "Today" : day}, ${formatter({ dateStyle: "full", timeStyle: "short" }).format(when)}`;
  time.textContent = day ? `${day} ${clock}` : clock;
  return time;
}

// Web addresses in a message become links: http and https only, opened in a
// new tab that gets neither this page (noopener) nor its address (noreferrer).
// Everything else stays text nodes.
const WEB_ADDRESS = /\bhttps?:\/\/[^\s<>"]+/gi;

function trimAddress(address) {
  // Punctuation after an address ends the sentence, not the address; a
  // closing parenthesis stays when the address opened one.
  let end = address.length;
  for (;;) {
    const last = address[end - 1];
    const kept = address.slice(0, end);
    if (".,;:!?'\"".includes(last)) end -= 1;
    else if (last === ")" && kept.split("(").length < kept.split(")").length) end -= 1;
    else return kept;
  }
}

// "@name" of the reader, as a whole word, case as typed or not.
function mentionPattern(name) {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(^|[^A-Za-z0-9_.-])(@${escaped})(?![A-Za-z0-9_-])`, "gi");
}

export function mentions(text, name) {
  return Boolean(name) && mentionPattern(name).test(text);
}

// Text with the reader's "@name" in <mark>: still text nodes only.
function appendMarked(container, text, name) {
  if (!name) {
    container.append(text);
    return;
  }
  let at = 0;
  for (const match of text.matchAll(mentionPattern(name))) {
    const start = match.index + match[1].length;
    container.append(text.slice(at, start));
    const mark = document.createElement("mark");
    mark.className = "mention";
    mark.textContent = match[2];
    container.appendChild(mark);
    at = start + match[2].length;
  }
  container.append(text.slice(at));
}

export function appendLinkedText(container, text, mention = null) {
  let at = 0;
  for (const match of text.matchAll(WEB_ADDRESS)) {
    const address = trimAddress(match[0]);
    let url;
    try {
      url = new URL(address);
    } catch {
      continue;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") continue;
    appendMarked(container, text.slice(at, match.index), mention);
    const link = document.createElement("a");
    link.className = "text-link";
    link.href = url.href;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.textContent = address;
    container.appendChild(link);
    at = match.index + address.length;
  }
  appendMarked(container, text.slice(at), mention);
}

export function setItemState(item, text) {
  let label = item.querySelector(".delivery");
  if (!text) {
    if (label) label.remove();
    return;
  }
  if (!label) {
    label = document.createElement("span");
    label.className = "delivery";
    item.querySelector(".meta").appendChild(label);
  }
  label.textContent = text;
}

// Confirmed messages go in arrival (= id) order above the ones still sending.
// A list that shows, and was at its newest, stays at its newest.
export function insertItem(state, item, scroll) {
  const list = state.list;
  const firstPending = item.classList.contains("pending") ? null : list.querySelector(".pending");
  list.insertBefore(item, firstPending);
  trimMessages(state); // and the dividers and groups
  if (scroll) state.stuck = true;
  if (list.isConnected && state.stuck) scrollToEnd(state);
}

// A list at its newest stays there as messages come (state.stuck), until the
// reader scrolls up. Scrolls the page makes itself are told apart from the
// reader's by where they left the list (state.autoTop): sizes settling after
// a scroll must not count as the reader's.
export function scrollToEnd(state) {
  state.stuck = true;
  const stick = (frames) => {
    if (!state.stuck || !state.list.isConnected) return;
    state.list.scrollTop = state.list.scrollHeight;
    state.autoTop = state.list.scrollTop;
    // Sizes may settle over the next frames: the end moves, the list follows.
    if (frames > 0) requestAnimationFrame(() => stick(frames - 1));
  };
  stick(3);
}

// Stored messages' items (each with its data-id), put among those shown in
// id order, above the ones still sending. The shown are in id order: each
// place is found by halving, and a page of history that goes in at either
// end costs what the page costs, not what the list does. Then arrange.
export function insertInIdOrder(state, items) {
  const list = state.list;
  const keyed = items.map((item) => [parseId(item.dataset.id), item]);
  keyed.sort((a, b) => compareIds(a[0], b[0]));
  const shown = list.querySelectorAll(".message[data-id]");
  const pending = list.querySelector(".pending");
  let from = 0;
  for (const [id, item] of keyed) {
    from = firstLater(shown, id, from);
    list.insertBefore(item, from < shown.length ? shown[from] : pending);
  }
}

// The index of the first of `items` (in id order) from `from` on whose id is
// after `id`, or their length.
function firstLater(items, id, from) {
  let low = from;
  let high = items.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (compareIds(parseId(items[middle].dataset.id), id) > 0) high = middle;
    else low = middle + 1;
  }
  return low;
}

// Kept right after every change to the list (messages arrive out of order:
// scrollback, the gap fill): a divider above the first message of each day
// ("Today", "Yesterday", "Monday 3 December"), the "New messages" divider
// above the first message after the read mark, and each message marked as
// continuing its author's group or not. Dividers that are still right stay
// in place: keepingScroll may be holding one as its anchor.
export function arrange(state) {
  const list = state.list;
  const mark = parseId(state.readMark);
  const from = parseId(state.newFrom);
  let previous = null; // the previous message
  let unreadSeen = false;
  for (const node of Array.from(list.children)) {
    if (!node.classList.contains("message")) {
      let next = node.nextElementSibling;
      while (next && !next.classList.contains("message")) next = next.nextElementSibling;
      if (!next) node.remove();
      continue;
    }
    const day = node.dataset.day;
    const newDay = !previous || previous.dataset.day !== day;
    const id = parseId(node.dataset.id);
    const unread = id && ((mark && compareIds(id, mark) > 0) || (from && compareIds(id, from) >= 0));
    const firstUnread = Boolean(unread && !unreadSeen && !node.classList.contains("own"));
    if (firstUnread) unreadSeen = true;
    placeDivider(list, node, "day-divider", newDay ? day : null, () => dayName(dayFromKey(day), "long"));
    placeDivider(list, node, "new-divider", firstUnread ? "new" : null, () => "New messages");
    const continued =
      !newDay &&
      !firstUnread &&
      previous.dataset.author === node.dataset.author &&
      Number(node.dataset.ts) - Number(previous.dataset.ts) < GROUP_MS;
    node.classList.toggle("continued", continued);
    previous = node;
  }
}

// The divider of `kind` right above `node`: there with `key`, or not at all.
// Above a message, a day divider comes first, then the new-messages one.
function placeDivider(list, node, kind, key, text) {
  let found = null;
  for (let at = node.previousElementSibling; at && !at.classList.contains("message"); at = at.previousElementSibling) {
    if (at.classList.contains(kind)) found = at;
  }
  if (found && found.dataset.key === key) return;
  if (found) found.remove();
  if (key === null) return;
  const divider = document.createElement("li");
  divider.className = kind;
  divider.dataset.key = key;
  if (kind === "day-divider") divider.dataset.day = key;
  divider.textContent = text();
  // A day divider goes above a new-messages divider already there.
  const newDivider = node.previousElementSibling;
  const before = kind === "day-divider" && newDivider && newDivider.classList.contains("new-divider") ? newDivider : node;
  list.insertBefore(divider, before);
}

// The oldest go first, so what stays shown has no hole (scrollback reloads
// them) — unless the reader has scrolled up to read them. A room not shown
// keeps fewer: showing it again lays out only those.
export function trimMessages(state) {
  if (state.stuck) trimOldest(state, state.list.isConnected ? MAX_MESSAGES : HIDDEN_MESSAGES);
  arrange(state);
}

// Over `keep`, the oldest go (never one still sending): scrollback reads
// them again.
export function trimOldest(state, keep = MAX_MESSAGES) {
  const list = state.list;
  const over = list.querySelectorAll(".message").length - keep;
  if (over <= 0) return;
  const items = list.querySelectorAll(".message:not(.pending)");
  for (let at = 0; at < Math.min(over, items.length); at += 1) items[at].remove();
  state.history.end = false;
}

// The reader went far back: the newest messages go instead, so the list
// stays a window of MAX_MESSAGES around what is read, in both directions.
// Nothing older than the window's end is lost: scrolling down reads them again.
export function trimNewest(state) {
  const list = state.list;
  const over = list.querySelectorAll(".message").length - MAX_MESSAGES;
  if (over > 0) {
    const items = list.querySelectorAll(".message[data-id]:not(.pending)");
    for (let at = Math.max(0, items.length - over); at < items.length; at += 1) items[at].remove();
    state.tail = state.tail || { held: [] };
  }
  arrange(state);
}

export function newestInList(state) {
  const items = state.list.querySelectorAll(".message[data-id]");
  return items.length ? items[items.length - 1].dataset.id : null;
}

// The list item of a message id, if it is shown (ids are digits and a dash).
export function shownItem(state, id) {
  return state.list.querySelector(`.message[data-id="${id}"]`);
}

export function oldestShownId(state) {
  const item = state.list.querySelector(".message[data-id]");
  return item ? item.dataset.id : null;
}

export function firstShownAfter(state, id) {
  for (const item of state.list.querySelectorAll(".message[data-id]")) {
    const shown = parseId(item.dataset.id);
    if (compareIds(shown, id) > 0) return shown;
  }
  return null;
}

// The first of `items` (top to bottom) whose bottom is below `top`, found by
// halving: one layout, a handful of reads, however long the list.
function firstInView(items, top) {
  let low = 0;
  let high = items.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (items[middle].getBoundingClientRect().bottom > top) high = middle;
    else low = middle + 1;
  }
  return items[low];
}

let keeping = null; // the list whose place a keepingScroll is holding now

// Insert messages without moving what the reader is looking at: a list at
// its newest stays at its newest (anything above it may change height), and
// otherwise the first item in view stays where it is on the screen. One
// called inside another for the same list leaves it to the outer one, which
// sees every change.
export function keepingScroll(state, insert) {
  const list = state.list;
  if (!list.isConnected || keeping === list) {
    insert();
    return;
  }
  const stuck = state.stuck;
  const top = list.getBoundingClientRect().top;
  // A message, not a divider: a divider stays at the top of its day
  // while older messages of that day go in below it.
  const anchor = !stuck && firstInView(list.querySelectorAll(".message"), top);
  const before = anchor && anchor.getBoundingClientRect().top;
  keeping = list;
  try {
    insert();
  } finally {
    keeping = null;
  }
  if (stuck) scrollToEnd(state);
  if (!anchor) return;
  // Again over the next frames: images and fonts may still settle sizes above it.
  const hold = (frames) => {
    if (!anchor.isConnected) return;
    const drift = anchor.getBoundingClientRect().top - before;
    if (Math.abs(drift) >= 1) list.scrollTop += drift;
    state.autoTop = list.scrollTop;
    if (frames > 0) requestAnimationFrame(() => hold(frames - 1));
  };
  hold(3);
}
