// Files on received messages: real download links and inline images, fetched
// only when their message comes near the view (the bucket is private and on
// another origin, so each needs a short-lived link from the API).

import { LINK_EARLY } from "./config.js";
import { apiGet } from "./session.js";
import { formatSize, showNotice, textElement } from "./ui.js";

// What a message may carry, as far as rendering needs; the server checked the rest.
export function validAttachments(list) {
  if (!Array.isArray(list)) return [];
  return list.filter(
    (a) =>
      a &&
      typeof a.url === "string" &&
      typeof a.filename === "string" &&
      typeof a.file_type === "string" &&
      Number.isFinite(a.size),
  );
}

// The largest an inline image is shown (CSS pixels); smaller ones at their own size.
const PREVIEW_WIDTH = 320;
const PREVIEW_HEIGHT = 240;

const side = (value) => Number.isInteger(value) && value > 0 && value <= 65535;

// The box an image will fill, known before it is fetched when its sender
// said its size: its own size, scaled down to fit the largest preview.
function previewSize(attachment) {
  const { width, height } = attachment;
  if (!side(width) || !side(height)) return null;
  const scale = Math.min(1, PREVIEW_WIDTH / width, PREVIEW_HEIGHT / height);
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

export function renderAttachments(attachments) {
  const list = document.createElement("ul");
  list.className = "attachments";
  for (const attachment of attachments) {
    const entry = document.createElement("li");
    entry.appendChild(
      attachment.file_type.startsWith("image/") ? renderImage(attachment) : renderFile(attachment).link,
    );
    list.appendChild(entry);
  }
  return list;
}

// Attachments are fetched when their message comes near the view (half the
// list's height above or below it), not when it is rendered: a long history
// does not fetch every image it holds. The element stays observed if its
// message is replaced (our own, when its broadcast arrives).
// Each room's list scrolls on its own, so each has its own observer (a root
// margin counts only around the root, not around the scrolling list inside it).
const nearTasks = new WeakMap(); // observed element -> what to do once it is near
const observers = new WeakMap(); // a room's message list -> its observer
let viewObserver = null; // for an element in no list: near the viewport

function near(entries, observer) {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    observer.unobserve(entry.target);
    const load = nearTasks.get(entry.target);
    nearTasks.delete(entry.target);
    if (load) load();
  }
}

function observerFor(list) {
  if (!list) {
    viewObserver = viewObserver || new IntersectionObserver(near, { rootMargin: "50% 0px" });
    return viewObserver;
  }
  let observer = observers.get(list);
  if (!observer) {
    observer = new IntersectionObserver(near, { root: list, rootMargin: "50% 0px" });
    observers.set(list, observer);
  }
  return observer;
}

// Observed once its message is in its list (it is rendered before it goes in).
function whenNear(element, load) {
  nearTasks.set(element, load);
  queueMicrotask(() => observerFor(element.closest(".messages")).observe(element));
}

// An image shows inline once its message comes near the view, with its file
// link as the caption. Until then (and if it cannot be shown) a box holds its
// place, so the list does not move when the image arrives: the image's own
// size (scaled down to fit) when its sender said it, else the largest size.
// Its bytes come from the private bucket on another origin: fetched, then
// shown from a blob: URL (the CSP allows blob: images, not the storage's origin).
function renderImage(attachment) {
  const file = renderFile(attachment);
  const figure = document.createElement("figure");
  figure.className = "attachment-image";
  const preview = document.createElement("div");
  preview.className = "attachment-preview";
  preview.dataset.state = "waiting";
  const size = previewSize(attachment);
  if (size) {
    // CSSOM, not a style attribute: the CSP allows no inline styles.
    preview.classList.add("attachment-preview-sized");
    preview.style.width = `${size.width}px`;
    preview.style.aspectRatio = `${size.width} / ${size.height}`;
  }
  const caption = document.createElement("figcaption");
  caption.appendChild(file.link);
  figure.append(preview, caption);
  whenNear(preview, () => showImage(preview, attachment, file.url));
  return figure;
}

