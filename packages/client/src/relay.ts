// The room client: one WebSocket per room with resume, offline queue, dedup, in-band token
// renewal and an HTTP fallback. Browsers and Node 22+ (global WebSocket and fetch); everything
// time- or network-related can be injected through the options, so tests run with fakes.
import type {
  AuthRenewed,
  SeqStorage,
  ConnectOptions,
  HistoryPage,
  Message,
  Occupancy,
  OccupancyFrame,
  PresenceEvent,
  ReadMarker,
  Receipt,
  // What the relay writes on a socket (wire.ts, generated from its Rust types): `_handle` reads
  // it; a message's `data` is the app's `TData` by contract.
  RelayFrame,
  Status,
  TypingFrame,
  User,
  WebSocketLike,
  Welcome,
} from './types.js';

/** What a `RelayError` may carry besides its code and message. */
export interface RelayErrorExtra {
  cid?: string | undefined;
  status?: number | undefined;
  retryAfter?: number | undefined;
  closeCode?: number | undefined;
  reason?: string | undefined;
  seq?: number | undefined;
}

/** An error from the relay (`code` as in the protocol) or from the client itself. */
export class RelayError extends Error {
  /**
   * Protocol error code (`unauthorized`, `forbidden`, `bad_request`, `rate_limited`, ...);
   * or the client's own: `closed`, `token` (getToken threw), `timeout` (a renewal got no answer).
   */
  code: string;
  /** The send this error is about. */
  declare cid?: string;
  /** HTTP status, for errors from HTTP calls. */
  declare status?: number;
  /** Retry-After in seconds, for HTTP 429. */
  declare retryAfter?: number;
  /** WebSocket close code, for errors from a close (4001, 4003, 4008, 4009, 4400, ...). */
  declare closeCode?: number;
  /** The relay's close reason, for errors from a close (e.g. `origin not allowed`); also the message. */
  declare reason?: string;
  /** For `overflow`: the seq of the last message the loop got. */
  declare seq?: number;

  constructor(code: string, message?: string, extra?: RelayErrorExtra) {
    super(message || code);
    this.name = 'RelayError';
    this.code = code;
    Object.assign(this, extra);
  }
}

/** Full-jitter exponential backoff: uniform in [0, min(cap, base * 2^attempt)]. */
export const backoffDelay = (attempt: number, base = 500, cap = 20000, random: () => number = Math.random): number =>
  random() * Math.min(cap, base * 2 ** attempt);

// One line: src/disconnect.rs's test reads this table from the built client/relay.js.
const CLOSE_CODES: Record<number, string | undefined> = { 4001: 'unauthorized', 4003: 'forbidden', 4008: 'rate_limited', 4009: 'too_large', 4400: 'bad_request', 1011: 'internal', 1012: 'restarting' };
const RETRYABLE = new Set(['rate_limited', 'internal']);
const MAX_SEND_TRIES = 8;

const roomPath = (url: string, room: string) => String(url).replace(/\/+$/, '') + '/v1/rooms/' + encodeURIComponent(room);

// In-band renewal: due at 80 % of the token's lifetime or this long before exp, whichever is
// earlier; never sooner than RENEW_MIN_MS (or half the time left, if less, but at least 1 s).
const RENEW_BEFORE_MS = 60000;
const RENEW_MIN_MS = 5000;
const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's limit (about 24.8 days)
const MAX_WINDOW_MS = 120000; // the relay's largest reconnect window (a room of 120 000 sockets)

interface Claims {
  exp?: unknown;
  iat?: unknown;
  sub?: unknown;
}

/** The JWT's payload claims, or `{}` for anything that is not a readable JWT. */
const jwtClaims = (token: string | null | undefined): Claims => {
  try {
    return JSON.parse(atob(token!.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))) || {};
  } catch {
    return {};
  }
};

/** The stored value, or null where the storage is denied (a browser's privacy settings). */
const storageGet = (s: SeqStorage, key: string) => {
  try {
    return 'getItem' in s ? s.getItem(key) : s.get(key);
  } catch {
    return null;
  }
};

const tokenError = (e: unknown) =>
  e instanceof RelayError ? e : new RelayError('token', String((e as Error)?.message || e));

async function request<R>(
  fetchFn: typeof fetch,
  url: string,
  room: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
  signal?: AbortSignal | null,
): Promise<R> {
  const res = await fetchFn(roomPath(url, room) + path, {
    method,
    headers: body ? { authorization: 'Bearer ' + token, 'content-type': 'application/json' } : { authorization: 'Bearer ' + token },
    body: body && JSON.stringify(body),
    signal,
  } as RequestInit);
  let json: any = null;
  try {
    json = await res.json();
  } catch {}
  if (res.ok) return json;
  const e = (json && json.error) || {};
  throw new RelayError(e.code || 'http_' + res.status, e.message || 'HTTP ' + res.status, {
    status: res.status,
    retryAfter: Number(res.headers?.get?.('retry-after')) || 0,
  });
}

/** The events of a room client and what their listeners get. */
export interface RelayEvents<TData = unknown> {
  message: Message<TData>;
  typing: TypingFrame;
  read: ReadMarker;
  presence: PresenceEvent;
  /** A big room's counts: from the welcome, then at most every 2 s while they change. */
  occupancy: OccupancyFrame;
  status: Status;
  error: RelayError;
  welcome: Welcome;
  synced: { type: 'synced'; seq: number };
  /** The relay could not replay from `from`; the client caught up over HTTP or jumped to `seq`. */
  reset: { seq: number; from: number | null };
  /** An in-band token renewal was accepted. */
  auth: AuthRenewed;
}

