// AuroraChat browser client: plain JS, no build step.
// Message data is only ever rendered with textContent, never as HTML.
"use strict";

(() => {
  const TOKEN_KEY = "aurora.token";
  const ROOM = "general";
  const MAX_MESSAGES = 500;
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  // Close codes after which the token is no good: back to the sign-in card.
  const AUTH_CLOSE_CODES = new Set([1008, 4001, 4003]);

  const $ = (id) => document.getElementById(id);
  const el = {
    authView: $("auth-view"),
    authForm: $("auth-form"),
    username: $("username"),
    password: $("password"),
    login: $("login"),
    register: $("register"),
    authError: $("auth-error"),
    chatView: $("chat-view"),
    session: $("session"),
    whoami: $("whoami"),
    status: $("status"),
    logout: $("logout"),
    messages: $("messages"),
    notice: $("notice"),
    composer: $("composer"),
    input: $("message-input"),
    send: $("send"),
  };

  const state = {
    config: null,
    token: null,
    claims: null,
    socket: null,
    attempt: 0,
    reconnectTimer: null,
    noticeTimer: null,
    seen: new Set(),
    lastSent: "",
    rejected: 0,
  };

  // -- configuration ----------------------------------------------------------

  function fallbackConfig() {
    const wsScheme = location.protocol === "https:" ? "wss:" : "ws:";
    return { api_url: location.origin, ws_url: `${wsScheme}//${location.hostname}:8080` };
  }

  async function loadConfig() {
    const fallback = fallbackConfig();
    try {
      const response = await fetch("config.json", { cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const data = await response.json();
      return {
        api_url: stripSlash(typeof data.api_url === "string" && data.api_url ? data.api_url : fallback.api_url),
        ws_url: stripSlash(typeof data.ws_url === "string" && data.ws_url ? data.ws_url : fallback.ws_url),
      };
    } catch {
      return fallback;
    }
  }

  function stripSlash(url) {
    return url.replace(/\/+$/, "");
  }

  // -- token ------------------------------------------------------------------

  function decodeClaims(token) {
    // Display only (username, expiry); the server verifies the signature.
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const padded = part + "=".repeat((4 - (part.length % 4)) % 4);
      const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
      const claims = JSON.parse(new TextDecoder().decode(bytes));
      return claims && typeof claims === "object" ? claims : null;
    } catch {
      return null;
    }
  }

  function isExpired(claims) {
    return typeof claims?.exp === "number" && claims.exp * 1000 <= Date.now();
  }

  function storeToken(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // Storage disabled: the session lasts as long as the page.
    }
  }

  function storedToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch {
      return null;
    }
  }

  // -- REST -------------------------------------------------------------------

  async function postJSON(path, body) {
    let response;
    try {
      response = await fetch(state.config.api_url + path, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
    } catch {
      throw new Error("Cannot reach the server. Check your connection and try again.");
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const message = (data && (data.error || data.message)) || `Request failed (HTTP ${response.status})`;
      const error = new Error(String(message));
      error.code = data && data.code;
      error.status = response.status;
      throw error;
    }
    return data || {};
  }

  function credentials() {
    return { username: el.username.value.trim(), password: el.password.value };
  }

  function checkCredentials({ username, password }, registering) {
    if (!username || !password) return "Enter a username and a password.";
    if (registering) {
      if (!/^[A-Za-z0-9_.-]{3,32}$/.test(username)) {
        return "Username must be 3-32 characters: letters, digits, '_', '.', '-'";
      }
      if (password.length < 8 || password.length > 128) return "Password must be 8-128 characters";
    }
    return null;
  }

  async function authenticate(registering) {
    const creds = credentials();
    const problem = checkCredentials(creds, registering);
    if (problem) {
      showAuthError(problem);
      return;
    }
    showAuthError("");
    setAuthBusy(true, registering);
    try {
      if (registering) await postJSON("/api/auth/register", creds);
      const data = await postJSON("/api/auth/login", creds);
      if (typeof data.token !== "string" || !data.token) throw new Error("The server sent no token.");
      el.password.value = "";
      startSession(data.token);
    } catch (error) {
      showAuthError(error.message || "Something went wrong.");
    } finally {
      setAuthBusy(false, registering);
    }
  }

  function setAuthBusy(busy, registering) {
    el.login.disabled = busy;
    el.register.disabled = busy;
    el.authForm.setAttribute("aria-busy", String(busy));
    el.login.textContent = busy && !registering ? "Logging in…" : "Log in";
    el.register.textContent = busy && registering ? "Registering…" : "Register";
  }

  function showAuthError(message) {
    el.authError.textContent = message;
    el.authError.hidden = !message;
  }

  // -- views ------------------------------------------------------------------

  function startSession(token) {
    const claims = decodeClaims(token);
    if (!claims || isExpired(claims)) {
      endSession("Your session has expired. Please log in again.");
      return;
    }
    state.token = token;
    state.claims = claims;
    storeToken(token);
    el.whoami.textContent = typeof claims.username === "string" ? claims.username : "";
    el.authView.hidden = true;
    el.chatView.hidden = false;
    el.session.hidden = false;
    state.attempt = 0;
    connect();
    el.input.focus();
  }

  function endSession(message) {
    state.token = null;
    state.claims = null;
    storeToken(null);
    disconnect();
    clearMessages();
    hideNotice();
    el.input.value = "";
    el.chatView.hidden = true;
    el.session.hidden = true;
    el.authView.hidden = false;
    showAuthError(message || "");
    setStatus("offline", "Offline");
    (el.username.value ? el.password : el.username).focus();
  }

  // -- WebSocket --------------------------------------------------------------

  function setStatus(kind, text) {
    el.status.dataset.state = kind;
    el.status.textContent = text;
    el.send.disabled = kind !== "online";
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    if (!state.token) return;
    if (isExpired(state.claims)) {
      endSession("Your session has expired. Please log in again.");
      return;
    }
    setStatus("connecting", state.attempt ? "Reconnecting…" : "Connecting…");
    let socket;
    try {
      socket = new WebSocket(`${state.config.ws_url}/?token=${encodeURIComponent(state.token)}`);
    } catch {
      scheduleReconnect(false);
      return;
    }
    state.socket = socket;
    let opened = false;

    socket.addEventListener("open", () => {
      if (state.socket !== socket) return;
      opened = true;
      state.attempt = 0;
      state.rejected = 0;
      setStatus("online", "Connected");
    });

    socket.addEventListener("message", (event) => {
      if (state.socket !== socket) return;
      onFrame(event.data);
    });

    socket.addEventListener("close", (event) => {
      if (state.socket !== socket) return;
      state.socket = null;
      if (!state.token) return;
      if (AUTH_CLOSE_CODES.has(event.code)) {
        endSession("Your session is no longer valid. Please log in again.");
        return;
      }
      if (event.code === 4008) showNotice("Disconnected for falling behind; reconnecting.");
      scheduleReconnect(opened);
    });
  }

  async function scheduleReconnect(wasOpen) {
    if (!state.token) return;
    // A refused upgrade (401) looks like any network failure to a browser. If the
    // socket never opened although the server is reachable, the token is suspect.
    if (!wasOpen && isExpired(state.claims)) {
      endSession("Your session has expired. Please log in again.");
      return;
    }
    if (!wasOpen && state.attempt >= 1 && (await fanoutReachable())) {
      if (!state.token) return;
      state.rejected += 1;
      if (state.rejected >= 2) {
        state.rejected = 0;
        endSession("The chat server refused your session. Please log in again.");
        return;
      }
    }
    if (!state.token) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.attempt);
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    state.attempt += 1;
    setStatus("reconnecting", `Offline — retrying in ${Math.max(1, Math.round(delay / 1000))} s`);
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = setTimeout(connect, delay);
  }

  async function fanoutReachable() {
    const url = state.config.ws_url.replace(/^ws/, "http") + "/healthz";
    try {
      await fetch(url, { mode: "no-cors", cache: "no-store" });
      return true;
    } catch {
      return false;
    }
  }

  function disconnect() {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    const socket = state.socket;
    state.socket = null;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, "log out");
  }

  function onFrame(raw) {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    switch (frame.type) {
      case "message":
        if (frame.room === undefined || frame.room === ROOM) addMessage(frame);
        break;
      case "rate_limited": {
        const seconds = Math.max(1, Math.ceil((Number(frame.retry_after_ms) || 1000) / 1000));
        restoreUnsent();
        showNotice(`You're sending too fast. Message not sent; try again in ${seconds} s.`);
        break;
      }
      case "error":
        restoreUnsent();
        showNotice(`Message not sent: ${frame.message || frame.code || "error"}`, true);
        break;
      default:
        break;
    }
  }

  // -- messages ---------------------------------------------------------------

  function sendMessage() {
    const text = el.input.value;
    if (!text.trim()) return;
    const socket = state.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      showNotice("Not connected yet; your message is kept in the box.");
      return;
    }
    socket.send(JSON.stringify({ text }));
    state.lastSent = text;
    el.input.value = "";
    el.input.focus();
  }

  function restoreUnsent() {
    if (state.lastSent && !el.input.value) el.input.value = state.lastSent;
    state.lastSent = "";
  }

  function addMessage(frame) {
    const id = typeof frame.id === "string" ? frame.id : null;
    if (id) {
      if (state.seen.has(id)) return;
      state.seen.add(id);
    }
    const user = typeof frame.user === "string" ? frame.user : "unknown";
    const text = typeof frame.text === "string" ? frame.text : "";
    const mine = state.claims && user === state.claims.username;
    if (mine && text === state.lastSent) state.lastSent = "";

    const item = document.createElement("li");
    item.className = mine ? "message own" : "message";
    if (id) item.dataset.id = id;

    const meta = document.createElement("div");
    meta.className = "meta";
    const name = document.createElement("span");
    name.className = "user";
    name.textContent = user;
    meta.appendChild(name);

    const ts = Number(frame.ts);
    if (Number.isFinite(ts) && ts > 0) {
      const when = new Date(ts);
      const time = document.createElement("time");
      time.className = "time";
      time.dateTime = when.toISOString();
      time.title = when.toLocaleString();
      time.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      meta.appendChild(time);
    }

    const body = document.createElement("p");
    body.className = "text";
    body.textContent = text;

    item.append(meta, body);

    const list = el.messages;
    const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    list.appendChild(item);
    while (list.children.length > MAX_MESSAGES) {
      const first = list.firstElementChild;
      if (first.dataset.id) state.seen.delete(first.dataset.id);
      first.remove();
    }
    if (nearBottom || mine) list.scrollTop = list.scrollHeight;
  }

  function clearMessages() {
    el.messages.replaceChildren();
    state.seen.clear();
    state.lastSent = "";
  }

  function showNotice(message, isError = false) {
    el.notice.textContent = message;
    el.notice.classList.toggle("notice-error", isError);
    el.notice.hidden = false;
    clearTimeout(state.noticeTimer);
    state.noticeTimer = setTimeout(hideNotice, 5000);
  }

  function hideNotice() {
    clearTimeout(state.noticeTimer);
    el.notice.hidden = true;
    el.notice.textContent = "";
  }

  // -- wiring -----------------------------------------------------------------

  el.authForm.addEventListener("submit", (event) => {
    event.preventDefault();
    authenticate(false);
  });
  el.register.addEventListener("click", () => authenticate(true));
  el.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    sendMessage();
  });
  el.logout.addEventListener("click", () => endSession(""));
  window.addEventListener("online", () => {
    if (state.token && !state.socket) {
      state.attempt = 0;
      connect();
    }
  });

  async function init() {
    showAuthError("");
    setStatus("offline", "Offline");
    state.config = await loadConfig();
    document.body.dataset.ready = "true";
    const token = storedToken();
    if (token) startSession(token);
    else el.username.focus();
  }

  init();
})();
