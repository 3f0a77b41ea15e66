// AuroraChat browser client: plain JS, no build step. It speaks protocol v1
// (docs/protocol.md): the token travels as a WebSocket subprotocol, never in a
// URL; messages carry a client_id and are resent after a reconnect until the
// server acknowledges them; a reconnect resumes the room where it left off.
// Message data is only ever rendered with textContent, never as HTML.
"use strict";

(() => {
  const ROOM = "general";
  const SUBPROTOCOL = "aurora.v1";
  // The session is the browser's, shared by its tabs (localStorage); the outbox
  // is one tab's (sessionStorage), so two tabs never send each other's messages.
  const SESSION_KEY = "aurora.session"; // {token, refresh_token, issued_at, expires_at}
  const PENDING_KEY = "aurora.pending"; // [{client_id, text, attachments}] not yet acknowledged
  const STORAGE = { [SESSION_KEY]: "localStorage", [PENDING_KEY]: "sessionStorage" };
  const REFRESH_LOCK = "aurora.refresh"; // held by the one tab (of this origin) refreshing
  const ROTATED_LOCK = "aurora.rotated:"; // + a refresh token a tab has rotated (see markRotated)
  const MAX_MESSAGES = 500;
  const MAX_FRAME_BYTES = 16 * 1024; // the server closes the connection (1009) above this
  const MAX_ATTACHMENTS = 5; // per message (docs/protocol.md); types and sizes: the API says
  const LINK_EARLY = 0.2; // a download link counts as expired this share of its lifetime early
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const READY_TIMEOUT_MS = 10000; // an open socket that never says `ready` is not working
  const HEARTBEAT_MS = 25000; // the browser hides the server's pings: a ping of our own
  const PONG_TIMEOUT_MS = 10000; //   finds a dead connection before TCP does
  const RETRY_MS = 2000; // after `unavailable` / `backpressure`
  const HISTORY_PAGE = 50; // messages per scrollback or search request (the API allows 1-100)
  const GAP_PAGE = 100; // per gap-fill request: the API's largest page
  const STORAGE_LAG_MS = 10000; // at most this long for another tab's session to reach storage
  const CLOSE = { AUTH: 4001, FORBIDDEN: 4003, TOO_SLOW: 4008, TOO_MANY: 4029 };
  // Errors after which resending the same message cannot help.
  const RETRYABLE_ERRORS = new Set(["unavailable", "backpressure", "not_joined"]);

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
    attach: $("attach"),
    attachInput: $("attach-input"),
    attachError: $("attach-error"),
    staged: $("staged"),
    loadOlder: $("load-older"),
    retryGap: $("retry-gap"),
    historyStatus: $("history-status"),
    searchForm: $("search-form"),
    searchInput: $("search-input"),
    searchPanel: $("search-panel"),
    searchStatus: $("search-status"),
    searchResults: $("search-results"),
    searchClose: $("search-close"),
    searchMore: $("search-more"),
  };

  const state = {
    config: null,
    session: null, // {token, refreshToken, issuedAt, expiresAt, username}
    userId: null, // from `ready`: tells our own broadcasts from others'
    conn: null, // the current connection: {ws, opened, ready, joined, inflight, ...}
    // Messages typed but not yet acknowledged, in the order they were typed:
    // client_id -> {clientId, text, attachments, item, conn}. `conn` is the connection it was
    // last sent on; a new connection resends it with the same client_id.
    outbox: new Map(),
    // Our messages already acknowledged whose broadcast has not arrived yet:
    // client_id -> list item, so the broadcast updates it instead of adding one.
    echoes: new Map(),
    // Files chosen for the next message, uploading or uploaded, in order:
    // {attachment (once granted), xhr (while uploading), done, chip}.
    staged: [],
    lastId: null, // the newest message id shown: `since` of the next join
    // Reads from the history API. Replaced when the list is cleared, so an
    // answer to a request made before is dropped. `gap`: messages missed
    // beyond the resume window, still to be read: {after: the last id read}.
    history: { loading: false, end: false, gap: null, filling: false },
    // The search shown: {q, before: the cursor of its next page (null before the
    // first and after the last), count: results listed, loading}. Replaced by a
    // new search, null once closed: an answer to an older one is dropped.
    search: null,
    attempt: 0,
    authRetried: false, // a 4001 (or refused upgrade) gets one refresh, then login
    refreshing: null,
    holdUntil: 0, // after `rate_limited`, nothing is sent before this time
    timers: { reconnect: null, refresh: null, hold: null, notice: null },
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

  // -- message ids ------------------------------------------------------------

  // "<ms>-<seq>": compared as two integers, never as strings.
  function parseId(id) {
    const match = typeof id === "string" ? /^(\d+)-(\d+)$/.exec(id) : null;
    return match ? [Number(match[1]), Number(match[2])] : null;
  }

  function compareIds(a, b) {
    return a[0] - b[0] || a[1] - b[1];
  }

  function newClientId() {
    // getRandomValues works on plain http too (randomUUID needs a secure context).
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // -- storage ----------------------------------------------------------------

  function readStorage(key) {
    try {
      return JSON.parse(window[STORAGE[key]].getItem(key));
    } catch {
      return null; // storage disabled or garbage: start without it
    }
  }

  function writeStorage(key, value) {
    try {
      if (value === null) window[STORAGE[key]].removeItem(key);
      else window[STORAGE[key]].setItem(key, JSON.stringify(value));
    } catch {
      // Storage disabled: the session lasts as long as the page.
    }
  }

  function saveSession() {
    const s = state.session;
    writeStorage(
      SESSION_KEY,
      s && { token: s.token, refresh_token: s.refreshToken, issued_at: s.issuedAt, expires_at: s.expiresAt },
    );
  }

  function saveOutbox() {
    const entries = Array.from(state.outbox.values(), (m) => ({
      client_id: m.clientId,
      text: m.text,
      attachments: m.attachments,
    }));
    writeStorage(PENDING_KEY, entries.length ? entries : null);
  }

  // -- tokens -----------------------------------------------------------------

  function decodeClaims(token) {
    // Display only (username); the server verifies the signature.
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

  // A login or refresh answer as a session. Expiry is counted from `expires_in`
  // on this machine's clock, so a skewed clock does not matter.
  function sessionFrom(data) {
    if (typeof data.token !== "string" || !data.token) throw new Error("The server sent no token.");
    const claims = decodeClaims(data.token) || {};
    const now = Date.now();
    const lifetime = Number(data.expires_in) > 0 ? Number(data.expires_in) * 1000 : 0;
    return {
      token: data.token,
      refreshToken: typeof data.refresh_token === "string" ? data.refresh_token : null,
      issuedAt: now,
      expiresAt: lifetime ? now + lifetime : Number(claims.exp) * 1000 || now,
      username: typeof claims.username === "string" ? claims.username : "",
    };
  }

  function storedSession() {
    const data = readStorage(SESSION_KEY);
    if (!data || typeof data.token !== "string") return null;
    const claims = decodeClaims(data.token) || {};
    return {
      token: data.token,
      refreshToken: typeof data.refresh_token === "string" ? data.refresh_token : null,
      issuedAt: Number(data.issued_at) || Date.now(),
      expiresAt: Number(data.expires_at) || Number(claims.exp) * 1000 || 0,
      username: typeof claims.username === "string" ? claims.username : "",
    };
  }

  function expired(session) {
    return session.expiresAt <= Date.now();
  }

  // Refresh well before expiry: a fifth of the lifetime ahead (at least a minute,
  // at most half the lifetime), so a long-open tab never holds a dead token.
  function scheduleRefresh() {
    clearTimeout(state.timers.refresh);
    const s = state.session;
    if (!s || !s.refreshToken) return;
    const lifetime = s.expiresAt - s.issuedAt;
    const lead = Math.min(lifetime / 2, Math.max(60000, lifetime / 5));
    const delay = Math.min(2 ** 31 - 1, Math.max(0, s.expiresAt - lead - Date.now()));
    state.timers.refresh = setTimeout(refreshOnTime, delay);
  }

  async function refreshOnTime() {
    const outcome = await refreshSession();
    if (outcome === "invalid") endSession("Your session has ended. Please log in again.");
    else if (outcome === "unavailable") {
      clearTimeout(state.timers.refresh);
      state.timers.refresh = setTimeout(refreshOnTime, 20000 + Math.random() * 20000);
    }
  }

  // One refresh at a time, in this tab and across the browser's tabs: the refresh
  // token rotates, and presenting a rotated one ends the session (it looks stolen).
  function refreshSession() {
    if (!state.refreshing) {
      const before = state.session;
      state.refreshing = withRefreshLock(() => doRefresh(before)).finally(() => {
        state.refreshing = null;
      });
    }
    return state.refreshing;
  }

  // Web Locks exist in secure contexts only (https, localhost, 127.0.0.1);
  // elsewhere each tab refreshes on its own, as one tab always may.
  function withRefreshLock(task) {
    return navigator.locks ? navigator.locks.request(REFRESH_LOCK, task) : task();
  }

  async function doRefresh(before) {
    if (!before || !before.refreshToken) return "invalid";
    // Another tab may have rotated the refresh token while this one waited for
    // the lock: its new session is ours too.
    const stored = await rotatedSession(before.refreshToken);
    if (stored) {
      if (state.session && state.session.token !== stored.token) useToken(stored);
      return state.session ? "ok" : "stale";
    }
    let data;
    try {
      data = await postJSON("/api/auth/refresh", { refresh_token: before.refreshToken });
    } catch (error) {
      return error.status === 400 || error.status === 401 ? "invalid" : "unavailable";
    }
    if (state.session !== before) return "stale"; // logged out meanwhile
    useToken(sessionFrom(data));
    saveSession();
    await markRotated(before.refreshToken); // before the refresh lock is released
    return "ok";
  }

  // Chromium hands localStorage writes to other tabs asynchronously: the next
  // tab to get the refresh lock may still read the old session, and would
  // present the rotated refresh token. The lock manager has no such lag, so the
  // tab that rotates a refresh token also holds a lock named after it (until
  // the tab closes), and a tab that sees that lock waits for storage to catch up.
  function markRotated(refreshToken) {
    if (!navigator.locks) return undefined;
    return new Promise((granted) => {
      navigator.locks.request(ROTATED_LOCK + refreshToken, () => {
        granted();
        return new Promise(() => {}); // held for the tab's lifetime
      });
    });
  }

  // The stored session, if it no longer holds `refreshToken` (another tab
  // rotated it); null if it does, and nobody has rotated it.
  async function rotatedSession(refreshToken) {
    const rotated = () => {
      const stored = storedSession();
      return stored && stored.refreshToken !== refreshToken ? stored : null;
    };
    if (rotated() || !navigator.locks) return rotated();
    const { held } = await navigator.locks.query();
    if (!held.some((lock) => lock.name === ROTATED_LOCK + refreshToken)) return null;
    for (let waited = 0; !rotated() && waited < STORAGE_LAG_MS; waited += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return rotated();
  }

  // A new token for the session this tab is in (refreshed here or in another
  // tab): keep it, and extend the open connection with it rather than let the
  // server close it (4001).
  function useToken(session) {
    state.session = session;
    scheduleRefresh();
    const conn = state.conn;
    if (conn && conn.ready) send(conn, { type: "auth", token: session.token }, { kind: "auth" });
  }

  // Another tab logged in, refreshed or logged out: this one follows.
  function onSessionStored() {
    const stored = storedSession();
    const current = state.session;
    if (!stored) {
      if (current) leaveSession("You were signed out in another tab.");
    } else if (!current) {
      startSession(stored);
    } else if (stored.username !== current.username) {
      leaveSession("");
      startSession(stored);
    } else if (stored.token !== current.token) {
      useToken(stored);
    }
  }

  // -- REST -------------------------------------------------------------------

  async function request(method, path, { body, token } = {}) {
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(state.config.api_url + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
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

  function postJSON(path, body) {
    return request("POST", path, { body });
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
      const session = sessionFrom(await postJSON("/api/auth/login", creds));
      el.password.value = "";
      startSession(session);
      saveSession(); // the browser's other tabs follow (onSessionStored)
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

  function startSession(session) {
    if (expired(session) && !session.refreshToken) {
      endSession("Your session has expired. Please log in again.");
      return;
    }
    state.session = session;
    scheduleRefresh();
    el.whoami.textContent = session.username;
    el.authView.hidden = true;
    el.chatView.hidden = false;
    el.session.hidden = false;
    // Messages typed before a reload are still owed to the server.
    for (const { client_id: clientId, text, attachments } of readStorage(PENDING_KEY) || []) {
      if (typeof clientId === "string" && typeof text === "string") {
        queueMessage(text, validAttachments(attachments), clientId);
      }
    }
    state.attempt = 0;
    connect();
    el.input.focus();
  }

  // The session is over, for every tab of the browser (onSessionStored).
  function endSession(message) {
    writeStorage(SESSION_KEY, null);
    leaveSession(message);
  }

  // This tab leaves the session, ended here or in another tab.
  function leaveSession(message) {
    state.session = null;
    state.userId = null;
    state.authRetried = false;
    clearTimeout(state.timers.refresh);
    clearTimeout(state.timers.hold);
    writeStorage(PENDING_KEY, null);
    disconnect();
    clearMessages();
    clearStaged();
    showAttachError("");
    hideNotice();
    el.input.value = "";
    el.chatView.hidden = true;
    el.session.hidden = true;
    el.authView.hidden = false;
    showAuthError(message || "");
    setStatus("offline", "Offline");
    (el.username.value ? el.password : el.username).focus();
  }

  async function logout() {
    const token = state.session && state.session.token;
    endSession("");
    if (!token) return;
    try {
      // Revokes this access token and its refresh token on every server at once.
      await request("POST", "/api/auth/logout", { token });
    } catch {
      // Already invalid, or the server is unreachable: the page forgot it anyway.
    }
  }

  // -- WebSocket --------------------------------------------------------------

  function setStatus(kind, text) {
    el.status.dataset.state = kind;
    el.status.textContent = text;
  }

  function connect() {
    clearTimeout(state.timers.reconnect);
    state.timers.reconnect = null;
    const session = state.session;
    if (!session || state.conn) return;
    if (expired(session)) {
      renewThenConnect();
      return;
    }
    setStatus("connecting", state.attempt ? "Reconnecting…" : "Connecting…");
    let ws;
    try {
      ws = new WebSocket(state.config.ws_url, [SUBPROTOCOL, `bearer.${session.token}`]);
    } catch {
      scheduleReconnect();
      return;
    }
    const conn = { ws, opened: false, ready: false, joined: false, replaying: 0, inflight: [], timers: [] };
    state.conn = conn;

    ws.addEventListener("open", () => {
      if (state.conn !== conn) return;
      conn.opened = true;
      if (ws.protocol !== SUBPROTOCOL) {
        showNotice("The chat server does not speak protocol v1.", { error: true, sticky: true });
        drop(conn);
        return;
      }
      conn.timers.push(
        setTimeout(() => {
          if (!conn.ready) drop(conn);
        }, READY_TIMEOUT_MS),
      );
    });
    ws.addEventListener("message", (event) => {
      if (state.conn === conn) onFrame(conn, event.data);
    });
    ws.addEventListener("close", (event) => {
      if (state.conn !== conn) return;
      detach(conn);
      onClose(conn, event);
    });
  }

  // Forget a connection: what was in flight on it stays in the outbox.
  function detach(conn) {
    if (state.conn === conn) state.conn = null;
    conn.timers.forEach((timer) => clearTimeout(timer));
    clearInterval(conn.heartbeat);
    for (const message of state.outbox.values()) {
      if (message.conn === conn) message.conn = null;
    }
  }

  // Give up on a connection that is not working and start over.
  function drop(conn) {
    detach(conn);
    if (conn.ws.readyState <= WebSocket.OPEN) conn.ws.close(1000, "reconnecting");
    scheduleReconnect();
  }

  function disconnect() {
    clearTimeout(state.timers.reconnect);
    state.timers.reconnect = null;
    const conn = state.conn;
    if (!conn) return;
    detach(conn);
    if (conn.ws.readyState <= WebSocket.OPEN) conn.ws.close(1000, "log out");
  }

  async function onClose(conn, event) {
    if (!state.session) return;
    const reason = event.reason;
    switch (event.code) {
      case CLOSE.AUTH:
        renewThenConnect();
        return;
      case CLOSE.FORBIDDEN:
        endSession(reason || "The chat server refused this session. Please log in again.");
        return;
      case CLOSE.TOO_MANY:
        showNotice(`${reason || "Too many connections"}: close another tab or device. Retrying…`, {
          error: true,
          sticky: true,
        });
        state.attempt = Math.max(state.attempt, 5); // the slow end of the backoff
        scheduleReconnect();
        return;
      case CLOSE.TOO_SLOW:
        showNotice("Disconnected for falling behind; reconnecting.");
        break;
      default:
        break;
    }
    if (!conn.opened) {
      // A refused upgrade (401, 403, 503) looks like a network failure to a
      // browser. If the server is reachable, suspect the token: renew it once.
      const reachable = await fanoutReachable();
      if (!state.session || state.conn) return;
      if (reachable && !state.authRetried) {
        renewThenConnect();
        return;
      }
    }
    scheduleReconnect();
  }

  // The token was refused (4001) or is expired: refresh once, then connect with
  // the new one; a refresh the server refuses means logging in again.
  async function renewThenConnect() {
    if (state.authRetried) {
      endSession("Your session has ended. Please log in again.");
      return;
    }
    state.authRetried = true;
    setStatus("connecting", "Renewing session…");
    const outcome = await refreshSession();
    if (!state.session) return;
    if (outcome === "invalid") endSession("Your session has ended. Please log in again.");
    else if (outcome === "unavailable") {
      state.authRetried = false; // the refresh did not happen: it may be tried again
      scheduleReconnect();
    } else connect();
  }

  function scheduleReconnect() {
    if (!state.session || state.conn) return;
    // Exponential backoff with jitter, so a restarted server is not hit by every
    // client at the same instant.
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.attempt);
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    state.attempt += 1;
    setStatus("reconnecting", `Offline — retrying in ${Math.max(1, Math.round(delay / 1000))} s`);
    clearTimeout(state.timers.reconnect);
    state.timers.reconnect = setTimeout(connect, delay);
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

  // Every request frame gets exactly one reply, in order (docs/protocol.md), so
  // the replies are matched to `inflight` first in, first out.
  function send(conn, frame, request) {
    if (conn.ws.readyState !== WebSocket.OPEN) return; // closing: its close event follows
    conn.ws.send(JSON.stringify(frame));
    if (request) conn.inflight.push(request);
  }

  function reply(conn) {
    return conn.inflight.shift() || { kind: "none" };
  }

  function onFrame(conn, raw) {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    switch (frame.type) {
      case "ready":
        if (conn.ready) reply(conn); // the answer to a re-`auth`
        else onReady(conn, frame);
        break;
      case "joined":
        reply(conn);
        onJoined(conn, frame);
        break;
      case "message":
        if (frame.room !== ROOM) break;
        addMessage(frame);
        if (conn.replaying > 0 && --conn.replaying === 0) replayed(conn);
        break;
      case "ack":
        reply(conn);
        onAck(frame);
        break;
      case "rate_limited":
        onRateLimited(reply(conn), frame);
        break;
      case "error":
        onError(conn, reply(conn), frame);
        break;
      case "pong":
        reply(conn);
        conn.pingSentAt = 0;
        break;
      default:
        break; // typing, left, and anything newer
    }
  }

  function onReady(conn, frame) {
    conn.ready = true;
    state.attempt = 0;
    state.authRetried = false;
    if (typeof frame.user_id === "string") state.userId = frame.user_id;
    setStatus("connecting", "Joining…");
    // From the last message shown; with none yet, the room's recent window.
    conn.since = state.lastId;
    send(conn, { type: "join", room: ROOM, since: state.lastId || "0-0" }, { kind: "join" });
    conn.heartbeat = setInterval(() => heartbeat(conn), HEARTBEAT_MS);
  }

  function heartbeat(conn) {
    if (conn.pingSentAt && Date.now() - conn.pingSentAt > PONG_TIMEOUT_MS) {
      drop(conn);
    } else if (!conn.pingSentAt) {
      conn.pingSentAt = Date.now();
      send(conn, { type: "ping" }, { kind: "ping" });
    }
  }

  function onJoined(conn, frame) {
    if (frame.room !== ROOM) return;
    conn.joined = true;
    setStatus("online", "Connected");
    // The window no longer reaches back to the last message shown: what lies
    // between it and the first message replayed is read from the history API.
    if (frame.recovered === false && conn.since) conn.gap = { after: conn.since };
    // The `missed` messages follow. Send the outbox after them: one of ours that
    // the server stored before the line dropped shows up there and is settled,
    // not resent (a resend is deduplicated only for IDEMPOTENCY_TTL_SECONDS).
    conn.replaying = Math.max(0, Number(frame.missed) || 0);
    if (conn.replaying) {
      const giveUp = () => {
        conn.replaying = 0; // should not happen; better a deduplicated resend than none
        replayed(conn);
      };
      conn.timers.push(setTimeout(giveUp, READY_TIMEOUT_MS));
    } else replayed(conn);
  }

  // The gap first: a send of ours that was stored while we were away shows up
  // there (with its client_id) and is settled instead of sent again.
  function replayed(conn) {
    if (conn.gap) {
      state.history.gap = conn.gap;
      conn.gap = null;
      fillGap();
    }
    flushOutbox();
  }

  // -- messages ---------------------------------------------------------------

  // Text, the files uploaded for it, or both. Nothing is sent while a file is
  // still uploading: a message never goes without an attachment it was meant to carry.
  function submitMessage() {
    if (state.staged.some((file) => !file.done)) return; // Send is disabled meanwhile
    const attachments = state.staged.map((file) => file.attachment);
    // With attachments, blank text is allowed and sent as "".
    const text = isBlank(el.input.value) ? "" : el.input.value;
    if (!text && !attachments.length) return;
    const clientId = newClientId();
    const frame = JSON.stringify(messageFrame(text, attachments, clientId));
    if (new TextEncoder().encode(frame).length > MAX_FRAME_BYTES) {
      showNotice("That message is too long to send.", { error: true });
      return;
    }
    queueMessage(text, attachments, clientId);
    saveOutbox();
    el.input.value = "";
    clearStaged();
    showAttachError("");
    el.input.focus();
    flushOutbox();
  }

  function messageFrame(text, attachments, clientId) {
    const frame = { type: "message", room: ROOM, text, client_id: clientId };
    if (attachments.length) frame.attachments = attachments;
    return frame;
  }

  // The server ignores blank text without an answer; its idea of blank is
  // Python's str.strip(), which also strips \x1c-\x1f and \x85.
  function isBlank(text) {
    return !text.replace(/[\s\x1c-\x1f\x85]/g, "");
  }

  // A message shows at once, marked as sending, and stays in the outbox until
  // its ack or broadcast arrives, across reconnects and reloads.
  function queueMessage(text, attachments, clientId) {
    const item = renderMessage({ user: state.session.username, text, attachments, own: true });
    item.classList.add("pending");
    item.dataset.clientId = clientId;
    setItemState(item, "Sending…");
    insertItem(item, true);
    state.outbox.set(clientId, { clientId, text, attachments, item, conn: null });
  }

  // Send, in the order typed, what has not been sent on this connection yet.
  function flushOutbox() {
    const conn = state.conn;
    // Held while the gap is read (see replayed); a failed read sends anyway.
    if (!conn || !conn.joined || conn.replaying > 0 || state.history.filling) return;
    const wait = state.holdUntil - Date.now();
    if (wait > 0) {
      clearTimeout(state.timers.hold);
      state.timers.hold = setTimeout(flushOutbox, wait);
      return;
    }
    for (const message of state.outbox.values()) {
      if (message.conn === conn) continue;
      message.conn = conn;
      const frame = messageFrame(message.text, message.attachments, message.clientId);
      send(conn, frame, { kind: "message", clientId: message.clientId });
    }
  }

  // Sent: the server stored it (`ack`, possibly a duplicate of an earlier send).
  function settle(clientId, id) {
    const message = state.outbox.get(clientId);
    if (!message) return null;
    state.outbox.delete(clientId);
    saveOutbox();
    const item = message.item;
    item.classList.remove("pending");
    setItemState(item, "");
    if (id) item.dataset.id = id;
    return item;
  }

  function onAck(frame) {
    if (typeof frame.client_id !== "string") return;
    const item = settle(frame.client_id, frame.id);
    // The broadcast may still come (live or in a replay): it updates this item.
    if (item) state.echoes.set(frame.client_id, item);
  }

  function onRateLimited(request, frame) {
    const wait = Math.max(100, Number(frame.retry_after_ms) || 1000);
    state.holdUntil = Date.now() + wait;
    requeue(request);
    showNotice(`You're sending too fast; retrying in ${Math.ceil(wait / 1000)} s.`);
  }

  function onError(conn, request, frame) {
    const code = typeof frame.code === "string" ? frame.code : "error";
    const text = typeof frame.message === "string" && frame.message ? frame.message : code;
    if (request.kind === "message") {
      if (RETRYABLE_ERRORS.has(code)) {
        state.holdUntil = Date.now() + RETRY_MS;
        requeue(request);
        showNotice(`Not sent yet (${text}); retrying.`);
      } else fail(request.clientId, text);
      return;
    }
    if (request.kind === "join" && code === "invalid_id") {
      state.lastId = null; // not an id this server knows: start from its window
      send(conn, { type: "join", room: ROOM, since: "0-0" }, { kind: "join" });
      return;
    }
    if (request.kind === "auth") {
      // The new token could not be checked right now; try again shortly.
      conn.timers.push(setTimeout(() => state.conn === conn && doReauth(conn), RETRY_MS));
    }
    showNotice(text, { error: true });
  }

  function doReauth(conn) {
    if (state.session) send(conn, { type: "auth", token: state.session.token }, { kind: "auth" });
  }

  // Not sent this time: send again later, with the same client_id.
  function requeue(request) {
    const message = request.kind === "message" && state.outbox.get(request.clientId);
    if (message) message.conn = null;
    flushOutbox();
  }

  function fail(clientId, reason) {
    const message = state.outbox.get(clientId);
    if (!message) return;
    state.outbox.delete(clientId);
    saveOutbox();
    message.item.classList.replace("pending", "failed");
    setItemState(message.item, `Not sent: ${reason}`);
    showNotice(`Message not sent: ${reason}`, { error: true });
  }

  function addMessage(frame) {
    const id = parseId(frame.id);
    if (id) {
      // A room's messages arrive in id order; anything not newer was shown.
      const last = parseId(state.lastId);
      if (last && compareIds(id, last) <= 0) return;
      state.lastId = frame.id;
    }
    const own = state.userId !== null && frame.user_id === state.userId;
    const clientId = own && typeof frame.client_id === "string" ? frame.client_id : null;
    let item = null;
    if (clientId) {
      item = settle(clientId, frame.id) || state.echoes.get(clientId) || null;
      state.echoes.delete(clientId);
    }
    // Our own pending copy already shows (and has fetched) the attachments: keep them.
    const shown = item && item.querySelector(".attachments");
    const fresh = renderFrame(frame, { own, attachments: !shown });
    if (shown) fresh.appendChild(shown);
    if (id) fresh.dataset.id = frame.id;
    if (item) item.remove();
    insertItem(fresh, own);
  }

  // A `message` frame, or a stored message (the same shape), as a list item.
  function renderFrame(frame, { own, attachments }) {
    return renderMessage({
      user: typeof frame.user === "string" ? frame.user : "unknown",
      text: typeof frame.text === "string" ? frame.text : "",
      attachments: attachments ? validAttachments(frame.attachments) : [],
      ts: Number(frame.ts),
      own,
    });
  }

  function renderMessage({ user, text, attachments, ts, own }) {
    const item = document.createElement("li");
    item.className = own ? "message own" : "message";

    const meta = document.createElement("div");
    meta.className = "meta";
    const name = document.createElement("span");
    name.className = "user";
    name.textContent = user;
    meta.appendChild(name);

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
    if (attachments.length) item.appendChild(renderAttachments(attachments));
    return item;
  }

  // User data goes into the page as text, never as HTML.
  function textElement(tag, className, text) {
    const node = document.createElement(tag);
    node.className = className;
    node.textContent = text;
    return node;
  }

  function setItemState(item, text) {
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
  function insertItem(item, scroll) {
    const list = el.messages;
    const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    const firstPending = item.classList.contains("pending") ? null : list.querySelector(".pending");
    list.insertBefore(item, firstPending);
    trimMessages();
    if (nearBottom || scroll) list.scrollTop = list.scrollHeight;
  }

  // The oldest go first, so what stays shown has no hole (scrollback reloads them).
  function trimMessages() {
    const list = el.messages;
    while (list.children.length > MAX_MESSAGES) {
      const oldest = list.querySelector(".message:not(.pending)");
      if (!oldest) break;
      oldest.remove();
    }
  }

  function clearMessages() {
    el.messages.replaceChildren();
    state.outbox.clear();
    state.echoes.clear();
    state.lastId = null;
    state.holdUntil = 0;
    state.history = { loading: false, end: false, gap: null, filling: false };
    showHistoryStatus("");
    updateHistoryBar();
    closeSearch();
  }

  function showNotice(message, { error = false, sticky = false } = {}) {
    el.notice.textContent = message;
    el.notice.classList.toggle("notice-error", error);
    el.notice.hidden = false;
    clearTimeout(state.timers.notice);
    if (!sticky) state.timers.notice = setTimeout(hideNotice, 5000);
  }

  function hideNotice() {
    clearTimeout(state.timers.notice);
    el.notice.hidden = true;
    el.notice.textContent = "";
  }

  // -- history ------------------------------------------------------------------

  // A GET on the API with the session's token. A refused token (401) goes
  // through the page's refresh, once, and the request is repeated.
  async function apiGet(path) {
    for (let renewed = false; ; renewed = true) {
      if (!state.session) throw new Error("Signed out.");
      try {
        return await request("GET", path, { token: state.session.token });
      } catch (error) {
        if (error.status !== 401 || renewed) throw error;
        const outcome = await refreshSession();
        if (outcome === "invalid") {
          endSession("Your session has ended. Please log in again.");
          throw error;
        }
        if (outcome === "unavailable") throw new Error("Cannot renew the session now. Try again.");
      }
    }
  }

  function roomMessages(query) {
    return apiGet(`/api/rooms/${encodeURIComponent(ROOM)}/messages?${new URLSearchParams(query)}`);
  }

  // The list item of a message id, if it is shown (ids are digits and a dash).
  function shownItem(id) {
    return el.messages.querySelector(`.message[data-id="${id}"]`);
  }

  function oldestShownId() {
    const item = el.messages.querySelector(".message[data-id]");
    return item ? item.dataset.id : null;
  }

  function firstShownAfter(id) {
    for (const item of el.messages.querySelectorAll(".message[data-id]")) {
      const shown = parseId(item.dataset.id);
      if (compareIds(shown, id) > 0) return shown;
    }
    return null;
  }

  // A stored message (the history API's answer), put among those shown in id
  // order; false if it is shown already or has no id.
  function insertStored(frame) {
    const id = parseId(frame.id);
    if (!id || shownItem(frame.id)) return false;
    const own = state.userId !== null && frame.user_id === state.userId;
    // One of our sends that was stored though we never saw it acknowledged:
    // the stored copy, put in its place below, replaces the pending one.
    const pending = own && typeof frame.client_id === "string" && settle(frame.client_id, frame.id);
    if (pending) pending.remove();
    const item = renderFrame(frame, { own, attachments: true });
    item.dataset.id = frame.id;
    const later = Array.from(el.messages.querySelectorAll(".message[data-id]")).find(
      (other) => compareIds(parseId(other.dataset.id), id) > 0,
    );
    el.messages.insertBefore(item, later || el.messages.querySelector(".pending"));
    const last = parseId(state.lastId);
    if (!last || compareIds(id, last) > 0) state.lastId = frame.id;
    return true;
  }

  // Insert messages without moving what the reader is looking at: the first
  // item in view stays where it is on the screen.
  function keepingScroll(insert) {
    const list = el.messages;
    const top = list.getBoundingClientRect().top;
    const anchor = Array.from(list.children).find((item) => item.getBoundingClientRect().bottom > top);
    const before = anchor && anchor.getBoundingClientRect().top;
    insert();
    if (anchor && anchor.isConnected) list.scrollTop += anchor.getBoundingClientRect().top - before;
  }

  // Scrollback: the page of stored messages just older than the oldest shown.
  async function loadOlder() {
    const history = state.history;
    if (history.loading || history.end || !state.session) return;
    history.loading = true;
    updateHistoryBar();
    showHistoryStatus("Loading older messages…");
    const before = oldestShownId();
    try {
      const page = await roomMessages({ limit: HISTORY_PAGE, ...(before && { before }) });
      if (state.history !== history) return; // cleared meanwhile (signed out)
      keepingScroll(() => {
        storedMessages(page).forEach(insertStored);
        // The bar above the list changes height at the end: inside, so it counts.
        history.end = !page.next_before;
        history.loading = false;
        updateHistoryBar();
        showHistoryStatus(history.end ? "This is the beginning of #general." : "");
      });
    } catch (error) {
      if (state.history === history) showHistoryStatus(`Could not load older messages: ${error.message}`, true);
    } finally {
      history.loading = false;
      updateHistoryBar();
    }
  }

  function storedMessages(page) {
    return Array.isArray(page.messages) ? page.messages.filter((m) => m && typeof m === "object") : [];
  }

  // After a `joined` with recovered: false, the messages between the last one
  // shown before and the first one shown after it (the window's replay), read
  // oldest first. Ids are the dedupe key: whatever else arrives meanwhile shows once.
  async function fillGap() {
    const history = state.history;
    const gap = history.gap;
    if (!gap || history.filling || !state.session) return;
    // Nothing older than the replay is shown any more (the list keeps its newest
    // MAX_MESSAGES): there is no hole, and scrollback reads the rest.
    const oldest = parseId(oldestShownId());
    if (!oldest || compareIds(oldest, parseId(gap.after)) > 0) {
      history.gap = null;
      return;
    }
    history.filling = true;
    updateHistoryBar();
    showHistoryStatus("Loading the messages you missed…");
    try {
      for (;;) {
        const page = await roomMessages({ after: gap.after, limit: GAP_PAGE });
        if (state.history !== history) return;
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
      if (history.gap === gap) history.gap = null;
      showHistoryStatus("");
    } catch (error) {
      if (state.history !== history) return;
      showHistoryStatus(`Could not load the messages you missed: ${error.message}`, true);
    } finally {
      history.filling = false;
      updateHistoryBar();
      flushOutbox();
    }
    // Another resume without recovery while this one was read: its turn.
    if (state.history === history && history.gap && history.gap !== gap) fillGap();
  }

  function updateHistoryBar() {
    const history = state.history;
    el.loadOlder.hidden = history.end;
    el.loadOlder.disabled = history.loading;
    el.retryGap.hidden = !history.gap || history.filling;
  }

  function showHistoryStatus(message, error = false) {
    el.historyStatus.textContent = message;
    el.historyStatus.classList.toggle("status-error", error);
  }

  // -- search -------------------------------------------------------------------

  // A new search: the newest page of results for what the box holds.
  function search() {
    const q = el.searchInput.value;
    if (isBlank(q)) return;
    state.search = { q, before: null, count: 0, loading: false };
    el.searchPanel.hidden = false;
    el.searchResults.replaceChildren();
    updateSearchMore();
    searchPage();
  }

  // The next page of the search shown: the results older than the last one
  // listed (the API's `before` cursor), added below it, until `next_before` is null.
  async function searchPage() {
    const found = state.search;
    if (!found || found.loading) return;
    found.loading = true; // More results stays enabled (and focused): a click meanwhile is ignored
    showSearchStatus(found.count ? "Loading more results…" : "Searching…");
    try {
      const query = new URLSearchParams({ room: ROOM, q: found.q, limit: HISTORY_PAGE });
      if (found.before) query.set("before", found.before);
      const page = await apiGet(`/api/search?${query}`);
      if (state.search !== found) return; // a newer search, or closed
      for (const frame of storedMessages(page)) {
        const own = state.userId !== null && frame.user_id === state.userId;
        el.searchResults.appendChild(renderFrame(frame, { own, attachments: false }));
        found.count += 1;
      }
      found.before = typeof page.next_before === "string" ? page.next_before : null;
      const { q, count } = found;
      if (!count) showSearchStatus(`No results for “${q}”.`);
      else if (found.before) showSearchStatus(`The newest ${count} results for “${q}”.`);
      else showSearchStatus(`${count} result${count === 1 ? "" : "s"} for “${q}”.`);
    } catch (error) {
      // A later page keeps its cursor: More results tries it again.
      if (state.search === found) showSearchStatus(`Search failed: ${error.message}`, true);
    } finally {
      found.loading = false;
      if (state.search === found) updateSearchMore();
    }
  }

  function updateSearchMore() {
    const hadFocus = document.activeElement === el.searchMore;
    el.searchMore.hidden = !state.search || !state.search.before;
    if (hadFocus && el.searchMore.hidden) el.searchClose.focus(); // the end: focus stays in the panel
  }

  function closeSearch() {
    state.search = null;
    el.searchPanel.hidden = true;
    el.searchResults.replaceChildren();
    updateSearchMore();
    showSearchStatus("");
  }

  function showSearchStatus(message, error = false) {
    el.searchStatus.textContent = message;
    el.searchStatus.classList.toggle("status-error", error);
  }

  // -- attachments --------------------------------------------------------------

  // A chosen file uploads at once: the API grants a presigned POST (or refuses
  // the file, saying why: its type or size), the browser posts the file straight
  // to S3, and the file waits in the composer until Send.
  function chooseFiles(files) {
    showAttachError("");
    for (const file of files) {
      if (state.staged.length >= MAX_ATTACHMENTS) {
        showAttachError(`A message carries at most ${MAX_ATTACHMENTS} files.`);
        break;
      }
      stageFile(file);
    }
    el.attachInput.value = ""; // so the same file can be chosen again
  }

  async function stageFile(file) {
    const staged = { attachment: null, xhr: null, done: false, chip: null };
    staged.chip = renderChip(file, () => unstage(staged));
    state.staged.push(staged);
    el.staged.appendChild(staged.chip);
    updateComposer();
    try {
      const grant = await request("POST", "/api/attachments", {
        token: state.session.token,
        body: { filename: file.name, content_type: file.type || "application/octet-stream", size: file.size },
      });
      if (!state.staged.includes(staged)) return; // removed meanwhile
      staged.attachment = grant.attachment;
      await uploadFile(grant.upload, file, staged);
      staged.done = true;
      staged.chip.dataset.state = "ready";
      setChipText(staged.chip, "Ready");
      updateComposer();
    } catch (error) {
      if (!state.staged.includes(staged)) return; // removed by the user: not a failure
      unstage(staged);
      showAttachError(`${file.name}: ${error.message}`);
    }
  }

  // XMLHttpRequest rather than fetch: it reports upload progress.
  function uploadFile(upload, file, staged) {
    const form = new FormData();
    for (const [name, value] of Object.entries(upload.fields)) form.append(name, value);
    form.append("file", file); // last: S3 ignores the fields that follow the file
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      staged.xhr = xhr;
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) setChipProgress(staged.chip, event.loaded / event.total);
      });
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) resolve();
        else reject(new Error(`File storage refused the upload (HTTP ${xhr.status}).`));
      });
      xhr.addEventListener("error", () => reject(new Error("Cannot reach file storage. Try again.")));
      xhr.addEventListener("abort", () => reject(new Error("Upload cancelled.")));
      xhr.open("POST", upload.url);
      xhr.send(form);
    }).finally(() => {
      staged.xhr = null;
    });
  }

  function unstage(staged) {
    if (staged.xhr) staged.xhr.abort();
    state.staged = state.staged.filter((other) => other !== staged);
    staged.chip.remove();
    updateComposer();
  }

  function clearStaged() {
    for (const staged of state.staged) if (staged.xhr) staged.xhr.abort();
    state.staged = [];
    el.staged.replaceChildren();
    updateComposer();
  }

  // Send waits for every upload; Attach stops at the per-message limit.
  function updateComposer() {
    el.staged.hidden = !state.staged.length;
    el.attach.disabled = state.staged.length >= MAX_ATTACHMENTS;
    el.send.disabled = state.staged.some((staged) => !staged.done);
  }

  function showAttachError(message) {
    el.attachError.textContent = message;
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

  function formatSize(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
    return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
  }

  // What a message may carry, as far as rendering needs; the server checked the rest.
  function validAttachments(list) {
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

  function renderAttachments(attachments) {
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
  const nearTasks = new WeakMap(); // observed element -> what to do once it is near
  const nearView = new IntersectionObserver(
    (entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        nearView.unobserve(entry.target);
        const load = nearTasks.get(entry.target);
        nearTasks.delete(entry.target);
        if (load) load();
      }
    },
    { root: el.messages, rootMargin: "50% 0px" },
  );

  function whenNear(element, load) {
    nearTasks.set(element, load);
    nearView.observe(element);
  }

  // An image shows inline once its message comes near the view, with its file
  // link as the caption. Until then (and if it cannot be shown) a box of fixed
  // size holds its place, so the list does not move when the image arrives.
  // Its bytes come from the private bucket on another origin: fetched, then
  // shown from a blob: URL (the CSP allows blob: images, not the storage's origin).
  function renderImage(attachment) {
    const file = renderFile(attachment);
    const figure = document.createElement("figure");
    figure.className = "attachment-image";
    const preview = document.createElement("div");
    preview.className = "attachment-preview";
    preview.dataset.state = "waiting";
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

  // -- wiring -----------------------------------------------------------------

  el.authForm.addEventListener("submit", (event) => {
    event.preventDefault();
    authenticate(false);
  });
  el.register.addEventListener("click", () => authenticate(true));
  el.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    submitMessage();
  });
  el.logout.addEventListener("click", () => logout());
  el.loadOlder.addEventListener("click", () => loadOlder());
  el.retryGap.addEventListener("click", () => fillGap());
  el.searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  el.searchClose.addEventListener("click", () => closeSearch());
  el.searchMore.addEventListener("click", () => searchPage());
  window.addEventListener("storage", (event) => {
    if (event.key === SESSION_KEY || event.key === null) onSessionStored(); // null: storage cleared
  });
  el.attach.addEventListener("click", () => el.attachInput.click());
  el.attachInput.addEventListener("change", () => chooseFiles(Array.from(el.attachInput.files)));
  window.addEventListener("online", () => {
    if (state.session && !state.conn) {
      state.attempt = 0;
      connect();
    }
  });
  // Background tabs run timers late: catch up on a refresh that is due.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && state.session) scheduleRefresh();
  });

  async function init() {
    showAuthError("");
    setStatus("offline", "Offline");
    state.config = await loadConfig();
    document.body.dataset.ready = "true";
    const session = storedSession();
    if (session) startSession(session);
    else el.username.focus();
  }

  init();
})();
