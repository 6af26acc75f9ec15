// The wire types of edge-relay's protocol v1 as the client sees them (built on wire.ts, which is
// generated from the relay's Rust types), and the client's options.
import type * as Wire from './wire.js';

export type { ClientFrame, ErrorCode, ErrorFrame, PresenceFrame, RelayFrame } from './wire.js';

export type User = Wire.User;

/** A stored message; `TData` is the type of its `data`, as the app publishes it. */
export interface Message<TData = unknown> extends Omit<Wire.MessageFrame, 'data'> {
  data: TData;
  /** On the record of an edit (`event: 'message.edited'`) or delete (`'message.deleted'`): the seq of the message changed. */
  ref_seq?: number;
  /** In history: when the message was last edited. */
  edited_at?: string;
  /** In history: when the message was deleted (its `data` is then `null`). */
  deleted_at?: string;
}

/** `duplicate`: the relay had this (sender, cid) already: seq/id/ts are the original ones. */
export interface Receipt extends Wire.Receipt {
  cid: string;
}

export interface ReadMarker extends Wire.ReadMarker {
  type?: 'read';
}

export type TypingFrame = Extract<Wire.ServerFrame, { type: 'typing' }>;

export interface PresenceEvent {
  type: 'presence';
  /** `sync`: a (re)connect replaced the whole list with the welcome's. */
  event: 'join' | 'leave' | 'sync';
  user?: User;
  last_seen?: string;
  presence?: User[];
}

/** A big room's counts: past its presence limit it sends these instead of joins and leaves. */
export interface Occupancy {
  connections: number;
  users: number;
}

export interface OccupancyFrame extends Occupancy {
  type: 'occupancy';
}

export interface Welcome extends Omit<Wire.Welcome, 'reads' | 'presence' | 'occupancy'> {
  type: 'welcome';
  /** The users online; absent in a room in counts mode, whose welcome has `occupancy`. */
  presence?: User[];
  occupancy?: Occupancy;
  reads?: ReadMarker[];
  /**
   * In a big room (over 1 000 sockets): ms over which its clients should spread their return
   * after an unexpected close (a deploy closes every socket at once); 1 ms per socket, at most
   * 120 000.
   */
  reconnect_window_ms?: number;
}

export interface HistoryPage<TData = unknown> {
  messages: Message<TData>[];
  has_more: boolean;
}

/**
 * `offline`: `navigator.onLine` is false; nothing is retried or polled until the `online` event.
 * `closed`: stopped for good (by `close()`, or a refusal that no retry could change).
 */
export type Status = 'connecting' | 'open' | 'reconnecting' | 'polling' | 'offline' | 'closed';

/** The relay's answer to an in-band token renewal: the connection's token now expires at `exp` (unix seconds). */
export type AuthRenewed = Extract<Wire.ServerFrame, { type: 'auth' }>;

export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onmessage: ((ev: any) => any) | null;
  onclose: ((ev: any) => any) | null;
  onerror: ((ev: any) => any) | null;
}

export type TokenSource = string | null | undefined;

/** Where `storage` keeps the last seq: `sessionStorage`, `localStorage`, or an adapter. */
export type SeqStorage =
  | Pick<Storage, 'getItem' | 'setItem'>
  | { get(key: string): string | null | undefined; set(key: string, value: string): void };

export interface ConnectOptions {
  /** Relay base URL, `http(s)://host[:port]`. */
  url: string;
  room: string;
  /** A JWT (it travels in the WebSocket subprotocol and in `Authorization`); or give `getToken`. */
  token?: string | undefined;
  /**
   * Called for the first token, for each in-band renewal before `exp`, after a 4001 close or
   * HTTP 401, and when the token is about to expire before a connect. Giving no token (or the
   * one just refused) after a refusal stops the client with `unauthorized`.
   */
  getToken?: (() => TokenSource | Promise<TokenSource>) | undefined;
  /** Resume after this seq (messages with a greater seq are replayed). Default: live only. */
  since?: number | null | undefined;
  /**
   * Opt-in resume across reloads: keeps the seq of the last message delivered per relay, room
   * and user (the token's `sub`) under `edge-relay:<url>:<room>:<sub>`; a client created later
   * with the same storage resumes after it (it takes precedence over `since`).
   */
  storage?: SeqStorage | null | undefined;
  /** Messages a `for await` loop may have waiting before it throws `overflow`; default 1000. */
  iteratorBuffer?: number;

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
  events?: Pick<EventTarget, 'addEventListener' | 'removeEventListener'> | null;
  /** Its `onLine` false means `offline`; default `globalThis.navigator`, `null` to ignore it. */
  navigator?: { onLine?: boolean } | null | undefined;

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
