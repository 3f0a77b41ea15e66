// Page furniture every part uses: element lookup, text-only elements, the
// connection status in the top bar and the notice under the messages.

export const $ = (id) => document.getElementById(id);

const status = $("status");
const notice = $("notice");
let noticeTimer = null;

// User data goes into the page as text, never as HTML.
export function textElement(tag, className, text) {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

export function setStatus(kind, text) {
  status.dataset.state = kind;
  status.textContent = text;
}

export function showNotice(message, { error = false, sticky = false } = {}) {
  notice.textContent = message;
  notice.classList.toggle("notice-error", error);
  notice.hidden = false;
  clearTimeout(noticeTimer);
  if (!sticky) noticeTimer = setTimeout(hideNotice, 5000);
}

export function hideNotice() {
  clearTimeout(noticeTimer);
  notice.hidden = true;
  notice.textContent = "";
}
