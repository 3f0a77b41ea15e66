// Reads from the history API, per room: scrollback (scrolling up, or *Load
// older messages*), the newest page of a room opened with nothing shown, and
// the messages missed beyond the resume window after a reconnect (the gap).

import { showStoredState } from "./changes.js";
import { GAP_HOLD_TRIES, GAP_PAGE, HISTORY_PAGE, INSERT_BATCH, backoffDelay } from "./config.js";
import { holdOutbox, releaseOutbox, settle } from "./outbox.js";
import { compareIds, parseId } from "./protocol.js";
import {
  advanceNewest,
  arrange,
  firstShownAfter,
  insertInIdOrder,
  keepingScroll,
  oldestShownId,
  renderFrame,
  newestInList,
  scrollToEnd,
  trimMessages,
  trimNewest,
  trimOldest,
} from "./render.js";
import { active, roomLabel } from "./rooms.js";
import { apiGet, currentSession, isOwn } from "./session.js";
import { $ } from "./ui.js";

const loadOlderButton = $("load-older");
const retryGapButton = $("retry-gap");
const status = $("history-status");
const NEAR_TOP_PX = 600; // scrolled this close to the top, the page before is read

export function initHistory() {
  loadOlderButton.addEventListener("click", () => active() && loadOlder(active()));
  retryGapButton.addEventListener("click", () => active() && fillGap(active()));
}

// Infinite scroll, on each scroll of the shown list once the conversation has
// told the reader's scrolls from the page's own: near the top of the list,
// the page before is read; near its end, when the newest were dropped, the
// page after.
export function scrolled(state) {
  const list = state.list;
  if (list.scrollTop < NEAR_TOP_PX) loadOlder(state);
  else if (state.tail && list.scrollHeight - list.scrollTop - list.clientHeight < NEAR_TOP_PX) {
    loadNewer(state);
  }
}

// The room shows now: its bar, and its newest page if nothing is shown yet.
export function showHistoryOf(state) {
  showHistoryStatus(state.history.end ? beginning(state) : "");
  updateHistoryBar();
  if (!state.list.querySelector(".message") && !state.history.end) loadOlder(state);
  else fillView(state);
}

function roomMessages(state, query) {
  return apiGet(`/api/rooms/${encodeURIComponent(state.room)}/messages?${new URLSearchParams(query)}`);
}

// The messages of a history or search page, as far as they are objects.
export function storedMessages(page) {
  return Array.isArray(page.messages) ? page.messages.filter((m) => m && typeof m === "object") : [];
}

// A page of stored messages (the history API's answer) into the list, in id
// order, arranged once. One already shown, or without an id, is left out.
function insertPage(state, frames) {
  const shown = new Set(Array.from(state.list.querySelectorAll(".message[data-id]"), (item) => item.dataset.id));
  const items = [];
  for (const frame of frames) {
    if (!parseId(frame.id) || shown.has(frame.id)) continue;
    shown.add(frame.id);
    const own = isOwn(frame);
    // One of our sends that was stored though we never saw it acknowledged:
    // the stored copy, put in its place below, replaces the pending one.
    const pending = own && typeof frame.client_id === "string" && settle(frame.client_id, frame.id);
    if (pending) pending.remove();
    const item = renderFrame(frame, { own, attachments: true });
    item.dataset.id = frame.id;
    showStoredState(item, frame, state.room);
    items.push(item);
    advanceNewest(state, frame.id);
  }
  insertInIdOrder(state, items);
  arrange(state);
}

// A page in batches of INSERT_BATCH, the one nearest `from` ("newest" or
// "oldest" end of the page) first: each batch is styled and laid out in a
// task of its own, the frame between them painted, so no one task holds
// the page's whole cost. Always one batch, if empty, for what follows it.
function batches(messages, from) {
  const byId = messages
    .map((message) => [parseId(message.id), message])
    .filter(([id]) => id)
    .sort((a, b) => compareIds(a[0], b[0]) * (from === "newest" ? -1 : 1))
    .map(([, message]) => message);
  const out = [];
  for (let at = 0; at < byId.length; at += INSERT_BATCH) out.push(byId.slice(at, at + INSERT_BATCH));
  return out.length ? out : [[]];
}