export interface HistoryOptions {
  after?: number | undefined;
  before?: number | undefined;
  limit?: number | undefined;
}

export interface SendOptions {
  event?: string | undefined;
  cid?: string | undefined;
}

type Optional = 'token' | 'getToken' | 'since' | 'events' | 'navigator' | 'storage';
type Options = Required<Omit<ConnectOptions, Optional>> & Pick<ConnectOptions, Optional>;

interface PublishFrame {
  type: 'publish';
  cid: string;
  event: string | undefined;
  data: unknown;
}

/** An edit (new `data`) or delete of message `seq`. */
interface ChangeFrame {
  type: 'edit' | 'delete';
  cid: string;
  seq: number;
  data?: unknown;
}

interface PendingSend {
  cid: string;
  frame: PublishFrame | ChangeFrame;
  json: string;
  resolve: (receipt: Receipt) => void;
  reject: (error: RelayError) => void;
  /** The socket (or 'http') the send went out on, null while it waits to be sent. */
  via: WebSocketLike | 'http' | null;
  tries: number;
  wait?: unknown;
}

type Listener = (value: any) => void;

export class RelayClient<TData = unknown> {
  /** Creates a client and starts connecting. */
  static connect<TData = unknown>(options: ConnectOptions): RelayClient<TData> {
    const client = new RelayClient<TData>(options);
    client._open();
    return client;
  }

  /**
   * One page of history over HTTP (no socket): `{messages, has_more}`.
   * `after`/`before`/`limit` as in the protocol; without them, the newest 50.
   */
  static async history<TData = unknown>({
    url,
    room,
    token,
    after,
    before,
    limit,
    fetch: fetchFn = globalThis.fetch,
  }: HistoryOptions & { url: string; room: string; token: string | Promise<string>; fetch?: typeof fetch }): Promise<HistoryPage<TData>> {
    const q = Object.entries({ after, before, limit }).filter(([, v]) => v != null).map(([k, v]) => k + '=' + v).join('&');
    return request(fetchFn, url, room, await token, 'GET', '/messages' + (q && '?' + q));
  }

  readonly url: string;
  readonly room: string;
  status: Status;
  /** Seq of the last message delivered (or the room's seq at the first welcome). */
  lastSeq: number | null;
  /** This connection's user, from the welcome. */
  user: User | null;
  /** Users online (empty in a room in counts mode: see `occupancy`). */
  presence: User[];
  /** The room's counts while it is in counts mode (past its presence limit), else null. */
  occupancy: Occupancy | null;
  /** Latest read marker per user id. */
  reads: Map<string, ReadMarker>;

  declare private _o: Options;
  declare private _on: Map<string, Set<Listener>>;
  declare private _q: PendingSend[];
  declare private _buf: Map<number, Message<TData>>;
  declare private _t: Record<string, unknown>;
  declare private _cid: string;
  declare private _n: number;
  declare private _attempt: number;
  declare private _failures: number;
  declare private _sockets: number;
  declare private _ws: WebSocketLike | null;
  declare private _ready: boolean;
  declare private _polling: boolean;
  declare private _readWant: number;
  declare private _onOnline: () => void;
  declare private _onOffline: () => void;
  declare private _events: ConnectOptions['events'];
  declare private _typingOn?: boolean;
  declare private _typingAt: number;
  declare private _tok?: string | null | undefined;
  declare private _tokP?: Promise<string | null | undefined> | null;
  declare private _stale?: boolean;
  declare private _opening?: boolean;
  declare private _refused?: { token: string | null | undefined; reason: string | undefined } | null;
  declare private _sockToken?: string | null | undefined;
  declare private _renewing?: string | null;
  declare private _heard?: boolean;
  declare private _catching?: Promise<void> | null;
  declare private _posting?: boolean;
  /** The lowest seq delivered (as a `message` or by loadOlder), once there is one. */
  declare private _floor?: number;
  /** The storage key of this room and user, '' when the token has no `sub`. */
  declare private _key?: string;
  declare private _saved?: number;
  /** The `since` the current socket was opened with. */
  declare private _wsSince?: number | null;
  /** The last welcome's reconnect_window_ms (0 without one or after a refused renewal), capped. */
  declare private _window?: number;

