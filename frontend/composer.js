// The message box and the files chosen for the next message: each file
// uploads at once (the API grants a presigned POST, the browser posts it
// straight to S3), and Send waits until every upload is done.

import { backToNewest } from "./history.js";
import { flushOutbox, queueMessage, saveOutbox } from "./outbox.js";
import { isBlank, MAX_ATTACHMENTS, MAX_FRAME_BYTES, messageFrame, newClientId } from "./protocol.js";
import { request } from "./rest.js";
import { active, roomLabel } from "./rooms.js";
import { currentSession } from "./session.js";
import { sendTyping } from "./socket.js";
import { $, formatSize, showNotice, textElement } from "./ui.js";

const form = $("composer");
const input = $("message-input");
const sendButton = $("send");
const attachButton = $("attach");
const attachInput = $("attach-input");
const attachError = $("attach-error");
const stagedList = $("staged");

const TYPING_REPEAT_MS = 3000; // "still typing", while keys keep coming
const TYPING_IDLE_MS = 5000; // no key for this long: no longer typing
let typingIn = null; // {room, sentAt, idle timer} while this user is typing

// Files chosen for the next message, uploading or uploaded, in order:
// {attachment (once granted), xhr (while uploading), done, chip}.
let staged = [];

export function initComposer() {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitMessage();
  });
  // Enter sends, Shift+Enter starts a new line (not while an IME composes).
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (!sendButton.disabled) form.requestSubmit();
    }
  });
  input.addEventListener("input", () => (isBlank(input.value) ? stopTyping() : typing()));
  input.addEventListener("blur", () => stopTyping());
  attachButton.addEventListener("click", () => attachInput.click());
  attachInput.addEventListener("change", () => chooseFiles(Array.from(attachInput.files)));
}

export function focusComposer() {
  input.focus();
}

// Signed out: nothing typed or chosen stays.
export function resetComposer() {
  stopTyping();
  clearStaged();
  showAttachError("");
  input.value = "";
}

// Another room shows: what was typed stays with its room, as a draft.
export function switchDraft(from, to) {
  stopTyping();
  if (from) from.draft = input.value;
  input.value = to ? to.draft : "";
  input.placeholder = to ? `Message ${roomLabel(to)}` : "Message";
}

// The room's members see "… is typing": said once, repeated while keys keep
// coming, taken back after a pause, on sending, or on leaving the box.
function typing() {
  const state = active();
  if (!state) return;
  const now = Date.now();
  if (typingIn && typingIn.room !== state.room) stopTyping();
  if (!typingIn) typingIn = { room: state.room, sentAt: 0, idle: null };
  if (now - typingIn.sentAt > TYPING_REPEAT_MS) {
    typingIn.sentAt = now;
    sendTyping(state.room, true);
  }
  clearTimeout(typingIn.idle);
  typingIn.idle = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  if (!typingIn) return;
  clearTimeout(typingIn.idle);
  sendTyping(typingIn.room, false);
  typingIn = null;
}

// Text, the files uploaded for it, or both. Nothing is sent while a file is
// still uploading: a message never goes without an attachment it was meant to carry.
function submitMessage() {
  if (staged.some((file) => !file.done)) return; // Send is disabled meanwhile
  const attachments = staged.map((file) => file.attachment);
  // With attachments, blank text is allowed and sent as "".
  const text = isBlank(input.value) ? "" : input.value;
  if (!text && !attachments.length) return;
  const state = active();
  if (!state) return;
  const clientId = newClientId();
  const frame = JSON.stringify(messageFrame(state.room, text, attachments, clientId));
  if (new TextEncoder().encode(frame).length > MAX_FRAME_BYTES) {
    showNotice("That message is too long to send.", { error: true });
    return;
  }
  stopTyping();
  backToNewest(state); // a message goes below the newest: the list goes back there
  queueMessage(state.room, text, attachments, clientId);
  saveOutbox();
  input.value = "";
  state.draft = "";
  clearStaged();
  showAttachError("");
  input.focus();
  flushOutbox();
}

