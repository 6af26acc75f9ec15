// Type declarations for @edge-relay/client (edge-relay wire protocol v1).

export interface User {
  id: string;
  name?: string;
  role?: string;
}

export interface Message<T = unknown> {
  type: 'message';
  room: string;
  seq: number;
  id: string;
  event: string;
  data: T;
  /** `null` for messages published by backends. */
  from: User | null;
  cid?: string;
  /** RFC 3339 UTC with milliseconds. */
  ts: string;
}

export interface Receipt {
  seq: number;
  id: string;
  ts: string;
  /** The relay had this (sender, cid) already: seq/id/ts are the original ones. */
  duplicate: boolean;
  cid: string;
}

export interface ReadMarker {
  type?: 'read';
  user: User;
  seq: number;
  at: string;
}

export interface TypingFrame {
  type: 'typing';
  user: User;
  active: boolean;
}

export interface PresenceEvent {
  type: 'presence';
  /** `sync`: a (re)connect replaced the whole list with the welcome's. */
  event: 'join' | 'leave' | 'sync';
  user?: User;
  last_seen?: string;
  presence?: User[];
}

export interface Welcome {
  type: 'welcome';
  room: string;
  conn_id: string;
  user: User;
  seq: number;
  presence: User[];
  reads?: ReadMarker[];
}

export interface HistoryPage<T = unknown> {
  messages: Message<T>[];
  has_more: boolean;
}

/**
 * `offline`: `navigator.onLine` is false; nothing is retried or polled until the `online` event.
 * `closed`: stopped for good (by `close()`, or a refusal that no retry could change).
 */
export type Status = 'connecting' | 'open' | 'reconnecting' | 'polling' | 'offline' | 'closed';

/** The relay's answer to an in-band token renewal: the connection's token now expires at `exp`. */
export interface AuthRenewed {
  type: 'auth';
  /** Unix seconds. */
  exp: number;
}

export interface RelayEvents {
  message: Message;
  typing: TypingFrame;
  read: ReadMarker;
  presence: PresenceEvent;
  status: Status;
  error: RelayError;
  welcome: Welcome;
  synced: { type: 'synced'; seq: number };
  /** The relay could not replay from `from`; the client caught up over HTTP or jumped to `seq`. */
  reset: { seq: number; from: number | null };
  /** An in-band token renewal was accepted. */
  auth: AuthRenewed;
}

export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onmessage: ((ev: any) => any) | null;
  onclose: ((ev: any) => any) | null;
  onerror: ((ev: any) => any) | null;
}

export interface ConnectOptions {
  /** Relay base URL, `http(s)://host[:port]`. */
  url: string;
  room: string;
  /** A JWT (it travels in the WebSocket subprotocol and in `Authorization`); or give `getToken`. */
  token?: string;
  /**
   * Called for the first token, for each in-band renewal before `exp`, after a 4001 close or
   * HTTP 401, and when the token is about to expire before a connect. Giving no token (or the
   * one just refused) after a refusal stops the client with `unauthorized`.
   */
  getToken?: () => string | null | undefined | Promise<string | null | undefined>;
  /** Resume after this seq (messages with a greater seq are replayed). Default: live only. */
  since?: number;

  /**
   * Default: the global `WebSocket`; the constructor throws a `TypeError` when there is none.
   * Called as `new WebSocket(url, ['relay.v1', 'bearer.' + token])`.
   */
  WebSocket?: new (url: string, protocols: string[]) => WebSocketLike;
  fetch?: typeof fetch;
  setTimeout?: (fn: () => void, ms: number) => any;
  clearTimeout?: (id: any) => void;
  random?: () => number;
  now?: () => number;
  /** Target of `online`/`offline` events; default `globalThis`, `null` to ignore them. */
  events?: EventTarget | null;
  /** Its `onLine` false means `offline`; default `globalThis.navigator`, `null` to ignore it. */
  navigator?: { onLine?: boolean } | null;