async function showImage(preview, attachment, url) {
  preview.dataset.state = "loading";
  const failed = () => {
    preview.dataset.state = "failed";
    preview.replaceChildren(textElement("span", "attachment-preview-note", "No preview"));
  };
  let src;
  try {
    src = await blobUrl(await url());
  } catch {
    failed();
    return;
  }
  const image = document.createElement("img");
  image.alt = attachment.filename;
  image.addEventListener(
    "load",
    () => {
      URL.revokeObjectURL(src); // the decoded image stays
      preview.dataset.state = "loaded";
    },
    { once: true },
  );
  image.addEventListener("error", () => {
    URL.revokeObjectURL(src);
    failed(); // not an image after all: the file link remains
  });
  image.src = src;
  preview.appendChild(image);
}

// Any file: a real link (to copy, open in a new tab, see on hover) with its
// name and size, to a presigned URL that lives ATTACHMENT_URL_TTL_SECONDS.
// It gets one when its message comes near the view; hovering or focusing it
// renews one that may have expired, and so does opening it (before it is
// followed). Answers {link, url: () => a promise of a URL that may be used}.
function renderFile(attachment) {
  const link = document.createElement("a");
  link.className = "attachment-file";
  link.title = `Download ${attachment.filename}`;
  // Until it has an href, still a link: in the tab order, announced as one.
  link.tabIndex = 0;
  link.setAttribute("role", "link");
  link.append(
    textElement("span", "attachment-name", attachment.filename),
    textElement("span", "attachment-size", formatSize(attachment.size)),
  );
  let held = null; // {url, staleAt}
  let asking = null;
  const fresh = () => held !== null && Date.now() < held.staleAt;
  const url = () => {
    if (fresh()) return Promise.resolve(held.url);
    asking ||= attachmentLink(attachment)
      .then((got) => {
        held = got;
        link.href = got.url;
        link.removeAttribute("role"); // an <a href> is both already
        link.removeAttribute("tabindex");
        return got.url;
      })
      .finally(() => {
        asking = null;
      });
    return asking;
  };
  const renew = () => url().catch(() => {}); // a failure is reported when the link is opened
  // Opened with a link that may have expired (or none yet): renew it, then
  // open it as asked: here (a plain click or Enter), or in a new tab.
  const open = async (event) => {
    if (fresh()) return; // the browser follows it
    event.preventDefault();
    try {
      await url();
    } catch (error) {
      showNotice(`Could not download ${attachment.filename}: ${error.message}`, { error: true });
      return;
    }
    if (event.button > 0 || event.ctrlKey || event.metaKey || event.shiftKey) {
      window.open(link.href, "_blank", "noopener");
    } else location.assign(link.href); // a download (Content-Disposition): the page stays
  };
  link.addEventListener("click", open);
  link.addEventListener("auxclick", (event) => {
    if (event.button === 1) open(event); // the middle button
  });
  link.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !link.hasAttribute("href")) open(event); // no href: no click
  });
  for (const type of ["pointerenter", "focus", "contextmenu"]) link.addEventListener(type, renew);
  whenNear(link, renew);
  return { link, url };
}

// A short-lived link to an attachment (the bucket is private), counted as
// expired a fifth of its lifetime early, on this page's clock.
async function attachmentLink(attachment) {
  const asked = Date.now();
  const answer = await apiGet(`/api/attachments/link?url=${encodeURIComponent(attachment.url)}`);
  if (typeof answer.url !== "string" || !/^https?:\/\//i.test(answer.url)) {
    throw new Error("The server answered no download link.");
  }
  const lifetime = Number(answer.expires_in) > 0 ? Number(answer.expires_in) * 1000 : 0;
  return { url: answer.url, staleAt: asked + lifetime * (1 - LINK_EARLY) };
}

// The bytes behind a download link, as a blob: URL of this page.
async function blobUrl(url) {
  let response;
  try {
    response = await fetch(url);
  } catch {
    throw new Error("Cannot reach file storage.");
  }
  if (!response.ok) throw new Error(`File storage answered HTTP ${response.status}.`);
  return URL.createObjectURL(await response.blob());
}