  constructor(options: ConnectOptions) {
    const o = (this._o = {
      fetch: globalThis.fetch && globalThis.fetch.bind(globalThis),
      setTimeout: globalThis.setTimeout.bind(globalThis),
      clearTimeout: globalThis.clearTimeout.bind(globalThis),
      random: Math.random,
      now: Date.now,
      backoffBase: 500,
      backoffCap: 20000,
      maxFailures: 3, // consecutive failures to open a socket before falling back to HTTP polling
      pollInterval: 3000,
      heartbeat: 25000, // ping period; a socket silent for two periods is dropped (0 disables)
      connectTimeout: 10000,
      requestTimeout: 15000,
      stableAfter: 5000, // a socket open this long resets the backoff
      typingInterval: 2000,
      typingTimeout: 3000,
      catchUpLimit: 2000, // after a `reset`, fetch at most this many missed messages, else jump
      maxFrameBytes: 65536,
      authTimeout: 10000, // ms for the relay to answer an in-band token renewal
      batch: true, // ask for batched delivery: a burst of frames may arrive as one JSON array
      iteratorBuffer: 1000,
      ...options,
    } as Options);
    if (!o.url || !o.room) throw new TypeError('url and room are required');
    if (o.token == null && !o.getToken) throw new TypeError('token or getToken is required');
    o.WebSocket ||= (globalThis as { WebSocket?: Options['WebSocket'] }).WebSocket!;
    if (o.navigator === undefined) o.navigator = (globalThis as { navigator?: { onLine?: boolean } }).navigator;
    if (typeof o.WebSocket !== 'function') {
      throw new TypeError('no WebSocket implementation: pass one as the WebSocket option');
    }
    this.url = String(o.url).replace(/\/+$/, '');
    this.room = o.room;
    this.status = 'connecting';
    this.lastSeq = o.since == null ? null : Number(o.since);
    this.user = null; // {id, name?, role?} from the welcome
    this.presence = []; // users online
    this.occupancy = null; // {connections, users} in a room in counts mode
    this.reads = new Map(); // user id -> {user, seq, at}
    this._on = new Map();
    this._q = []; // pending sends, in call order
    this._buf = new Map(); // seq -> message received ahead of a gap
    this._t = {}; // named timers
    // cids must be unique per user across tabs and devices: the relay deduplicates (user, cid).
    const c = globalThis.crypto;
    this._cid = (c ? [...c.getRandomValues(new Uint32Array(3))].map((n) => n.toString(36)).join('') : Math.random().toString(36).slice(2)) + '-';
    this._n = 0;
    this._attempt = 0;
    this._failures = 0;
    this._sockets = 0; // sockets created so far
    this._ws = null;
    this._ready = false; // the socket has received its welcome
    this._polling = false;
    this._readWant = 0;
    // Browsers: drop the socket when the network goes (and stay `offline` while
    // navigator.onLine is false), reconnect at once when it comes back.
    this._onOnline = () => this._ready || this.reconnect();
    this._onOffline = () => (this._ws ? this._drop(this._ws) : this._offline());
    this._events = o.events === undefined ? globalThis : o.events;
    if (this._events && this._events.addEventListener) {
      this._events.addEventListener('online', this._onOnline);
      this._events.addEventListener('offline', this._onOffline);
    }
  }

  // ---- events
  /** Calls `fn` with every `type` event; returns a function that stops that. */
  on<K extends keyof RelayEvents<TData>>(type: K, fn: (value: RelayEvents<TData>[K]) => void): () => void {
    if (!this._on.has(type)) this._on.set(type, new Set());
    this._on.get(type)!.add(fn);
    return () => this.off(type, fn);
  }

  off<K extends keyof RelayEvents<TData>>(type: K, fn: (value: RelayEvents<TData>[K]) => void): void {
    const set = this._on.get(type);
    if (set) set.delete(fn);
  }

  /**
   * The next `type` event only: with `fn`, calls it once (returns the unsubscribe function);
   * without, a promise of it, rejected with `closed` if the client stops first (a promise of
   * `status` resolves with `closed` then) or has stopped already.
   */
  once<K extends keyof RelayEvents<TData>>(type: K): Promise<RelayEvents<TData>[K]>;
  once<K extends keyof RelayEvents<TData>>(type: K, fn: (value: RelayEvents<TData>[K]) => void): () => void;
  once<K extends keyof RelayEvents<TData>>(type: K, fn?: (value: RelayEvents<TData>[K]) => void) {
    if (fn) {
      const off = this.on(type, (v) => (off(), fn(v)));
      return off;
    }
    return new Promise((resolve, reject) => {
      const offs = [this.on(type, (v) => (stop(), resolve(v))), this.on('status', (s) => s === 'closed' && fail())];
      const stop = () => offs.forEach((off) => off());
      const fail = () => (stop(), reject(new RelayError('closed', 'client is closed')));
      if (this.status === 'closed') fail();
    });
  }

  /**
   * `for await (const m of room)`: the messages delivered from now on, in order. Up to
   * `iteratorBuffer` (1000) may wait for a slow loop; one more ends the loop with a RelayError
   * `overflow` (after the waiting ones, its `seq` the last one the loop got), so that nothing is
   * skipped silently. The loop ends when the client is closed; leaving it unsubscribes.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<Message<TData>> {
    const waiting: Message<TData>[] = [];
    let wake: (() => void) | null = null;
    let overflow: RelayError | null = null;
    let ended = false;
    const offs = [
      this.on('message', (m) => {
        if (overflow) return;
        if (waiting.length < this._o.iteratorBuffer) waiting.push(m);
        else overflow = new RelayError('overflow', 'for await fell over ' + this._o.iteratorBuffer + ' messages behind', { seq: waiting[waiting.length - 1]!.seq });
        wake && wake();
      }),
      this.on('status', (s) => s === 'closed' && wake && wake()),
    ];
    const end = (): IteratorResult<Message<TData>> => {
      ended = true;
      offs.forEach((off) => off());
      return { value: undefined, done: true };
    };
    return {
      next: async () => {
        for (;;) {
          if (ended) return end();
          if (waiting.length) return { value: waiting.shift()!, done: false };
          if (overflow) throw (end(), overflow);
          if (this.status === 'closed') return end();
          await new Promise<void>((resolve) => (wake = resolve));
          wake = null;
        }
      },
      return: async () => end(),
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  private _emit<K extends keyof RelayEvents<TData>>(type: K, value: RelayEvents<TData>[K]) {
    for (const fn of [...(this._on.get(type) || [])]) {
      try {
        fn(value);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  private _status(status: Status) {
    if (this.status !== status) this._emit('status', (this.status = status));
  }

  // ---- timers
  private _timer(name: string, fn: () => void, ms: number) {
    this._clear(name);
    this._t[name] = this._o.setTimeout(() => {
      delete this._t[name];
      fn();
    }, ms);
  }

  private _clear(...names: string[]) {
    for (const name of names) {
      if (this._t[name] != null) this._o.clearTimeout(this._t[name]);
      delete this._t[name];
    }
  }

  // ---- public API
  /** The open WebSocket, or null. */
  get socket(): WebSocketLike | null {
    return this._ready ? this._ws : null;
  }