// The API says which types and sizes it takes: a refused file is named, with
// the API's reason, and nothing is staged for it.
function chooseFiles(files) {
  showAttachError("");
  for (const file of files) {
    if (staged.length >= MAX_ATTACHMENTS) {
      showAttachError(`A message carries at most ${MAX_ATTACHMENTS} files.`);
      break;
    }
    stageFile(file);
  }
  attachInput.value = ""; // so the same file can be chosen again
}

async function stageFile(file) {
  const entry = { attachment: null, xhr: null, done: false, chip: null };
  entry.chip = renderChip(file, () => unstage(entry));
  staged.push(entry);
  stagedList.appendChild(entry.chip);
  updateComposer();
  try {
    const grant = await request("POST", "/api/attachments", {
      token: currentSession().token,
      body: { filename: file.name, content_type: file.type || "application/octet-stream", size: file.size },
    });
    if (!staged.includes(entry)) return; // removed meanwhile
    entry.attachment = { ...grant.attachment, ...(await pixelSize(file)) };
    await uploadFile(grant.upload, file, entry);
    entry.done = true;
    entry.chip.dataset.state = "ready";
    setChipText(entry.chip, "Ready");
    updateComposer();
  } catch (error) {
    if (!staged.includes(entry)) return; // removed by the user: not a failure
    unstage(entry);
    showAttachError(`${file.name}: ${error.message}`);
  }
}

// An image's width and height, sent with it so that readers can size its
// place before they fetch it; nothing for other files or if it cannot be decoded.
async function pixelSize(file) {
  if (!file.type.startsWith("image/") || typeof createImageBitmap !== "function") return {};
  try {
    const bitmap = await createImageBitmap(file);
    const size = { width: bitmap.width, height: bitmap.height };
    bitmap.close();
    return size.width > 0 && size.height > 0 && size.width <= 65535 && size.height <= 65535 ? size : {};
  } catch {
    return {};
  }
}

// XMLHttpRequest rather than fetch: it reports upload progress.
function uploadFile(upload, file, entry) {
  const body = new FormData();
  for (const [name, value] of Object.entries(upload.fields)) body.append(name, value);
  body.append("file", file); // last: S3 ignores the fields that follow the file
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    entry.xhr = xhr;
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) setChipProgress(entry.chip, event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve();
      else reject(new Error(`File storage refused the upload (HTTP ${xhr.status}).`));
    });
    xhr.addEventListener("error", () => reject(new Error("Cannot reach file storage. Try again.")));
    xhr.addEventListener("abort", () => reject(new Error("Upload cancelled.")));
    xhr.open("POST", upload.url);
    xhr.send(body);
  }).finally(() => {
    entry.xhr = null;
  });
}

function unstage(entry) {
  if (entry.xhr) entry.xhr.abort();
  staged = staged.filter((other) => other !== entry);
  entry.chip.remove();
  updateComposer();
}

function clearStaged() {
  for (const entry of staged) if (entry.xhr) entry.xhr.abort();
  staged = [];
  stagedList.replaceChildren();
  updateComposer();
}

// Send waits for every upload; Attach stops at the per-message limit.
function updateComposer() {
  stagedList.hidden = !staged.length;
  attachButton.disabled = staged.length >= MAX_ATTACHMENTS;
  sendButton.disabled = staged.some((entry) => !entry.done);
}

function showAttachError(message) {
  attachError.textContent = message;
  attachError.hidden = !message;
}

function renderChip(file, onRemove) {
  const chip = document.createElement("li");
  chip.className = "chip";
  chip.dataset.state = "uploading";
  const progress = document.createElement("progress");
  progress.max = 1;
  progress.value = 0;
  progress.setAttribute("aria-label", `Uploading ${file.name}`);
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "chip-remove";
  remove.textContent = "×";
  remove.setAttribute("aria-label", `Remove ${file.name}`);
  remove.addEventListener("click", onRemove);
  chip.append(
    textElement("span", "chip-name", file.name),
    textElement("span", "chip-size", formatSize(file.size)),
    progress,
    textElement("span", "chip-state", "Uploading…"),
    remove,
  );
  return chip;
}

function setChipProgress(chip, fraction) {
  chip.querySelector("progress").value = fraction;
  setChipText(chip, `Uploading ${Math.round(fraction * 100)} %`);
}

function setChipText(chip, text) {
  chip.querySelector(".chip-state").textContent = text;
}