  /** ms, default 500. */
  backoffBase?: number;
  /** ms, default 20000. */
  backoffCap?: number;
  /** Consecutive socket failures before HTTP polling starts; default 3. */
  maxFailures?: number;
  /** ms between polls while polling; default 3000. */
  pollInterval?: number;
  /** Ping period in ms; a socket silent for two periods is dropped; 0 disables. Default 25000. */
  heartbeat?: number;
  /** ms until a socket must have received its welcome; default 10000. */
  connectTimeout?: number;
  /** HTTP request timeout in ms; default 15000. */
  requestTimeout?: number;
  /** A socket open this long resets the backoff; default 5000 ms. */
  stableAfter?: number;
  /** At most one `typing:true` per this many ms; default 2000. */
  typingInterval?: number;
  /** `typing(true)` turns into `typing(false)` after this many ms without a call; default 3000. */
  typingTimeout?: number;
  /** After `reset`, fetch at most this many missed messages over HTTP, else jump; default 2000. */
  catchUpLimit?: number;
  /** Sends whose frame is larger are refused locally with `too_large`; default 65536. */
  maxFrameBytes?: number;
  /**
   * Batched delivery (`&batch=1` on connect): the relay may send a burst of frames as one JSON
   * array, which the client unpacks in order. `false` asks for one frame per message; default true.
   */
  batch?: boolean;
  /** ms for the relay to answer an in-band token renewal before it counts as failed; default 10000. */
  authTimeout?: number;
}

export declare class RelayError extends Error {
  /**
   * Protocol error code (`unauthorized`, `forbidden`, `bad_request`, `rate_limited`, ...);
   * or the client's own: `closed`, `token` (getToken threw), `timeout` (a renewal got no answer).
   */
  code: string;
  cid?: string;
  /** HTTP status, for errors from HTTP calls. */
  status?: number;
  /** Retry-After in seconds, for HTTP 429. */
  retryAfter?: number;
  /** WebSocket close code, for errors from a close (4001, 4003, 4008, 4009, 4400, ...). */
  closeCode?: number;
  /** The relay's close reason, for errors from a close (e.g. `origin not allowed`); also the message. */
  reason?: string;
  constructor(code: string, message?: string, extra?: object);
}

/** Full-jitter backoff: uniform in [0, min(cap, base * 2^attempt)]. */
export declare function backoffDelay(attempt: number, base?: number, cap?: number, random?: () => number): number;

export declare class RelayClient {
  static connect(options: ConnectOptions): RelayClient;
  static history<T = unknown>(options: {
    url: string;
    room: string;
    token: string | Promise<string>;
    after?: number;
    before?: number;
    limit?: number;
    fetch?: typeof fetch;
  }): Promise<HistoryPage<T>>;

  constructor(options: ConnectOptions);

  readonly url: string;
  readonly room: string;
  readonly status: Status;
  /** Seq of the last message delivered (or the room's seq at the first welcome). */
  readonly lastSeq: number | null;
  /** This connection's user, from the welcome. */
  readonly user: User | null;
  /** Users online. */
  readonly presence: User[];
  /** Latest read marker per user id. */
  readonly reads: Map<string, ReadMarker>;
  /** The open WebSocket, or null. */
  readonly socket: WebSocketLike | null;
  /** Number of sends not yet acknowledged. */
  readonly pending: number;

  on<K extends keyof RelayEvents>(type: K, fn: (value: RelayEvents[K]) => void): () => void;
  off<K extends keyof RelayEvents>(type: K, fn: (value: RelayEvents[K]) => void): void;

  send(data: unknown, options?: { event?: string; cid?: string }): Promise<Receipt> & { cid: string };
  typing(active?: boolean): void;
  markRead(seq?: number): void;
  history<T = unknown>(options?: { after?: number; before?: number; limit?: number }): Promise<HistoryPage<T>>;
  reconnect(): void;
  close(): void;
}

export default RelayClient;