  /** Sends not yet acknowledged. */
  get pending(): number {
    return this._q.length;
  }

  /**
   * Publishes `data`; resolves once with `{seq, id, ts, duplicate, cid}`. Queued while offline
   * and retried with the same cid. The promise carries its `cid`.
   */
  send(data: TData, { event, cid }: SendOptions = {}): Promise<Receipt> & { cid: string } {
    return this._enqueue({ type: 'publish', cid: cid || this._nextCid(), event: event == null ? undefined : event, data: data === undefined ? null : data });
  }

  /**
   * Replaces the data of message `seq` (the user's own; any message with a moderator's role).
   * The relay commits it as a new message with `event: 'message.edited'` and `ref_seq: seq`;
   * resolves on its ack, queued and retried like `send`.
   */
  edit(seq: number, data: TData, { cid }: { cid?: string | undefined } = {}): Promise<Receipt> & { cid: string } {
    return this._enqueue({ type: 'edit', cid: cid || this._nextCid(), seq, data: data === undefined ? null : data });
  }

  /** Deletes message `seq`, like `edit`: committed as `event: 'message.deleted'`, `data: null`. */
  delete(seq: number, { cid }: { cid?: string | undefined } = {}): Promise<Receipt> & { cid: string } {
    return this._enqueue({ type: 'delete', cid: cid || this._nextCid(), seq });
  }

  private _nextCid(): string {
    return this._cid + (++this._n).toString(36);
  }

  private _enqueue(frame: PublishFrame | ChangeFrame): Promise<Receipt> & { cid: string } {
    const id = frame.cid;
    const json = JSON.stringify(frame);
    let promise: Promise<Receipt>;
    if (this.status === 'closed') promise = Promise.reject(new RelayError('closed', 'client is closed', { cid: id }));
    else if (new TextEncoder().encode(json).length > this._o.maxFrameBytes) promise = Promise.reject(new RelayError('too_large', 'message is larger than the frame limit', { cid: id }));
    else {
      promise = new Promise((resolve, reject) => this._q.push({ cid: id, frame, json, resolve, reject, via: null, tries: 0 }));
      this._flush();
    }
    return Object.assign(promise, { cid: id });
  }

  /** Says whether this user is typing; at most one `true` per typingInterval, auto-stops. */
  typing(active = true): void {
    this._clear('typing');
    if (active) {
      const now = this._o.now();
      if (!this._typingOn || now - this._typingAt >= this._o.typingInterval) {
        if (this._frame({ type: 'typing', active: true })) {
          this._typingOn = true;
          this._typingAt = now;
        }
      }
      this._timer('typing', () => this.typing(false), this._o.typingTimeout);
    } else if (this._typingOn) {
      this._typingOn = false;
      this._frame({ type: 'typing', active: false });
    }
  }

  /** Marks everything up to `seq` (default: lastSeq) as read; sent now or on the next welcome. */
  markRead(seq: number | null = this.lastSeq): void {
    if (seq != null && seq > this._readWant) {
      this._readWant = seq;
      this._frame({ type: 'read', seq });
    }
  }

  /** One page of history of this room over HTTP, with this client's token. */
  async history<T = TData>({ after, before, limit }: HistoryOptions = {}): Promise<HistoryPage<T>> {
    return RelayClient.history<T>({ url: this.url, room: this.room, token: this._token() as Promise<string>, after, before, limit, fetch: this._o.fetch });
  }

  /**
   * The page of history just before everything delivered so far (`message` events and earlier
   * loadOlder pages), in ascending order, newest `limit` first: prepended to what the app shows,
   * the pages and the `message` events make one ordered run without duplicates. Before the first
   * welcome it learns the room's newest seq over HTTP, so that a fresh room client can show the
   * latest page and then live messages. `has_more` tells that older ones exist.
   */
  async loadOlder(limit = 50): Promise<HistoryPage<TData>> {
    if (this.lastSeq == null) await this._catchUp();
    if (this.lastSeq == null) throw new RelayError('unavailable', "the room's history could not be reached");
    const floor = () => this._floor ?? this.lastSeq! + 1;
    if (floor() <= 1) return { messages: [], has_more: false };
    const page = await this._http<HistoryPage<TData>>('GET', '/messages?before=' + floor() + '&limit=' + limit);
    const messages = page.messages.filter((m) => m.seq < floor());
    if (messages.length) this._floor = messages[0]!.seq;
    return { messages, has_more: page.has_more };
  }

