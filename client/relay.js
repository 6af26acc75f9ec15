// @edge-relay/client, built from packages/client/src by packages/client/scripts/build.mjs: do not edit.
// The relay serves this file at /client/relay.js; the same bytes are the package's ESM build.

// src/relay.ts
var RelayError = class extends Error {
  /**
   * Protocol error code (`unauthorized`, `forbidden`, `bad_request`, `rate_limited`, ...);
   * or the client's own: `closed`, `token` (getToken threw), `timeout` (a renewal got no answer).
   */
  code;
  constructor(code, message, extra) {
    super(message || code);
    this.name = "RelayError";
    this.code = code;
    Object.assign(this, extra);
  }
};
var backoffDelay = (attempt, base = 500, cap = 2e4, random = Math.random) => random() * Math.min(cap, base * 2 ** attempt);
var CLOSE_CODES = { 4001: "unauthorized", 4003: "forbidden", 4008: "rate_limited", 4009: "too_large", 4400: "bad_request", 1011: "internal", 1012: "restarting" };
var RETRYABLE = /* @__PURE__ */ new Set(["rate_limited", "internal"]);
var MAX_SEND_TRIES = 8;
var roomPath = (url, room) => String(url).replace(/\/+$/, "") + "/v1/rooms/" + encodeURIComponent(room);
var RENEW_BEFORE_MS = 6e4;
var RENEW_MIN_MS = 5e3;
var MAX_TIMER_MS = 2 ** 31 - 1;
var MAX_WINDOW_MS = 12e4;
var jwtClaims = (token) => {
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))) || {};
  } catch {
    return {};
  }
};
var storageGet = (s, key) => {
  try {
    return "getItem" in s ? s.getItem(key) : s.get(key);
  } catch {
    return null;
  }
};
var tokenError = (e) => e instanceof RelayError ? e : new RelayError("token", String(e?.message || e));
async function request(fetchFn, url, room, token, method, path, body, signal) {
  const res = await fetchFn(roomPath(url, room) + path, {
    method,
    headers: body ? { authorization: "Bearer " + token, "content-type": "application/json" } : { authorization: "Bearer " + token },
    body: body && JSON.stringify(body),
    signal
  });
  let json = null;
  try {
    json = await res.json();
  } catch {
  }
  if (res.ok) return json;
  const e = json && json.error || {};
  throw new RelayError(e.code || "http_" + res.status, e.message || "HTTP " + res.status, {
    status: res.status,
    retryAfter: Number(res.headers?.get?.("retry-after")) || 0
  });
}
var RelayClient = class _RelayClient {
  /** Creates a client and starts connecting. */
  static connect(options) {
    const client = new _RelayClient(options);
    client._open();
    return client;
  }
  /**
   * One page of history over HTTP (no socket): `{messages, has_more}`.
   * `after`/`before`/`limit` as in the protocol; without them, the newest 50.
   */
  static async history({
    url,
    room,
    token,
    after,
    before,
    limit,
    fetch: fetchFn = globalThis.fetch
  }) {
    const q = Object.entries({ after, before, limit }).filter(([, v]) => v != null).map(([k, v]) => k + "=" + v).join("&");
    return request(fetchFn, url, room, await token, "GET", "/messages" + (q && "?" + q));
  }
  url;
  room;
  status;
  /** Seq of the last message delivered (or the room's seq at the first welcome). */
  lastSeq;
  /** This connection's user, from the welcome. */
  user;
  /** Users online (empty in a room in counts mode: see `occupancy`). */
  presence;
  /** The room's counts while it is in counts mode (past its presence limit), else null. */
  occupancy;
  /** Latest read marker per user id. */
  reads;
  constructor(options) {
    const o = this._o = {
      fetch: globalThis.fetch && globalThis.fetch.bind(globalThis),
      setTimeout: globalThis.setTimeout.bind(globalThis),
      clearTimeout: globalThis.clearTimeout.bind(globalThis),
      random: Math.random,
      now: Date.now,
      backoffBase: 500,
      backoffCap: 2e4,
      maxFailures: 3,
      // consecutive failures to open a socket before falling back to HTTP polling
      pollInterval: 3e3,
      heartbeat: 25e3,
      // ping period; a socket silent for two periods is dropped (0 disables)
      connectTimeout: 1e4,
      requestTimeout: 15e3,
      stableAfter: 5e3,
      // a socket open this long resets the backoff
      typingInterval: 2e3,
      typingTimeout: 3e3,
      catchUpLimit: 2e3,
      // after a `reset`, fetch at most this many missed messages, else jump
      maxFrameBytes: 65536,
      authTimeout: 1e4,
      // ms for the relay to answer an in-band token renewal
      batch: true,
      // ask for batched delivery: a burst of frames may arrive as one JSON array
      iteratorBuffer: 1e3,
      ...options
    };
    if (!o.url || !o.room) throw new TypeError("url and room are required");
    if (o.token == null && !o.getToken) throw new TypeError("token or getToken is required");
    o.WebSocket ||= globalThis.WebSocket;
    if (o.navigator === void 0) o.navigator = globalThis.navigator;
    if (typeof o.WebSocket !== "function") {
      throw new TypeError("no WebSocket implementation: pass one as the WebSocket option");
    }
    this.url = String(o.url).replace(/\/+$/, "");
    this.room = o.room;
    this.status = "connecting";
    this.lastSeq = o.since == null ? null : Number(o.since);
    this.user = null;
    this.presence = [];
    this.occupancy = null;
    this.reads = /* @__PURE__ */ new Map();
    this._on = /* @__PURE__ */ new Map();
    this._q = [];
    this._buf = /* @__PURE__ */ new Map();
    this._t = {};
    const c = globalThis.crypto;
    this._cid = (c ? [...c.getRandomValues(new Uint32Array(3))].map((n) => n.toString(36)).join("") : Math.random().toString(36).slice(2)) + "-";
    this._n = 0;
    this._attempt = 0;
    this._failures = 0;
    this._sockets = 0;
    this._ws = null;
    this._ready = false;
    this._polling = false;
    this._readWant = 0;
    this._onOnline = () => this._ready || this.reconnect();
    this._onOffline = () => this._ws ? this._drop(this._ws) : this._offline();
    this._events = o.events === void 0 ? globalThis : o.events;
    if (this._events && this._events.addEventListener) {
      this._events.addEventListener("online", this._onOnline);
      this._events.addEventListener("offline", this._onOffline);
    }
  }
  // ---- events
  /** Calls `fn` with every `type` event; returns a function that stops that. */
  on(type, fn) {
    if (!this._on.has(type)) this._on.set(type, /* @__PURE__ */ new Set());
    this._on.get(type).add(fn);
    return () => this.off(type, fn);
  }
  off(type, fn) {
    const set = this._on.get(type);
    if (set) set.delete(fn);
  }
  once(type, fn) {
    if (fn) {
      const off = this.on(type, (v) => (off(), fn(v)));
      return off;
    }
    return new Promise((resolve, reject) => {
      const offs = [this.on(type, (v) => (stop(), resolve(v))), this.on("status", (s) => s === "closed" && fail())];
      const stop = () => offs.forEach((off) => off());
      const fail = () => (stop(), reject(new RelayError("closed", "client is closed")));
      if (this.status === "closed") fail();
    });
  }
  /**
   * `for await (const m of room)`: the messages delivered from now on, in order. Up to
   * `iteratorBuffer` (1000) may wait for a slow loop; one more ends the loop with a RelayError
   * `overflow` (after the waiting ones, its `seq` the last one the loop got), so that nothing is
   * skipped silently. The loop ends when the client is closed; leaving it unsubscribes.
   */
  [Symbol.asyncIterator]() {
    const waiting = [];
    let wake = null;
    let overflow = null;
    let ended = false;
    const offs = [
      this.on("message", (m) => {
        if (overflow) return;
        if (waiting.length < this._o.iteratorBuffer) waiting.push(m);
        else overflow = new RelayError("overflow", "for await fell over " + this._o.iteratorBuffer + " messages behind", { seq: waiting[waiting.length - 1].seq });
        wake && wake();
      }),
      this.on("status", (s) => s === "closed" && wake && wake())
    ];
    const end = () => {
      ended = true;
      offs.forEach((off) => off());
      return { value: void 0, done: true };
    };
    return {
      next: async () => {
        for (; ; ) {
          if (ended) return end();
          if (waiting.length) return { value: waiting.shift(), done: false };
          if (overflow) throw end(), overflow;
          if (this.status === "closed") return end();
          await new Promise((resolve) => wake = resolve);
          wake = null;
        }
      },
      return: async () => end(),
      [Symbol.asyncIterator]() {
        return this;
      }
    };
  }
  _emit(type, value) {
    for (const fn of [...this._on.get(type) || []]) {
      try {
        fn(value);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
  _status(status) {
    if (this.status !== status) this._emit("status", this.status = status);
  }
  // ---- timers
  _timer(name, fn, ms) {
    this._clear(name);
    this._t[name] = this._o.setTimeout(() => {
      delete this._t[name];
      fn();
    }, ms);
  }
  _clear(...names) {
    for (const name of names) {
      if (this._t[name] != null) this._o.clearTimeout(this._t[name]);
      delete this._t[name];
    }
  }
  // ---- public API
  /** The open WebSocket, or null. */
  get socket() {
    return this._ready ? this._ws : null;
  }
  /** Sends not yet acknowledged. */
  get pending() {
    return this._q.length;
  }
  /**
   * Publishes `data`; resolves once with `{seq, id, ts, duplicate, cid}`. Queued while offline
   * and retried with the same cid. The promise carries its `cid`.
   */
  send(data, { event, cid } = {}) {
    return this._enqueue({ type: "publish", cid: cid || this._nextCid(), event: event == null ? void 0 : event, data: data === void 0 ? null : data });
  }
  /**
   * Replaces the data of message `seq` (the user's own; any message with a moderator's role).
   * The relay commits it as a new message with `event: 'message.edited'` and `ref_seq: seq`;
   * resolves on its ack, queued and retried like `send`.
   */
  edit(seq, data, { cid } = {}) {
    return this._enqueue({ type: "edit", cid: cid || this._nextCid(), seq, data: data === void 0 ? null : data });
  }
  /** Deletes message `seq`, like `edit`: committed as `event: 'message.deleted'`, `data: null`. */
  delete(seq, { cid } = {}) {
    return this._enqueue({ type: "delete", cid: cid || this._nextCid(), seq });
  }
  _nextCid() {
    return this._cid + (++this._n).toString(36);
  }
  _enqueue(frame) {
    const id = frame.cid;
    const json = JSON.stringify(frame);
    let promise;
    if (this.status === "closed") promise = Promise.reject(new RelayError("closed", "client is closed", { cid: id }));
    else if (new TextEncoder().encode(json).length > this._o.maxFrameBytes) promise = Promise.reject(new RelayError("too_large", "message is larger than the frame limit", { cid: id }));
    else {
      promise = new Promise((resolve, reject) => this._q.push({ cid: id, frame, json, resolve, reject, via: null, tries: 0 }));
      this._flush();
    }
    return Object.assign(promise, { cid: id });
  }
  /** Says whether this user is typing; at most one `true` per typingInterval, auto-stops. */
  typing(active = true) {
    this._clear("typing");
    if (active) {
      const now = this._o.now();
      if (!this._typingOn || now - this._typingAt >= this._o.typingInterval) {
        if (this._frame({ type: "typing", active: true })) {
          this._typingOn = true;
          this._typingAt = now;
        }
      }
      this._timer("typing", () => this.typing(false), this._o.typingTimeout);
    } else if (this._typingOn) {
      this._typingOn = false;
      this._frame({ type: "typing", active: false });
    }
  }
  /** Marks everything up to `seq` (default: lastSeq) as read; sent now or on the next welcome. */
  markRead(seq = this.lastSeq) {
    if (seq != null && seq > this._readWant) {
      this._readWant = seq;
      this._frame({ type: "read", seq });
    }
  }
  /** One page of history of this room over HTTP, with this client's token. */
  async history({ after, before, limit } = {}) {
    return _RelayClient.history({ url: this.url, room: this.room, token: this._token(), after, before, limit, fetch: this._o.fetch });
  }
  /**
   * The page of history just before everything delivered so far (`message` events and earlier
   * loadOlder pages), in ascending order, newest `limit` first: prepended to what the app shows,
   * the pages and the `message` events make one ordered run without duplicates. Before the first
   * welcome it learns the room's newest seq over HTTP, so that a fresh room client can show the
   * latest page and then live messages. `has_more` tells that older ones exist.
   */
  async loadOlder(limit = 50) {
    if (this.lastSeq == null) await this._catchUp();
    if (this.lastSeq == null) throw new RelayError("unavailable", "the room's history could not be reached");
    const floor = () => this._floor ?? this.lastSeq + 1;
    if (floor() <= 1) return { messages: [], has_more: false };
    const page = await this._http("GET", "/messages?before=" + floor() + "&limit=" + limit);
    const messages = page.messages.filter((m) => m.seq < floor());
    if (messages.length) this._floor = messages[0].seq;
    return { messages, has_more: page.has_more };
  }
  /** Drops the socket (if any) and reconnects now, without waiting out the backoff. */
  reconnect() {
    if (this.status === "closed") return;
    if (this._ws) this._drop(this._ws);
    this._attempt = 0;
    this._open();
    if (this._polling) this._timer("poll", () => this._poll(), 0);
  }
  /** Stops for good: closes the socket, rejects pending sends with code `closed`. */
  close() {
    this._stop(new RelayError("closed", "client is closed"));
  }
  // ---- connection
  _token() {
    const o = this._o;
    const exp = this._tok && jwtClaims(this._tok).exp;
    if (!this._tokP || o.getToken && (this._stale || exp && exp * 1e3 < o.now() + 1e4)) {
      this._stale = false;
      this._tokP = Promise.resolve(o.getToken ? o.getToken() : o.token).then(
        (t) => this._tok = t,
        (e) => {
          this._tokP = null;
          throw e;
        }
      );
    }
    return this._tokP;
  }
  /**
   * Whether the browser says there is no network; then nothing the client tries can work: no
   * socket, no retry, no polling (each would only fail) until `online`.
   */
  _offline() {
    const n = this._o.navigator;
    if (!n || n.onLine !== false || this.status === "closed") return false;
    this._polling = false;
    this._clear("retry", "poll");
    this._status("offline");
    return true;
  }
  async _open() {
    if (this.status === "closed" || this._ws || this._opening) return;
    this._clear("retry");
    if (this._offline()) return;
    this._opening = true;
    let token, failed;
    try {
      token = await this._token();
    } catch (e) {
      failed = true;
      this._emit("error", tokenError(e));
    }
    this._opening = false;
    if (this.status === "closed" || this._ws) return;
    if (this._offline()) return;
    if (failed) return this._closed(null, 1006);
    const refused = this._refused;
    if (!token || refused && token === refused.token) {
      return this._stop(new RelayError("unauthorized", refused?.reason || "no token to connect with", { closeCode: refused ? 4001 : void 0, reason: refused?.reason }));
    }
    this._sockToken = token;
    if (this._key == null && this._o.storage) this._restore(token);
    if (this.status === "offline") this._status(this._sockets ? "reconnecting" : "connecting");
    this._wsSince = this.lastSeq;
    const query = [this.lastSeq == null ? "" : "since=" + this.lastSeq, this._o.batch ? "batch=1" : ""].filter(Boolean).join("&");
    const u = roomPath(this.url, this.room).replace(/^http/, "ws") + "/ws" + (query && "?" + query);
    let ws;
    try {
      ws = this._ws = new this._o.WebSocket(u, ["relay.v1", "bearer." + token]);
      this._sockets++;
    } catch (e) {
      return this._stop(new RelayError("bad_request", "cannot open a WebSocket to " + u + " (" + (e && e.name || "Error") + "): check the url, and that the token is a JWT"));
    }
    this._timer("connect", () => this._drop(ws), this._o.connectTimeout);
    ws.onmessage = (e) => ws === this._ws && this._onFrame(e.data, ws);
    ws.onclose = (e) => this._closed(ws, e.code, e.reason);
    ws.onerror = () => {
    };
  }
  _drop(ws) {
    try {
      ws.close();
    } catch {
    }
    this._closed(ws, 1006);
  }
  _closed(ws, code, reason) {
    if (ws !== this._ws) return;
    const wasOpen = this._ready;
    this._ws = null;
    this._ready = false;
    this._clear("connect", "heartbeat", "stable", "renew", "auth");
    this._renewing = null;
    for (const p of this._q) if (p.via === ws) p.via = null;
    if (this.status === "closed") return;
    const name = CLOSE_CODES[code];
    const err = name && new RelayError(name, reason || name, { closeCode: code, reason });
    if (code === 4003 || code === 4400 && !wasOpen || code === 4001 && (!this._o.getToken || this._refused)) return this._stop(err);
    if (code === 4001) {
      this._refused = { token: this._sockToken, reason };
      this._stale = true;
    } else if (err && code >= 4e3) this._emit("error", err);
    if (this._offline()) return;
    if (wasOpen) this._failures = 0;
    else if (!(code >= 4e3)) this._failures++;
    if (!this._polling && this._failures >= this._o.maxFailures) {
      this._polling = true;
      this._status("polling");
      this._poll();
    } else if (!this._polling) this._status("reconnecting");
    const o = this._o;
    const spread = wasOpen && code < 4e3 ? o.random() * this._window : 0;
    this._timer("retry", () => this._open(), Math.max(spread, backoffDelay(this._attempt++, o.backoffBase, o.backoffCap, o.random)));
  }
  _frame(obj) {
    if (!this._ready) return false;
    try {
      this._ws.send(typeof obj === "string" ? obj : JSON.stringify(obj));
      return true;
    } catch {
      return false;
    }
  }
  _beat() {
    if (!this._o.heartbeat) return;
    this._timer("heartbeat", () => {
      if (!this._heard) return this._drop(this._ws);
      this._heard = false;
      this._frame({ type: "ping" });
      this._beat();
    }, this._o.heartbeat);
  }
  _onFrame(text, ws) {
    let f;
    try {
      f = JSON.parse(text);
    } catch {
      return;
    }
    this._heard = true;
    for (const g of Array.isArray(f) ? f : [f]) if (ws === this._ws && g && typeof g === "object") this._handle(g);
  }
  _handle(f) {
    switch (f.type) {
      case "welcome":
        return this._welcome(f);
      case "message":
        return this._deliver(f);
      case "ack":
        return this._ack(f);
      case "typing":
      case "synced":
        return this._emit(f.type, f);
      case "read":
        this.reads.set(f.user.id, f);
        return this._emit("read", f);
      case "occupancy":
        return this._occupancy(f);
      case "presence":
        this.presence = this.presence.filter((u) => u.id !== f.user.id);
        if (f.event === "join") this.presence.push(f.user);
        return this._emit("presence", f);
      case "reset":
        return this._reset(f.seq);
      case "auth":
        return this._authed(f);
      case "error":
        return this._error(f);
    }
  }
  // ---- in-band token renewal: {"type":"auth","token"} on the open socket, before exp
  /** Schedules the renewal of the socket's token, which expires at `exp` (unix seconds). */
  _scheduleRenew(exp) {
    const o = this._o;
    if (!o.getToken || typeof exp !== "number" || !this._ready) return;
    const now = o.now();
    const expMs = exp * 1e3;
    const left = expMs - now;
    if (left <= 0) return;
    const iat = jwtClaims(this._sockToken).iat;
    const from = typeof iat === "number" && iat * 1e3 <= now ? iat * 1e3 : now;
    const due = Math.min(from + 0.8 * (expMs - from), expMs - RENEW_BEFORE_MS) - now;
    const floor = Math.max(1e3, Math.min(RENEW_MIN_MS, left / 2));
    this._timer("renew", () => this._renew(), Math.min(MAX_TIMER_MS, Math.max(floor, due)));
  }
  async _renew() {
    const ws = this._ws;
    const old = this._sockToken;
    let token = null;
    try {
      this._stale = true;
      token = await this._token();
    } catch (e) {
      this._emit("error", tokenError(e));
    }
    if (ws !== this._ws || !this._ready) return;
    if (!token || token === old) {
      if (!token) this._stale = true;
      const left = jwtClaims(old).exp * 1e3 - this._o.now();
      if (left > 0) this._timer("renew", () => this._renew(), Math.min(MAX_TIMER_MS, Math.max(1e3, left / 2)));
      return;
    }
    if (!this._frame({ type: "auth", token })) return;
    this._renewing = token;
    this._timer("auth", () => this._renewFailed(new RelayError("timeout", "no answer to the token renewal")), this._o.authTimeout);
  }
  _authed(f) {
    if (this._renewing == null) return;
    this._clear("auth");
    this._sockToken = this._renewing;
    this._renewing = null;
    this._emit("auth", f);
    this._scheduleRenew(f.exp);
  }
  /**
   * The relay refused the new token, or did not answer. The socket keeps its old token until
   * exp, but cannot be renewed: reconnect now, with a fresh token from getToken, while the old
   * one still covers the gap.
   */
  _renewFailed(err) {
    this._renewing = null;
    this._clear("auth");
    this._emit("error", err);
    this._stale = true;
    this._window = 0;
    if (this._ws) this._drop(this._ws);
  }
  _welcome(f) {
    this._clear("connect");
    this._ready = true;
    this._failures = 0;
    this._refused = null;
    this._heard = true;
    this.user = f.user;
    this._window = Math.min(MAX_WINDOW_MS, f.reconnect_window_ms || 0);
    if (this.lastSeq == null) this.lastSeq = f.seq;
    else if (this._wsSince == null && f.seq > this.lastSeq) this._catchUp();
    this._save();
    this.presence = f.presence || [];
    this.occupancy = null;
    this.reads = new Map((f.reads || []).map((r) => [r.user.id, r]));
    this._timer("stable", () => this._attempt = 0, this._o.stableAfter);
    this._beat();
    this._scheduleRenew(jwtClaims(this._sockToken).exp);
    this._polling = false;
    this._clear("poll");
    this._status("open");
    this._emit("welcome", f);
    this._emit("presence", { type: "presence", event: "sync", presence: this.presence });
    if (f.occupancy) this._occupancy({ type: "occupancy", ...f.occupancy });
    if (this._readWant) this._frame({ type: "read", seq: this._readWant });
    if (this._typingOn) this._frame({ type: "typing", active: true });
    this._flush();
  }
  /** Counts from the room: its first frame on a connection means the list is no longer kept. */
  _occupancy(f) {
    const listed = !this.occupancy && this.presence.length;
    this.occupancy = { connections: f.connections, users: f.users };
    if (listed) this._emit("presence", { type: "presence", event: "sync", presence: this.presence = [] });
    this._emit("occupancy", f);
  }
  /** Users online, and connections in counts mode (null while the room lists its users). */
  get counts() {
    return this.occupancy || { users: this.presence.length, connections: null };
  }
  // ---- resume across reloads (the storage option)
  /** Resumes after the seq stored for this room and the token's user, unless one was delivered. */
  _restore(token) {
    const sub = jwtClaims(token).sub;
    const key = this._key = typeof sub === "string" ? "edge-relay:" + this.url + ":" + this.room + ":" + sub : "";
    const stored = key ? Number(storageGet(this._o.storage, key) ?? NaN) : NaN;
    if (Number.isSafeInteger(stored) && stored >= 0 && this._floor == null) this.lastSeq = this._saved = stored;
  }
  _save() {
    const seq = this.lastSeq;
    if (this._key && seq != null && seq !== this._saved) {
      this._saved = seq;
      const s = this._o.storage;
      try {
        "setItem" in s ? s.setItem(this._key, String(seq)) : s.set(this._key, String(seq));
      } catch {
      }
    }
  }
  // ---- messages, in order and once
  _deliver(m) {
    if (this.lastSeq == null) this.lastSeq = m.seq - 1;
    if (!(m.seq > this.lastSeq)) return;
    this._buf.set(m.seq, m);
    for (let next; next = this._buf.get(this.lastSeq + 1); ) {
      this._buf.delete(++this.lastSeq);
      const n = next;
      const p = n.cid && n.from && this.user && n.from.id === this.user.id && this._q.find((q) => q.cid === n.cid);
      if (p) this._settle(p, null, { seq: n.seq, id: n.id, ts: n.ts, duplicate: true });
      if (this._floor == null) this._floor = n.seq;
      this._emit("message", n);
    }
    this._save();
    if (this._buf.size) this._catchUp();
  }
  /** Continues from `seq` without delivering what lies before it. */
  _jump(seq) {
    this.lastSeq = seq;
    this._save();
    for (const s of this._buf.keys()) if (s <= seq) this._buf.delete(s);
    const [m] = this._buf.values();
    if (m) {
      this._buf.delete(m.seq);
      this._deliver(m);
    }
  }
  _reset(seq) {
    const from = this.lastSeq;
    this._emit("reset", { seq, from });
    if (from == null || seq < from || seq - from > this._o.catchUpLimit) this._jump(seq);
    else this._catchUp();
  }
  /** Pages `GET messages?after=lastSeq` until has_more is false (one run at a time). */
  _catchUp() {
    if (!this._catching) {
      this._catching = (async () => {
        try {
          if (this.lastSeq == null) {
            const page = await this._http("GET", "/messages?limit=1");
            if (this.lastSeq == null) this.lastSeq = page.messages.length ? page.messages[page.messages.length - 1].seq : 0;
          }
          for (; ; ) {
            const page = await this._http("GET", "/messages?after=" + this.lastSeq + "&limit=200");
            for (const m of page.messages) this._deliver(m);
            if (!page.has_more || !page.messages.length) break;
          }
          if (this._buf.size) this._jump(Math.min(...this._buf.keys()) - 1);
        } catch (e) {
          this._httpError(e);
        } finally {
          this._catching = null;
        }
      })();
    }
    return this._catching;
  }
  // ---- sends
  _settle(p, err, receipt) {
    const i = this._q.indexOf(p);
    if (i < 0) return;
    this._q.splice(i, 1);
    if (p.wait != null) this._o.clearTimeout(p.wait);
    if (err) p.reject(err);
    else p.resolve({ ...receipt, cid: p.cid });
  }
  _ack(f) {
    const p = this._q.find((q) => q.cid === f.cid);
    if (!p) return;
    this._settle(p, null, { seq: f.seq, id: f.id, ts: f.ts, duplicate: !!f.duplicate });
    const s = p.frame;
    const m = { type: "message", room: this.room, seq: f.seq, id: f.id, event: s.type === "publish" ? s.event || "message" : s.type === "edit" ? "message.edited" : "message.deleted", data: s.data ?? null, from: this.user, cid: f.cid, ts: f.ts };
    if (s.type !== "publish") m.ref_seq = s.seq;
    this._deliver(m);
  }
  /** Sends `p` again after `ms` (a refusal worth retrying, or a relay that was busy). */
  _retry(p, ms) {
    p.via = null;
    p.tries++;
    p.wait = this._o.setTimeout(() => {
      p.wait = null;
      this._flush();
    }, ms);
  }
  _error(f) {
    const err = new RelayError(f.code, f.message, f.cid ? { cid: f.cid } : void 0);
    if (!f.cid && this._renewing != null && (f.code === "unauthorized" || f.code === "forbidden")) return this._renewFailed(err);
    const p = f.cid && this._q.find((q) => q.cid === f.cid);
    if (!p) return this._emit("error", err);
    if (RETRYABLE.has(f.code) && p.tries < MAX_SEND_TRIES) this._retry(p, 500 + backoffDelay(p.tries, 500, 1e4, this._o.random));
    else this._settle(p, err);
  }
  _flush() {
    if (this._ready) {
      for (const p of this._q) if (p.via !== this._ws && p.wait == null && this._frame(p.json)) p.via = this._ws;
    } else if (this._polling) this._post();
  }
  /** HTTP sends, one at a time in call order, while polling. */
  async _post() {
    if (this._posting) return;
    this._posting = true;
    try {
      while (this._polling && !this._ready) {
        const p = this._q.find((q) => !q.via);
        if (!p || p.wait != null) break;
        p.via = "http";
        const s = p.frame;
        try {
          const r = await this._http(
            ...s.type === "publish" ? ["POST", "/messages", { cid: s.cid, event: s.event, data: s.data }] : [s.type === "edit" ? "PATCH" : "DELETE", "/messages/" + s.seq, { cid: s.cid, data: s.data }]
          );
          this._settle(p, null, r);
          this._timer("poll", () => this._poll(), 50);
        } catch (err) {
          const e = err;
          if (p.via === "http") p.via = null;
          const status = e.status;
          if (status === 429 || status >= 500 && p.tries < MAX_SEND_TRIES) {
            this._retry(p, e.retryAfter ? e.retryAfter * 1e3 : 1e3 + backoffDelay(p.tries, 500, 1e4, this._o.random));
          } else if (status >= 400 && status !== 401 && status !== 403) this._settle(p, e);
          else {
            this._httpError(e);
            break;
          }
        }
      }
    } finally {
      this._posting = false;
    }
  }
  async _poll() {
    if (!this._polling || this._ready) return;
    this._timer("poll", () => this._poll(), this._o.pollInterval);
    await this._catchUp();
    this._post();
  }
  _httpError(e) {
    if (e.status === 403 || e.status === 401) this._stop(e);
    else if (e.status) this._emit("error", e);
  }
  /** An HTTP call with the current token; after a 401, once more with a new one from getToken. */
  async _http(method, path, body) {
    const token = await this._token();
    try {
      return await this._request(method, path, body, token);
    } catch (e) {
      if (e.status !== 401 || !this._o.getToken) throw e;
      this._stale = true;
      const fresh = await this._token();
      if (!fresh || fresh === token) throw e;
      return this._request(method, path, body, fresh);
    }
  }
  async _request(method, path, body, token) {
    const o = this._o;
    const ctrl = typeof AbortController == "function" ? new AbortController() : null;
    const id = o.setTimeout(() => ctrl?.abort(), o.requestTimeout);
    try {
      return await request(o.fetch, this.url, this.room, token, method, path, body, ctrl?.signal);
    } finally {
      o.clearTimeout(id);
    }
  }
  _stop(err) {
    if (this.status === "closed") return;
    const ws = this._ws;
    this._ws = null;
    this._ready = this._polling = false;
    this._clear(...Object.keys(this._t));
    if (ws) {
      try {
        ws.close(1e3);
      } catch {
      }
    }
    if (this._events && this._events.removeEventListener) {
      this._events.removeEventListener("online", this._onOnline);
      this._events.removeEventListener("offline", this._onOffline);
    }
    if (err.code !== "closed") this._emit("error", err);
    this._status("closed");
    for (const p of [...this._q]) this._settle(p, err);
  }
};

// src/edits.ts
var isChange = (m) => m.ref_seq != null && (m.event === "message.edited" || m.event === "message.deleted");
function applyChange(messages, m) {
  const target = isChange(m) ? messages.find((x) => x.seq === m.ref_seq) : void 0;
  if (!target) return null;
  if (m.event === "message.edited") target.data = m.data, target.edited_at = m.ts;
  else target.data = null, target.deleted_at = m.ts;
  return target;
}

// src/inbox.ts
var inbox = (options) => new Inbox(options);
var Inbox = class {
  /** The client of the feed room; close the inbox rather than it. */
  feed;
  /** Resolves once the latest `limit` updates of the feed have been read (rejects if they could not be). */
  ready;
  _rooms = /* @__PURE__ */ new Map();
  /** Room -> seq marked read here, for updates that were on their way before the read. */
  _read = /* @__PURE__ */ new Map();
  _limit;
  _on = /* @__PURE__ */ new Map();
  constructor({ user, limit = 200, ...options }) {
    this._limit = limit;
    this.feed = RelayClient.connect({ ...options, room: "user:" + user });
    this.feed.on("message", (m) => this._apply(m) && this._changed());
    this.feed.on("error", (e) => this._emit("error", e));
    this.ready = this.feed.loadOlder(limit).then(
      (page) => {
        if (page.messages.map((m) => this._apply(m)).some(Boolean)) this._changed();
      },
      (e) => {
        this._emit("error", e);
        throw e;
      }
    );
    this.ready.catch(() => {
    });
  }
  /** The rooms, the most recently updated first. */
  get rooms() {
    return [...this._rooms.values()].sort((a, b) => b.updated - a.updated);
  }
  /** The total of unread messages over the rooms. */
  get unread() {
    let total = 0;
    for (const r of this._rooms.values()) total += r.unread;
    return total;
  }
  on(type, fn) {
    if (!this._on.has(type)) this._on.set(type, /* @__PURE__ */ new Set());
    this._on.get(type).add(fn);
    return () => void this._on.get(type).delete(fn);
  }
  /**
   * Marks `room` read up to `seq` (default: the room client's lastSeq, or the inbox's newest seq
   * of that room). Given the room's RelayClient, sends its read marker too (`room.markRead`),
   * which makes the relay send the feed an update with the new unread count. Its entry shows 0
   * unread at once, and an update the relay computed before it saw the read does not bring the
   * count back.
   */
  markRead(room, seq) {
    const name = typeof room === "string" ? room : room.room;
    const entry = this._rooms.get(name);
    const upTo = seq ?? (typeof room === "string" ? null : room.lastSeq) ?? entry?.seq;
    if (upTo == null) return;
    if (typeof room !== "string") room.markRead(upTo);
    if (!((this._read.get(name) ?? -1) >= upTo)) this._read.set(name, upTo);
    if (entry && entry.unread && entry.seq <= upTo) {
      this._rooms.set(name, { ...entry, unread: 0 });
      this._changed();
    }
  }
  /** Stops the feed's client. */
  close() {
    this.feed.close();
  }
  /** Takes a feed message in; says whether the list changed. Older updates than the one kept lose. */
  _apply(m) {
    const d = m.data;
    if (m.event !== "room.update" || !d || typeof d.room !== "string") return false;
    const known = this._rooms.get(d.room);
    if (known && known.updated >= m.seq) return false;
    const read = this._read.get(d.room);
    const unread = read != null && d.seq <= read ? 0 : Number(d.unread) || 0;
    this._rooms.set(d.room, { room: d.room, seq: d.seq, event: d.event, from: d.from ?? null, preview: d.preview ?? null, unread, updated: m.seq });
    if (this._rooms.size > this._limit) {
      const oldest = this.rooms.pop().room;
      this._rooms.delete(oldest);
      this._read.delete(oldest);
    }
    return true;
  }
  _changed() {
    this._emit("change", this.rooms);
  }
  _emit(type, value) {
    for (const fn of [...this._on.get(type) || []]) {
      try {
        fn(value);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
};
export {
  Inbox,
  RelayClient,
  RelayError,
  applyChange,
  backoffDelay,
  RelayClient as default,
  inbox,
  isChange
};