// After the next frame, in a task of its own (a frame callback would add
// the work to the frame's task).
const afterNextFrame = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));

const beginning = (state) => `This is the beginning of ${roomLabel(state)}.`;

// Scrollback: the page of stored messages just older than the oldest shown.
export async function loadOlder(state) {
  const reading = state.history;
  if (reading.loading || reading.end || !currentSession()) return;
  reading.loading = true;
  reading.failed = false;
  updateHistoryBar();
  if (state === active()) showHistoryStatus("Loading older messages…");
  const before = oldestShownId(state);
  const empty = !before;
  try {
    const page = await roomMessages(state, { limit: HISTORY_PAGE, ...(before && { before }) });
    const parts = batches(storedMessages(page), "newest");
    for (const [at, part] of parts.entries()) {
      if (at > 0) await afterNextFrame();
      if (state.history !== reading) return; // started over meanwhile
      const last = at === parts.length - 1;
      keepingScroll(state, () => {
        insertPage(state, part);
        if (!state.stuck) trimNewest(state); // far back: the list keeps a window
        if (!last) return;
        // The bar above the list changes height at the end: inside, so it counts.
        reading.end = !page.next_before;
        reading.loading = false;
        if (state === active()) {
          updateHistoryBar();
          showHistoryStatus(reading.end ? beginning(state) : "");
        }
      });
      // A room's first page shows its newest messages, from its first batch on.
      if (empty && state.list.isConnected) scrollToEnd(state);
    }
  } catch (error) {
    reading.failed = true; // not read again by itself: the button tries again
    if (state.history === reading && state === active()) {
      showHistoryStatus(`Could not load older messages: ${error.message}`, true);
    }
  } finally {
    reading.loading = false;
    if (state === active()) updateHistoryBar();
  }
  fillView(state);
}

// A list too short to scroll cannot be scrolled up into its history: its
// older pages are read until it fills the view (or the room's beginning).
export function fillView(state) {
  const list = state.list;
  const history = state.history;
  if (state !== active() || history.loading || history.end || history.failed) return;
  if (list.scrollHeight <= list.clientHeight + 1) loadOlder(state);
}

// Back down towards the newest, after the newest were dropped: the page of
// stored messages after the list's end, the oldest dropped to keep the
// window; at the stored end, the messages that arrived meanwhile (held).
async function loadNewer(state) {
  const reading = state.history;
  const after = newestInList(state);
  if (!state.tail || reading.loadingNewer || !after || !currentSession()) return;
  reading.loadingNewer = true;
  try {
    const page = await roomMessages(state, { after, limit: HISTORY_PAGE });
    const parts = batches(storedMessages(page), "oldest");
    for (const [at, part] of parts.entries()) {
      if (at > 0) await afterNextFrame();
      if (state.history !== reading || !state.tail) return;
      keepingScroll(state, () => {
        insertPage(state, part);
        if (at === parts.length - 1 && !page.next_after) rejoinTail(state);
        trimOldest(state); // over the window going down: scrolling up reads them again
        arrange(state);
      });
    }
  } catch (error) {
    if (state === active()) showHistoryStatus(`Could not load newer messages: ${error.message}`, true);
  } finally {
    reading.loadingNewer = false;
  }
}

// The list reaches the newest again: what arrived meanwhile goes in.
function rejoinTail(state) {
  const held = state.tail ? state.tail.held : [];
  state.tail = null;
  insertPage(state, held);
}