  /** Drops the socket (if any) and reconnects now, without waiting out the backoff. */
  reconnect(): void {
    if (this.status === 'closed') return;
    if (this._ws) this._drop(this._ws);
    this._attempt = 0;
    this._open();
    if (this._polling) this._timer('poll', () => this._poll(), 0);
  }

  /** Stops for good: closes the socket, rejects pending sends with code `closed`. */
  close(): void {
    this._stop(new RelayError('closed', 'client is closed'));
  }

  // ---- connection
  private _token(): Promise<string | null | undefined> {
    const o = this._o;
    const exp = this._tok && jwtClaims(this._tok).exp;
    if (!this._tokP || (o.getToken && (this._stale || (exp && (exp as number) * 1000 < o.now() + 10000)))) {
      this._stale = false;
      this._tokP = Promise.resolve(o.getToken ? o.getToken() : o.token).then(
        (t) => (this._tok = t),
        (e) => {
          this._tokP = null;
          throw e;
        },
      );
    }
    return this._tokP;
  }

  /**
   * Whether the browser says there is no network; then nothing the client tries can work: no
   * socket, no retry, no polling (each would only fail) until `online`.
   */
  private _offline() {
    const n = this._o.navigator;
    if (!n || n.onLine !== false || this.status === 'closed') return false;
    this._polling = false;
    this._clear('retry', 'poll');
    this._status('offline');
    return true;
  }

  private async _open(): Promise<void> {
    if (this.status === 'closed' || this._ws || this._opening) return;
    this._clear('retry');
    if (this._offline()) return;
    this._opening = true;
    let token, failed;
    try {
      token = await this._token();
    } catch (e) {
      failed = true; // getToken threw (its endpoint may be down for a moment): retried with the backoff
      this._emit('error', tokenError(e));
    }
    this._opening = false;
    // The status may have changed while the token was awaited.
    if ((this.status as Status) === 'closed' || this._ws) return;
    if (this._offline()) return;
    if (failed) return this._closed(null, 1006);
    const refused = this._refused;
    if (!token || (refused && token === refused.token)) {
      // No token, or the one the relay just refused: every retry would be refused the same way.
      return this._stop(new RelayError('unauthorized', refused?.reason || 'no token to connect with', { closeCode: refused ? 4001 : undefined, reason: refused?.reason }));
    }
    this._sockToken = token;
    if (this._key == null && this._o.storage) this._restore(token);
    if (this.status === 'offline') this._status(this._sockets ? 'reconnecting' : 'connecting');
    // The token goes in the subprotocol list, never in the URL: URLs end up in consoles, logs and
    // error reporters. Offering relay.v1 also makes the relay close a refused handshake with a
    // readable code (4001, 4003, ...) instead of the browser's bare 1006.
    this._wsSince = this.lastSeq;
    const query = [this.lastSeq == null ? '' : 'since=' + this.lastSeq, this._o.batch ? 'batch=1' : ''].filter(Boolean).join('&');
    const u = roomPath(this.url, this.room).replace(/^http/, 'ws') + '/ws' + (query && '?' + query);
    let ws: WebSocketLike;
    try {
      ws = this._ws = new this._o.WebSocket(u, ['relay.v1', 'bearer.' + token]);
      this._sockets++;
    } catch (e) {
      // Only what no retry can fix throws here: a malformed URL, a token with characters a
      // subprotocol cannot carry, a page that may not open ws: (mixed content). The runtime's
      // message may quote the token, so it is not passed on.
      return this._stop(new RelayError('bad_request', 'cannot open a WebSocket to ' + u + ' (' + ((e && (e as Error).name) || 'Error') + '): check the url, and that the token is a JWT'));
    }
    this._timer('connect', () => this._drop(ws), this._o.connectTimeout);
    ws.onmessage = (e: { data: string }) => ws === this._ws && this._onFrame(e.data, ws);
    ws.onclose = (e: { code: number; reason?: string }) => this._closed(ws, e.code, e.reason);
    ws.onerror = () => {};
  }

  private _drop(ws: WebSocketLike) {
    try {
      ws.close();
    } catch {}
    this._closed(ws, 1006);
  }

  private _closed(ws: WebSocketLike | null, code: number, reason?: string) {
    if (ws !== this._ws) return;
    const wasOpen = this._ready;
    this._ws = null;
    this._ready = false;
    this._clear('connect', 'heartbeat', 'stable', 'renew', 'auth');
    this._renewing = null;
    for (const p of this._q) if (p.via === ws) p.via = null;
    if (this.status === 'closed') return;
    const name = CLOSE_CODES[code];
    const err = name && new RelayError(name, reason || name, { closeCode: code, reason });
    // Stop for good where every retry would be refused the same way: 4003 (room not granted,
    // origin not allowed, removed, banned), 4400 at the handshake (the request itself is bad),
    // 4001 without getToken or for a token fetched after a 4001 already.
    if (code === 4003 || (code === 4400 && !wasOpen) || (code === 4001 && (!this._o.getToken || this._refused))) return this._stop(err as RelayError);
    if (code === 4001) {
      // Reconnect with a new token; the next open stops if getToken gives this one again.
      this._refused = { token: this._sockToken, reason };
      this._stale = true;
    } else if (err && code >= 4000) this._emit('error', err); // 4008, 4009, 4400 after the welcome
    // 4010 (slow consumer: the relay had too much unsent for this socket), 1012 and the rest
    // are no error of the app's: reconnect, resuming with since=lastSeq, and nothing is lost.
    if (this._offline()) return;
    // Only a socket that failed without a relay close code counts towards the HTTP fallback: a
    // relay code means WebSockets get through, and HTTP would be refused the same way.
    if (wasOpen) this._failures = 0;
    else if (!(code >= 4000)) this._failures++;
    if (!this._polling && this._failures >= this._o.maxFailures) {
      this._polling = true;
      this._status('polling');
      this._poll();
    } else if (!this._polling) this._status('reconnecting');
    // A deploy closes every socket of a room at once: when an open socket closes without a relay
    // refusal, the first retry waits a random part of the last welcome's window if that is longer
    // than the backoff, so that a room of 100 000 comes back over 100 s instead of all at once.
    // Later retries are the sockets that did not open: the backoff alone.
    const o = this._o;
    const spread = wasOpen && code < 4000 ? o.random() * this._window! : 0;
    this._timer('retry', () => this._open(), Math.max(spread, backoffDelay(this._attempt++, o.backoffBase, o.backoffCap, o.random)));
  }

