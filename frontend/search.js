// Search in the room shown (`/api/search`): newest results first in a panel above
// the messages, one page at a time.

import { HISTORY_PAGE } from "./config.js";
import { storedMessages } from "./history.js";
import { isBlank } from "./protocol.js";
import { renderFrame } from "./render.js";
import { active } from "./rooms.js";
import { apiGet, isOwn } from "./session.js";
import { $ } from "./ui.js";

const form = $("search-form");
const input = $("search-input");
const panel = $("search-panel");
const status = $("search-status");
const results = $("search-results");
const closeButton = $("search-close");
const moreButton = $("search-more");

// The search shown: {q, before: the cursor of its next page (null before the
// first and after the last), count: results listed, loading}. Replaced by a
// new search, null once closed: an answer to an older one is dropped.
let shown = null;

export function initSearch() {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  closeButton.addEventListener("click", () => closeSearch());
  moreButton.addEventListener("click", () => searchPage());
}

// A new search: the newest page of results for what the box holds.
function search() {
  const q = input.value;
  if (isBlank(q)) return;
  const state = active();
  if (!state) return;
  shown = { q, room: state.room, before: null, count: 0, loading: false };
  panel.hidden = false;
  results.replaceChildren();
  updateSearchMore();
  searchPage();
}

// The next page of the search shown: the results older than the last one
// listed (the API's `before` cursor), added below it, until `next_before` is null.
async function searchPage() {
  const found = shown;
  if (!found || found.loading) return;
  found.loading = true; // More results stays enabled (and focused): a click meanwhile is ignored
  showSearchStatus(found.count ? "Loading more results…" : "Searching…");
  try {
    const query = new URLSearchParams({ room: found.room, q: found.q, limit: HISTORY_PAGE });
    if (found.before) query.set("before", found.before);
    const page = await apiGet(`/api/search?${query}`);
    if (shown !== found) return; // a newer search, or closed
    for (const frame of storedMessages(page)) {
      results.appendChild(renderFrame(frame, { own: isOwn(frame), attachments: false }));
      found.count += 1;
    }
    found.before = typeof page.next_before === "string" ? page.next_before : null;
    const { q, count } = found;
    if (!count) showSearchStatus(`No results for “${q}”.`);
    else if (found.before) showSearchStatus(`The newest ${count} results for “${q}”.`);
    else showSearchStatus(`${count} result${count === 1 ? "" : "s"} for “${q}”.`);
  } catch (error) {
    // A later page keeps its cursor: More results tries it again.
    if (shown === found) showSearchStatus(`Search failed: ${error.message}`, true);
  } finally {
    found.loading = false;
    if (shown === found) updateSearchMore();
  }
}

function updateSearchMore() {
  const hadFocus = document.activeElement === moreButton;
  moreButton.hidden = !shown || !shown.before;
  if (hadFocus && moreButton.hidden) closeButton.focus(); // the end: focus stays in the panel
}

export function closeSearch() {
  shown = null;
  panel.hidden = true;
  results.replaceChildren();
  updateSearchMore();
  showSearchStatus("");
}

function showSearchStatus(message, error = false) {
  status.textContent = message;
  status.classList.toggle("status-error", error);
}
