// The list of messages: each as a list item built with textContent only, put
// in id order, at most MAX_MESSAGES of them; and the newest id shown, which
// the next join resumes from.

import { renderAttachments, validAttachments } from "./attachments.js";
import { MAX_MESSAGES } from "./config.js";
import { compareIds, parseId } from "./protocol.js";
import { $ } from "./ui.js";

const list = $("messages");
let newestId = null; // the newest message id shown: `since` of the next join

export function newestShownId() {
  return newestId;
}

// Record `id` as the newest shown if it is newer than the newest; answers
// whether it was. A room's messages arrive in id order: one that is not newer
// was shown.
export function advanceNewest(id) {
  const last = parseId(newestId);
  if (last && compareIds(parseId(id), last) <= 0) return false;
  newestId = id;
  return true;
}

// Not an id the server knows: the next join starts from the room's window.
export function forgetNewest() {
  newestId = null;
}

export function clearList() {
  list.replaceChildren();
  newestId = null;
}

// A `message` frame, or a stored message (the same shape), as a list item.
export function renderFrame(frame, { own, attachments }) {
  return renderMessage({
    user: typeof frame.user === "string" ? frame.user : "unknown",
    text: typeof frame.text === "string" ? frame.text : "",
    attachments: attachments ? validAttachments(frame.attachments) : [],
    ts: Number(frame.ts),
    own,
  });
}

export function renderMessage({ user, text, attachments, ts, own }) {
  const item = document.createElement("li");
  item.className = own ? "message own" : "message";
  // Its day, for the dividers (markDays); one still sending is today's.
  item.dataset.day = dayKey(new Date(Number.isFinite(ts) && ts > 0 ? ts : Date.now()));

  const meta = document.createElement("div");
  meta.className = "meta";
  const name = document.createElement("span");
  name.className = "user";
  name.textContent = user;
  meta.appendChild(name);

  if (Number.isFinite(ts) && ts > 0) meta.appendChild(timeElement(new Date(ts)));

  const body = document.createElement("p");
  body.className = "text";
  appendLinkedText(body, text);

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

// "Today", "Yesterday" or the date (`length`: "short" or "long" names).
function dayName(when, length) {
  const now = new Date();
  const ago = daysAgo(when, now);
  if (ago === 0) return "Today";
  if (ago === 1) return "Yesterday";
  const year = when.getFullYear() === now.getFullYear() ? undefined : "numeric";
  return when.toLocaleDateString([], { weekday: length, day: "numeric", month: length, year });
}

// "14:05" today; "Yesterday 14:05" or "Mon 3 Dec 14:05" before; the full
// date and time in its title.
function timeElement(when) {
  const clock = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const today = daysAgo(when, new Date()) === 0;
  const day = today ? "" : dayName(when, "short");
  const time = document.createElement("time");
  time.className = "time";
  time.dateTime = when.toISOString();
  time.title = `${today ? "Today" : day}, ${when.toLocaleString([], { dateStyle: "full", timeStyle: "short" })}`;
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

export function appendLinkedText(container, text) {
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
    container.append(text.slice(at, match.index));
    const link = document.createElement("a");
    link.className = "text-link";
    link.href = url.href;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.textContent = address;
    container.appendChild(link);
    at = match.index + address.length;
  }
  container.append(text.slice(at));
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
export function insertItem(item, scroll) {
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const firstPending = item.classList.contains("pending") ? null : list.querySelector(".pending");
  list.insertBefore(item, firstPending);
  trimMessages(); // and the day dividers
  if (nearBottom || scroll) list.scrollTop = list.scrollHeight;
}

// A stored message's item, put among those shown in id order (above the ones
// still sending).
export function insertInIdOrder(item, id) {
  const later = Array.from(list.querySelectorAll(".message[data-id]")).find(
    (other) => compareIds(parseId(other.dataset.id), id) > 0,
  );
  list.insertBefore(item, later || list.querySelector(".pending"));
  markDays();
}

// A divider above the first message of each day ("Today", "Yesterday",
// "Monday 3 December"), kept right after every change to the list (messages
// arrive out of order: scrollback, the gap fill). Dividers that are still
// right stay in place: keepingScroll may be holding one as its anchor.
export function markDays() {
  let previous = null;
  for (const node of Array.from(list.children)) {
    if (node.classList.contains("day-divider")) {
      const next = node.nextElementSibling;
      if (!next || !next.classList.contains("message")) node.remove();
      continue;
    }
    const day = node.dataset.day;
    const before = node.previousElementSibling;
    const divider = before && before.classList.contains("day-divider") ? before : null;
    if (day === previous) {
      if (divider) divider.remove();
      continue;
    }
    previous = day;
    if (divider && divider.dataset.day === day) continue;
    if (divider) divider.remove();
    const when = dayFromKey(day);
    const heading = document.createElement("li");
    heading.className = "day-divider";
    heading.dataset.day = day;
    heading.textContent = dayName(when, "long");
    list.insertBefore(heading, node);
  }
}

// The oldest go first, so what stays shown has no hole (scrollback reloads them).
export function trimMessages() {
  let count = list.querySelectorAll(".message").length;
  while (count > MAX_MESSAGES) {
    const oldest = list.querySelector(".message:not(.pending)");
    if (!oldest) break;
    oldest.remove();
    count -= 1;
  }
  markDays();
}

// The list item of a message id, if it is shown (ids are digits and a dash).
export function shownItem(id) {
  return list.querySelector(`.message[data-id="${id}"]`);
}

export function oldestShownId() {
  const item = list.querySelector(".message[data-id]");
  return item ? item.dataset.id : null;
}

export function firstShownAfter(id) {
  for (const item of list.querySelectorAll(".message[data-id]")) {
    const shown = parseId(item.dataset.id);
    if (compareIds(shown, id) > 0) return shown;
  }
  return null;
}

// Insert messages without moving what the reader is looking at: the first
// item in view stays where it is on the screen.
export function keepingScroll(insert) {
  const top = list.getBoundingClientRect().top;
  // A message, not a day divider: a divider stays at the top of its day
  // while older messages of that day go in below it.
  const anchor = Array.from(list.querySelectorAll(".message")).find(
    (item) => item.getBoundingClientRect().bottom > top,
  );
  const before = anchor && anchor.getBoundingClientRect().top;
  insert();
  if (anchor && anchor.isConnected) list.scrollTop += anchor.getBoundingClientRect().top - before;
}