  private _frame(obj: object | string) {
    if (!this._ready) return false;
    try {
      this._ws!.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
      return true;
    } catch {
      return false;
    }
  }

  private _beat() {
    if (!this._o.heartbeat) return;
    this._timer('heartbeat', () => {
      if (!this._heard) return this._drop(this._ws!);
      this._heard = false;
      this._frame({ type: 'ping' });
      this._beat();
    }, this._o.heartbeat);
  }

  private _onFrame(text: string, ws: WebSocketLike) {
    let f;
    try {
      f = JSON.parse(text);
    } catch {
      return;
    }
    this._heard = true;
    // Batched delivery: an array holds ordinary frames, in order. A listener may drop or replace
    // the socket midway (close(), reconnect()): the rest of its array is then ignored too.
    for (const g of Array.isArray(f) ? f : [f]) if (ws === this._ws && g && typeof g === 'object') this._handle(g);
  }

  private _handle(f: RelayFrame) {
    switch (f.type) {
      case 'welcome':
        return this._welcome(f);
      case 'message':
        return this._deliver(f as Message<TData>);
      case 'ack':
        return this._ack(f);
      case 'typing':
      case 'synced':
        return this._emit(f.type, f);
      case 'read':
        this.reads.set(f.user.id, f);
        return this._emit('read', f);
      case 'occupancy':
        return this._occupancy(f);
      case 'presence':
        this.presence = this.presence.filter((u) => u.id !== f.user.id);
        if (f.event === 'join') this.presence.push(f.user);
        return this._emit('presence', f);
      case 'reset':
        return this._reset(f.seq);
      case 'auth':
        return this._authed(f);
      case 'error':
        return this._error(f);
    }
  }

  // ---- in-band token renewal: {"type":"auth","token"} on the open socket, before exp
  /** Schedules the renewal of the socket's token, which expires at `exp` (unix seconds). */
  private _scheduleRenew(exp: unknown) {
    const o = this._o;
    if (!o.getToken || typeof exp !== 'number' || !this._ready) return;
    const now = o.now();
    const expMs = exp * 1000;
    const left = expMs - now;
    if (left <= 0) return; // expired: the relay closes with 4001, and the reconnect asks getToken
    const iat = jwtClaims(this._sockToken).iat;
    const from = typeof iat === 'number' && iat * 1000 <= now ? iat * 1000 : now;
    const due = Math.min(from + 0.8 * (expMs - from), expMs - RENEW_BEFORE_MS) - now;
    const floor = Math.max(1000, Math.min(RENEW_MIN_MS, left / 2));
    this._timer('renew', () => this._renew(), Math.min(MAX_TIMER_MS, Math.max(floor, due)));
  }

  private async _renew() {
    const ws = this._ws;
    const old = this._sockToken;
    let token = null;
    try {
      this._stale = true;
      token = await this._token();
    } catch (e) {
      this._emit('error', tokenError(e));
    }
    if (ws !== this._ws || !this._ready) return;
    if (!token || token === old) {
      // Nothing new yet (a provider may hand out its cached token until close to exp, or its
      // endpoint failed): ask again halfway to exp; past exp the relay's 4001 takes over.
      if (!token) this._stale = true;
      const left = (jwtClaims(old).exp as number) * 1000 - this._o.now();
      if (left > 0) this._timer('renew', () => this._renew(), Math.min(MAX_TIMER_MS, Math.max(1000, left / 2)));
      return;
    }
    if (!this._frame({ type: 'auth', token })) return;
    this._renewing = token;
    this._timer('auth', () => this._renewFailed(new RelayError('timeout', 'no answer to the token renewal')), this._o.authTimeout);
  }

  private _authed(f: AuthRenewed) {
    if (this._renewing == null) return;
    this._clear('auth');
    this._sockToken = this._renewing;
    this._renewing = null;
    this._emit('auth', f);
    this._scheduleRenew(f.exp);
  }

  /**
   * The relay refused the new token, or did not answer. The socket keeps its old token until
   * exp, but cannot be renewed: reconnect now, with a fresh token from getToken, while the old
   * one still covers the gap.
   */
  private _renewFailed(err: RelayError) {
    this._renewing = null;
    this._clear('auth');
    this._emit('error', err);
    this._stale = true;
    this._window = 0; // no deploy: no reason to wait out the window
    if (this._ws) this._drop(this._ws);
  }