// *Jump to newest* (or a send) while the newest were dropped: the list starts
// again from the messages that arrived meanwhile and the stored page before them.
export function backToNewest(state) {
  if (!state.tail) return;
  for (const node of Array.from(state.list.children)) {
    if (!node.classList.contains("pending")) node.remove();
  }
  const held = state.tail.held;
  state.tail = null;
  clearTimeout(state.history.retryTimer); // a gap being retried: scrollback reads it now
  releaseOutbox(state.history);
  state.history = { loading: false, end: false, gap: null, filling: false };
  insertPage(state, held);
  scrollToEnd(state);
  loadOlder(state);
}

// After a `joined` with recovered: false: read the messages missed, then send
// the outbox (which waits meanwhile; see holdOutbox).
export function startGapFill(state, gap) {
  state.history.gap = gap;
  fillGap(state);
}

// The messages between the last one shown before and the first one shown
// after it (the window's replay), read oldest first. Ids are the dedupe key:
// whatever else arrives meanwhile shows once.
async function fillGap(state) {
  const reading = state.history;
  const gap = reading.gap;
  if (!gap || reading.filling || !currentSession()) return;
  // Nothing older than the replay is shown any more (the list keeps its newest
  // MAX_MESSAGES): there is no hole, and scrollback reads the rest.
  const oldest = parseId(oldestShownId(state));
  if (!oldest || compareIds(oldest, parseId(gap.after)) > 0) {
    reading.gap = null;
    return;
  }
  reading.filling = true;
  // The outbox waits while the gap is read: a message in it may be in the
  // gap, stored while the page was away, and sent now it would be stored
  // twice. For the first few tries only: past them, sending matters more.
  const holding = (reading.failures || 0) < GAP_HOLD_TRIES;
  if (holding) holdOutbox(reading);
  if (state === active()) {
    updateHistoryBar();
    showHistoryStatus("Loading the messages you missed…");
  }
  let failed = false;
  try {
    for (;;) {
      const page = await roomMessages(state, { after: gap.after, limit: GAP_PAGE });
      if (state.history !== reading) return;
      const until = firstShownAfter(state, parseId(gap.after));
      const messages = storedMessages(page);
      const upTo = until ? messages.findIndex((m) => compareIds(parseId(m.id) || [0, 0], until) >= 0) : -1;
      keepingScroll(state, () => {
        insertPage(state, messages.slice(0, upTo < 0 ? messages.length : upTo));
        trimMessages(state);
      });
      if (upTo >= 0 || !page.next_after) break;
      gap.after = page.next_after;
    }
    if (reading.gap === gap) reading.gap = null;
    reading.failures = 0;
    if (state === active()) showHistoryStatus("");
  } catch (error) {
    if (state.history !== reading) return;
    // Tried again by itself (Retry tries now), from the page that failed.
    failed = true;
    reading.failures = (reading.failures || 0) + 1;
    clearTimeout(reading.retryTimer);
    reading.retryTimer = setTimeout(() => fillGap(state), backoffDelay(reading.failures - 1));
    if (state === active()) {
      showHistoryStatus(`Could not load the messages you missed (${error.message}); trying again…`, true);
    }
  } finally {
    reading.filling = false;
    if (state === active()) updateHistoryBar();
    if (holding && !(failed && reading.failures < GAP_HOLD_TRIES)) releaseOutbox(reading); // and sends it
  }
  if (failed) return;
  // Another resume without recovery while this one was read: its turn.
  if (state.history === reading && reading.gap && reading.gap !== gap) fillGap(state);
}

function updateHistoryBar() {
  const state = active();
  const history = state ? state.history : { end: true, loading: false, gap: null };
  changingBar(() => {
    loadOlderButton.hidden = history.end;
    loadOlderButton.disabled = history.loading;
    retryGapButton.hidden = !history.gap || history.filling;
  });
}

function showHistoryStatus(message, error = false) {
  changingBar(() => {
    status.textContent = message;
    status.classList.toggle("status-error", error);
  });
}

// The bar sits above the list, and changes height when a button shows or
// hides or a status comes or goes (on a phone it wraps under the button):
// what the reader is looking at stays where it is.
function changingBar(change) {
  const state = active();
  if (state) keepingScroll(state, change);
  else change();
}
