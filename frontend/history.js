// Reads from the history API: scrollback (*Load older messages*) and the
// messages missed beyond the resume window after a reconnect (the gap).

import { showStoredState } from "./changes.js";
import { GAP_PAGE, HISTORY_PAGE } from "./config.js";
import { holdOutbox, releaseOutbox, settle } from "./outbox.js";
import { compareIds, parseId, ROOM } from "./protocol.js";
import {
  advanceNewest,
  firstShownAfter,
  insertInIdOrder,
  keepingScroll,
  oldestShownId,
  renderFrame,
  shownItem,
  trimMessages,
} from "./render.js";
import { apiGet, currentSession, isOwn } from "./session.js";
import { $ } from "./ui.js";

const loadOlderButton = $("load-older");
const retryGapButton = $("retry-gap");
const status = $("history-status");

// Replaced when the list is cleared, so an answer to a request made before is
// dropped. `gap`: messages missed beyond the resume window, still to be read:
// {after: the last id read}.
let history = fresh();

function fresh() {
  return { loading: false, end: false, gap: null, filling: false };
}

export function initHistory() {
  loadOlderButton.addEventListener("click", () => loadOlder());
  retryGapButton.addEventListener("click", () => fillGap());
}

export function resetHistory() {
  history = fresh();
  showHistoryStatus("");
  updateHistoryBar();
}

function roomMessages(query) {
  return apiGet(`/api/rooms/${encodeURIComponent(ROOM)}/messages?${new URLSearchParams(query)}`);
}

// The messages of a history or search page, as far as they are objects.
export function storedMessages(page) {
  return Array.isArray(page.messages) ? page.messages.filter((m) => m && typeof m === "object") : [];
}

// A stored message (the history API's answer), put among those shown in id
// order; false if it is shown already or has no id.
function insertStored(frame) {
  const id = parseId(frame.id);
  if (!id || shownItem(frame.id)) return false;
  const own = isOwn(frame);
  // One of our sends that was stored though we never saw it acknowledged:
  // the stored copy, put in its place below, replaces the pending one.
  const pending = own && typeof frame.client_id === "string" && settle(frame.client_id, frame.id);
  if (pending) pending.remove();
  const item = renderFrame(frame, { own, attachments: true });
  item.dataset.id = frame.id;
  showStoredState(item, frame);
  insertInIdOrder(item, id);
  advanceNewest(frame.id);
  return true;
}

// Scrollback: the page of stored messages just older than the oldest shown.
async function loadOlder() {
  const reading = history;
  if (reading.loading || reading.end || !currentSession()) return;
  reading.loading = true;
  updateHistoryBar();
  showHistoryStatus("Loading older messages…");
  const before = oldestShownId();
  try {
    const page = await roomMessages({ limit: HISTORY_PAGE, ...(before && { before }) });
    if (history !== reading) return; // cleared meanwhile (signed out)
    keepingScroll(() => {
      storedMessages(page).forEach(insertStored);
      // The bar above the list changes height at the end: inside, so it counts.
      reading.end = !page.next_before;
      reading.loading = false;
      updateHistoryBar();
      showHistoryStatus(reading.end ? "This is the beginning of #general." : "");
    });
  } catch (error) {
    if (history === reading) showHistoryStatus(`Could not load older messages: ${error.message}`, true);
  } finally {
    reading.loading = false;
    updateHistoryBar();
  }
}

// After a `joined` with recovered: false: read the messages missed, then send
// the outbox (which waits meanwhile; see holdOutbox).
export function startGapFill(gap) {
  history.gap = gap;
  fillGap();
}

// The messages between the last one shown before and the first one shown
// after it (the window's replay), read oldest first. Ids are the dedupe key:
// whatever else arrives meanwhile shows once.
async function fillGap() {
  const reading = history;
  const gap = reading.gap;
  if (!gap || reading.filling || !currentSession()) return;
  // Nothing older than the replay is shown any more (the list keeps its newest
  // MAX_MESSAGES): there is no hole, and scrollback reads the rest.
  const oldest = parseId(oldestShownId());
  if (!oldest || compareIds(oldest, parseId(gap.after)) > 0) {
    reading.gap = null;
    return;
  }
  reading.filling = true;
  holdOutbox(reading);
  updateHistoryBar();
  showHistoryStatus("Loading the messages you missed…");
  try {
    for (;;) {
      const page = await roomMessages({ after: gap.after, limit: GAP_PAGE });
      if (history !== reading) return;
      const until = firstShownAfter(parseId(gap.after));
      const messages = storedMessages(page);
      const upTo = until ? messages.findIndex((m) => compareIds(parseId(m.id) || [0, 0], until) >= 0) : -1;
      keepingScroll(() => {
        messages.slice(0, upTo < 0 ? messages.length : upTo).forEach(insertStored);
        trimMessages();
      });
      if (upTo >= 0 || !page.next_after) break;
      gap.after = page.next_after;
    }
    if (reading.gap === gap) reading.gap = null;
    showHistoryStatus("");
  } catch (error) {
    if (history !== reading) return;
    showHistoryStatus(`Could not load the messages you missed: ${error.message}`, true);
  } finally {
    reading.filling = false;
    updateHistoryBar();
    releaseOutbox(reading); // and sends it
  }
  // Another resume without recovery while this one was read: its turn.
  if (history === reading && reading.gap && reading.gap !== gap) fillGap();
}

function updateHistoryBar() {
  loadOlderButton.hidden = history.end;
  loadOlderButton.disabled = history.loading;
  retryGapButton.hidden = !history.gap || history.filling;
}

function showHistoryStatus(message, error = false) {
  status.textContent = message;
  status.classList.toggle("status-error", error);
}