  private _welcome(f: Welcome) {
    this._clear('connect');
    this._ready = true;
    this._failures = 0;
    this._refused = null;
    this._heard = true;
    this.user = f.user;
    this._window = Math.min(MAX_WINDOW_MS, f.reconnect_window_ms || 0);
    if (this.lastSeq == null) this.lastSeq = f.seq;
    // Learnt over HTTP (loadOlder, polling) after this socket opened without since: fetch the rest.
    else if (this._wsSince == null && f.seq > this.lastSeq) this._catchUp();
    this._save();
    this.presence = f.presence || [];
    this.occupancy = null;
    this.reads = new Map((f.reads || []).map((r) => [r.user.id, r]));
    this._timer('stable', () => (this._attempt = 0), this._o.stableAfter);
    this._beat();
    this._scheduleRenew(jwtClaims(this._sockToken).exp);
    this._polling = false;
    this._clear('poll');
    this._status('open');
    this._emit('welcome', f);
    this._emit('presence', { type: 'presence', event: 'sync', presence: this.presence });
    if (f.occupancy) this._occupancy({ type: 'occupancy', ...f.occupancy });
    if (this._readWant) this._frame({ type: 'read', seq: this._readWant });
    if (this._typingOn) this._frame({ type: 'typing', active: true });
    this._flush();
  }

  /** Counts from the room: its first frame on a connection means the list is no longer kept. */
  private _occupancy(f: OccupancyFrame) {
    const listed = !this.occupancy && this.presence.length;
    this.occupancy = { connections: f.connections, users: f.users };
    if (listed) this._emit('presence', { type: 'presence', event: 'sync', presence: (this.presence = []) });
    this._emit('occupancy', f);
  }

  /** Users online, and connections in counts mode (null while the room lists its users). */
  get counts(): { users: number; connections: number | null } {
    return this.occupancy || { users: this.presence.length, connections: null };
  }

  // ---- resume across reloads (the storage option)
  /** Resumes after the seq stored for this room and the token's user, unless one was delivered. */
  private _restore(token: string) {
    const sub = jwtClaims(token).sub;
    const key = (this._key = typeof sub === 'string' ? 'edge-relay:' + this.url + ':' + this.room + ':' + sub : '');
    const stored = key ? Number(storageGet(this._o.storage!, key) ?? NaN) : NaN;
    if (Number.isSafeInteger(stored) && stored >= 0 && this._floor == null) this.lastSeq = this._saved = stored;
  }

  private _save() {
    const seq = this.lastSeq;
    if (this._key && seq != null && seq !== this._saved) {
      this._saved = seq;
      const s = this._o.storage!;
      try {
        'setItem' in s ? s.setItem(this._key, String(seq)) : s.set(this._key, String(seq));
      } catch {} // full or denied (private mode): the next reload starts live, as without storage
    }
  }

  // ---- messages, in order and once
  private _deliver(m: Message<TData>) {
    if (this.lastSeq == null) this.lastSeq = m.seq - 1;
    if (!(m.seq > this.lastSeq)) return;
    this._buf.set(m.seq, m);
    for (let next; (next = this._buf.get(this.lastSeq + 1)); ) {
      this._buf.delete(++this.lastSeq);
      const n = next;
      const p = n.cid && n.from && this.user && n.from.id === this.user.id && this._q.find((q) => q.cid === n.cid);
      if (p) this._settle(p, null, { seq: n.seq, id: n.id, ts: n.ts, duplicate: true });
      if (this._floor == null) this._floor = n.seq;
      this._emit('message', n);
    }
    this._save();
    if (this._buf.size) this._catchUp();
  }

  /** Continues from `seq` without delivering what lies before it. */
  private _jump(seq: number) {
    this.lastSeq = seq;
    this._save();
    for (const s of this._buf.keys()) if (s <= seq) this._buf.delete(s);
    const [m] = this._buf.values();
    if (m) {
      this._buf.delete(m.seq);
      this._deliver(m);
    }
  }

  private _reset(seq: number) {
    const from = this.lastSeq;
    this._emit('reset', { seq, from });
    if (from == null || seq < from || seq - from > this._o.catchUpLimit) this._jump(seq);
    else this._catchUp();
  }

  /** Pages `GET messages?after=lastSeq` until has_more is false (one run at a time). */
  private _catchUp(): Promise<void> {
    if (!this._catching) {
      this._catching = (async () => {
        try {
          if (this.lastSeq == null) {
            const page = await this._http<HistoryPage<TData>>('GET', '/messages?limit=1');
            if (this.lastSeq == null) this.lastSeq = page.messages.length ? page.messages[page.messages.length - 1]!.seq : 0;
          }
          for (;;) {
            const page = await this._http<HistoryPage<TData>>('GET', '/messages?after=' + this.lastSeq + '&limit=200');
            for (const m of page.messages) this._deliver(m);
            if (!page.has_more || !page.messages.length) break;
          }
          // History has everything it will ever have up to here: skip a gap it cannot fill.
          if (this._buf.size) this._jump(Math.min(...this._buf.keys()) - 1);
        } catch (e) {
          this._httpError(e as RelayError);
        } finally {
          this._catching = null;
        }
      })();
    }
    return this._catching;
  }

  // ---- sends
  private _settle(p: PendingSend, err: RelayError | null, receipt?: Omit<Receipt, 'cid'>) {
    const i = this._q.indexOf(p);
    if (i < 0) return;
    this._q.splice(i, 1);
    if (p.wait != null) this._o.clearTimeout(p.wait);
    if (err) p.reject(err);
    else p.resolve({ ...receipt!, cid: p.cid });
  }

  private _ack(f: { cid: string; seq: number; id: string; ts: string; duplicate?: boolean }) {
    const p = this._q.find((q) => q.cid === f.cid);
    if (!p) return;
    this._settle(p, null, { seq: f.seq, id: f.id, ts: f.ts, duplicate: !!f.duplicate });
    const s = p.frame;
    const m = { type: 'message', room: this.room, seq: f.seq, id: f.id, event: s.type === 'publish' ? s.event || 'message' : s.type === 'edit' ? 'message.edited' : 'message.deleted', data: s.data ?? null, from: this.user, cid: f.cid, ts: f.ts } as Message<TData>;
    if (s.type !== 'publish') m.ref_seq = s.seq;
    this._deliver(m);
  }

  /** Sends `p` again after `ms` (a refusal worth retrying, or a relay that was busy). */
  private _retry(p: PendingSend, ms: number) {
    p.via = null;
    p.tries++;
    p.wait = this._o.setTimeout(() => {
      p.wait = null;
      this._flush();
    }, ms);
  }

  private _error(f: { code: string; message?: string; cid?: string }) {
    const err = new RelayError(f.code, f.message, f.cid ? { cid: f.cid } : undefined);
    if (!f.cid && this._renewing != null && (f.code === 'unauthorized' || f.code === 'forbidden')) return this._renewFailed(err);
    const p = f.cid && this._q.find((q) => q.cid === f.cid);
    if (!p) return this._emit('error', err);
    if (RETRYABLE.has(f.code) && p.tries < MAX_SEND_TRIES) this._retry(p, 500 + backoffDelay(p.tries, 500, 10000, this._o.random));
    else this._settle(p, err);
  }

  private _flush() {
    if (this._ready) {
      for (const p of this._q) if (p.via !== this._ws && p.wait == null && this._frame(p.json)) p.via = this._ws;
    } else if (this._polling) this._post();
  }

  /** HTTP sends, one at a time in call order, while polling. */
  private async _post() {
    if (this._posting) return;
    this._posting = true;
    try {
      while (this._polling && !this._ready) {
        const p = this._q.find((q) => !q.via);
        if (!p || p.wait != null) break;
        p.via = 'http';
        const s = p.frame;
        try {
          const r = await this._http<Omit<Receipt, 'cid'>>(
            ...((s.type === 'publish'
              ? ['POST', '/messages', { cid: s.cid, event: s.event, data: s.data }]
              : [s.type === 'edit' ? 'PATCH' : 'DELETE', '/messages/' + s.seq, { cid: s.cid, data: s.data }]) as [string, string, unknown]),
          );
          this._settle(p, null, r);
          this._timer('poll', () => this._poll(), 50);
        } catch (err) {
          const e = err as RelayError;
          if (p.via === 'http') p.via = null;
          const status = e.status!;
          if (status === 429 || (status >= 500 && p.tries < MAX_SEND_TRIES)) {
            this._retry(p, e.retryAfter ? e.retryAfter * 1000 : 1000 + backoffDelay(p.tries, 500, 10000, this._o.random));
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

  private async _poll() {
    if (!this._polling || this._ready) return;
    this._timer('poll', () => this._poll(), this._o.pollInterval);
    await this._catchUp();
    this._post();
  }

  private _httpError(e: RelayError) {
    // A 401 gets here only when getToken had no new token for it (see _http).
    if (e.status === 403 || e.status === 401) this._stop(e);
    else if (e.status) this._emit('error', e);
  }

  /** An HTTP call with the current token; after a 401, once more with a new one from getToken. */
  private async _http<R>(method: string, path: string, body?: unknown): Promise<R> {
    const token = await this._token();
    try {
      return await this._request<R>(method, path, body, token);
    } catch (e) {
      if ((e as RelayError).status !== 401 || !this._o.getToken) throw e;
      this._stale = true;
      const fresh = await this._token();
      if (!fresh || fresh === token) throw e;
      return this._request<R>(method, path, body, fresh);
    }
  }

  private async _request<R>(method: string, path: string, body: unknown, token: string | null | undefined): Promise<R> {
    const o = this._o;
    const ctrl = typeof AbortController == 'function' ? new AbortController() : null;
    const id = o.setTimeout(() => ctrl?.abort(), o.requestTimeout);
    try {
      return await request<R>(o.fetch, this.url, this.room, token!, method, path, body, ctrl?.signal);
    } finally {
      o.clearTimeout(id);
    }
  }

  private _stop(err: RelayError) {
    if (this.status === 'closed') return;
    const ws = this._ws;
    this._ws = null;
    this._ready = this._polling = false;
    this._clear(...Object.keys(this._t));
    if (ws) {
      try {
        ws.close(1000);
      } catch {}
    }
    if (this._events && this._events.removeEventListener) {
      this._events.removeEventListener('online', this._onOnline);
      this._events.removeEventListener('offline', this._onOffline);
    }
    if (err.code !== 'closed') this._emit('error', err);
    this._status('closed');
    for (const p of [...this._q]) this._settle(p, err);
  }
}

export default RelayClient;
