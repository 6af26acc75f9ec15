// RelayServer: the relay's backend and admin routes over fetch, each call authenticated
// (a v2 signature by default, so the webhook secret itself never travels), retried when a
// retry can help, and failing with a typed RelayError.

import { RelayError, type RelayErrorCode, type RelayErrorCodeFromRelay } from './errors.js';
import { importHmacKey } from './hmac.js';
import { backoffDelayMs, isRetryableStatus, parseRetryAfter } from './retry.js';
import { SIGNATURE_HEADER, signWithKey } from './signature.js';
import { unixSeconds } from './token.js';

/** The part of a fetch Response the client reads. */
export interface ResponseLike {
  status: number;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}

export interface RequestInitLike {
  method: string;
  headers: Record<string, string>;
  body?: string;
  signal: AbortSignal;
}

/** `globalThis.fetch` or anything shaped like it (a test double, a proxy-aware fetch). */
export type FetchLike = (url: string, init: RequestInitLike) => Promise<ResponseLike>;

export interface RelayServerOptions {
  /** The relay's origin, e.g. `https://relay.example.com` (no path). */
  url: string;
  /** The relay's `WEBHOOK_SECRET`. */
  webhookSecret: string;
  /** The relay's `ADMIN_SECRET`, needed by `stats`, `roomStats` and `presence`. */
  adminSecret?: string;
  /**
   * How backend calls prove the webhook secret: `signature` (default) sends
   * `X-Relay-Signature` bound to the method, path and body, valid for 5 minutes;
   * `bearer` sends the secret itself in `Authorization`.
   */
  auth?: 'signature' | 'bearer';
  fetch?: FetchLike;
  /** Requests per call at most, the first included (default 4, 1..=10). */
  maxAttempts?: number;
  /** Backoff before the first retry: between half of this and this (default 250 ms). */
  baseDelayMs?: number;
  /** Cap of the backoff between attempts (default 5 000 ms). */
  maxDelayMs?: number;
  /**
   * The longest `Retry-After` waited for (default 30 s); a longer one fails the call at
   * once with the `RelayError` (its `retryAfterSeconds` says when to come back).
   */
  maxRetryAfterSeconds?: number;
  /** Each request's deadline, answer body included (default 10 000 ms). */
  timeoutMs?: number;
  /** Replaces the waits between attempts (tests, custom schedulers). */
  sleep?: (ms: number) => Promise<void>;
  /** Replaces Math.random for the backoff's jitter. */
  random?: () => number;
  /** The clock used for signatures. */
  now?: () => Date;
}

export interface Member {
  id: string;
  role?: string;
}

export interface MembersAnswer {
  room: string;
  members: Member[];
}

/** One room's outcome of a broadcast: its `seq`, or why that room alone failed. */
export type RoomResult =
  | { room: string; seq: number; error?: undefined }
  | { room: string; seq?: undefined; error: { code: RelayErrorCode | (string & {}); message: string } };

export interface BroadcastOutcome {
  /** The idempotency key used (yours, or the one generated): send it again to retry safely. */
  id: string;
  /** One entry per distinct room, in the order given. */
  results: RoomResult[];
}

export interface BroadcastOptions {
  /** Idempotency key, 1..=64 characters, per room: a repeat delivers nothing again. */
  id?: string;
}

export interface Message<TData = unknown> {
  type: 'message';
  room: string;
  seq: number;
  id: string;
  event: string;
  data: TData;
  from: { id: string; name?: string; role?: string } | null;
  cid?: string;
  ts: string;
}

export interface HistoryOptions {
  /** A user token granting the room (see `signToken`). */
  token: string;
  /** Messages with `seq > after`, oldest first. */
  after?: number;
  /** Messages with `seq < before`; alone, the newest ones below it. */
  before?: number;
  /** 1..=200 (the relay's default is 50). */
  limit?: number;
}

export interface HistoryPage<TData = unknown> {
  messages: Message<TData>[];
  has_more: boolean;
}

export interface PublishOptions {
  /** A user token granting the room: the message is sent as that user. */
  token: string;
  event?: string;
  /** Idempotency key (1..=64 characters); generated when absent so that retries are safe. */
  cid?: string;
}

export interface PublishReceipt {
  seq: number;
  id: string;
  ts: string;
  duplicate: boolean;
}

export interface Ban {
  user: string;
  /** Unix seconds when the ban ends; `null`: for good. */
  until: number | null;
}

export interface BanAnswer extends Ban {
  room: string;
}

export interface UnbanAnswer {
  room: string;
  user: string;
  /** Whether there was a ban to lift. */
  lifted: boolean;
}

export interface BansAnswer {
  room: string;
  bans: Ban[];
}

export interface DisconnectAnswer {
  user: string;
  /** How many rooms were asked to close the user's sockets. */
  rooms: number;
}

export interface Stats {
  connections: number;
  rooms: number;
}

export interface RoomStats {
  rooms: { room: string; connections: number; users: number; last_seq: number }[];
}

export interface Presence {
  room: string;
  /** A page of the users online, by id. */
  users: { id: string; name?: string; role?: string }[];
  connections: number;
  /** Pass as `after` for the next page; `null` on the last one. */
  next: string | null;
}

export interface PresenceOptions {
  /** Users per page, 1 to 1 000 (the relay's default and cap: 1 000). */
  limit?: number;
  /** The page after this user id (a previous page's `next`). */
  after?: string;
}

type Credentials = { kind: 'webhook' } | { kind: 'admin' } | { kind: 'user'; token: string };

interface Call {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  body?: string;
  credentials: Credentials;
}

/** What one attempt ended with: an answer, or a failure that another attempt may fix. */
type Attempt<T> = { value: T } | { retry: RelayError };

/** Room errors worth sending again (the same id keeps it from delivering twice). */
const RETRYABLE_ROOM_CODES = new Set(['internal', 'rate_limited']);
const MAX_ID_CHARS = 64;
const RELAY_CODES: ReadonlySet<string> = new Set<RelayErrorCodeFromRelay>([
  'bad_request',
  'unauthorized',
  'forbidden',
  'not_found',
  'method_not_allowed',
  'too_large',
  'upgrade_required',
  'rate_limited',
  'internal',
]);

function invalid(message: string): RelayError {
  return new RelayError({ code: 'invalid_argument', message });
}

/** A room or user id as one path segment; `.` and `..` cannot be one (URLs resolve them away). */
function segment(what: string, value: string): string {
  if (typeof value !== 'string' || value === '' || value === '.' || value === '..') {
    throw invalid(`${what} ${typeof value === 'string' ? JSON.stringify(value) : typeof value} cannot be named in a URL path`);
  }
  return encodeURIComponent(value);
}

/** JSON text of a request body; a value JSON cannot carry (BigInt, cycles) is refused here. */
function toJson(value: unknown, what: string): string {
  try {
    return JSON.stringify(value);
  } catch {
    throw invalid(`${what} cannot be sent as JSON`);
  }
}

function checkId(what: string, id: string): void {
  if (typeof id !== 'string' || id.length === 0 || [...id].length > MAX_ID_CHARS) {
    throw invalid(`${what} must be 1..=${MAX_ID_CHARS} characters`);
  }
}

function bounded(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  const chosen = value ?? fallback;
  if (!Number.isFinite(chosen) || chosen < min || chosen > max) {
    throw invalid(`${name} must be within ${min}..=${max}`);
  }
  return chosen;
}

/** The relay's `{"error":{"code","message"}}` as a RelayError, or an `invalid_response` one. */
function errorFromAnswer(status: number, text: string, retryAfterSeconds: number | undefined): RelayError {
  let code: RelayErrorCode = 'invalid_response';
  let message = `the relay answered ${status} without its error body`;
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    const error = parsed?.error;
    if (error && typeof error.code === 'string' && RELAY_CODES.has(error.code)) {
      code = error.code as RelayErrorCodeFromRelay;
      message = typeof error.message === 'string' ? error.message : error.code;
    }
  } catch {
    // Not JSON: a proxy's page or a truncated answer; the status tells the rest.
  }
  return new RelayError({ code, message, status, ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }) });
}

function withAttempts(error: RelayError, attempts: number): RelayError {
  return new RelayError({
    code: error.code,
    message: error.message,
    status: error.status,
    attempts,
    ...(error.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: error.retryAfterSeconds }),
    ...(error.cause === undefined ? {} : { cause: error.cause }),
  });
}

export class RelayServer {
  readonly url: string;
  // Private fields: the secrets do not show in console.log, JSON.stringify or error objects.
  readonly #webhookSecret: string;
  readonly #adminSecret: string | undefined;
  readonly #auth: 'signature' | 'bearer';
  readonly #fetch: FetchLike;
  readonly #maxAttempts: number;
  readonly #backoff: { baseDelayMs: number; maxDelayMs: number };
  readonly #maxRetryAfterSeconds: number;
  readonly #timeoutMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;
  readonly #now: () => Date;
  #signingKey: Promise<CryptoKey> | undefined;

  constructor(options: RelayServerOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch {
      throw invalid('url is not a valid URL');
    }
    if (!/^https?:$/.test(parsed.protocol) || parsed.username || parsed.password) {
      throw invalid('url must be an http(s) origin without credentials');
    }
    if (parsed.pathname !== '/' || parsed.search || parsed.hash) {
      throw invalid('url must be the relay origin, without a path or query');
    }
    if (typeof options.webhookSecret !== 'string' || options.webhookSecret === '') {
      throw invalid('webhookSecret is required');
    }
    this.url = parsed.origin;
    this.#webhookSecret = options.webhookSecret;
    this.#adminSecret = options.adminSecret;
    this.#auth = options.auth ?? 'signature';
    const fetchImpl = options.fetch ?? (globalThis.fetch as unknown as FetchLike | undefined);
    if (typeof fetchImpl !== 'function') throw invalid('no fetch in this runtime: pass options.fetch');
    // Called unbound: some runtimes refuse a fetch called as a method of another object.
    this.#fetch = (url, init) => fetchImpl(url, init);
    this.#maxAttempts = bounded('maxAttempts', options.maxAttempts, 4, 1, 10);
    this.#backoff = {
      baseDelayMs: bounded('baseDelayMs', options.baseDelayMs, 250, 0, 60_000),
      maxDelayMs: bounded('maxDelayMs', options.maxDelayMs, 5_000, 0, 300_000),
    };
    this.#maxRetryAfterSeconds = bounded('maxRetryAfterSeconds', options.maxRetryAfterSeconds, 30, 0, 300);
    this.#timeoutMs = bounded('timeoutMs', options.timeoutMs, 10_000, 1, 300_000);
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? (() => new Date());
  }

  /**
   * Stores `event` with `data` in each room (1..=100) and delivers it to the room's sockets.
   * Idempotent by `id` (generated when absent): HTTP failures worth retrying (429, 5xx,
   * network, timeout) are retried, and so are rooms that alone failed with `internal` or
   * `rate_limited`, without delivering twice. Throws when the relay refused the request
   * (credentials, body) or never answered; a room that still fails after the last attempt
   * is reported in its result.
   */
  async broadcast(rooms: string | readonly string[], event: string, data: unknown, options: BroadcastOptions = {}): Promise<BroadcastOutcome> {
    const list = typeof rooms === 'string' ? [rooms] : rooms;
    if (!Array.isArray(list) || list.length === 0 || list.some((room) => typeof room !== 'string')) {
      throw invalid('rooms must name at least one room');
    }
    if (typeof event !== 'string' || event === '') throw invalid('event is required');
    if (data === undefined) throw invalid('data is required (null is a value)');
    const id = options.id ?? globalThis.crypto.randomUUID();
    checkId('id', id);
    const distinct = [...new Set(list)];
    const results = new Map<string, RoomResult>();
    let pending = distinct;
    toJson(data, 'data'); // refused before the first request, not inside the retries
    const ordered = () => distinct.map((room) => results.get(room)!);
    try {
      await this.#withRetries(async (attempts) => {
        const answer = await this.#attempt<{ results?: unknown }>(attempts, {
          method: 'POST',
          path: '/v1/broadcast',
          body: toJson({ rooms: pending, event, data, id }, 'data'),
          credentials: { kind: 'webhook' },
        });
        if ('retry' in answer) return answer;
        const listed = answer.value.results;
        if (!Array.isArray(listed)) throw this.#invalidResponse('broadcast answer without results');
        for (const result of listed as RoomResult[]) {
          if (typeof result?.room === 'string') results.set(result.room, result);
        }
        const unanswered = pending.filter((room) => !results.has(room));
        if (unanswered.length > 0) throw this.#invalidResponse('broadcast answer without every room');
        pending = pending.filter((room) => {
          const error = results.get(room)?.error;
          return error !== undefined && RETRYABLE_ROOM_CODES.has(error.code);
        });
        if (pending.length === 0) return { value: undefined };
        const first = results.get(pending[0]!)!.error!;
        return { retry: new RelayError({ code: first.code as RelayErrorCode, message: first.message, status: 200 }) };
      });
    } catch (error) {
      // Rooms answered in an earlier round keep their results; only a call where no room
      // was answered at all is a failure of the whole broadcast.
      if (results.size === 0 || !RelayError.is(error)) throw error;
      // A room with a result keeps it (its seq, or its earlier error); the others get this error.
      for (const room of pending) {
        if (!results.has(room)) {
          results.set(room, { room, error: { code: error.code, message: error.message } });
        }
      }
      return { id, results: ordered() };
    }
    return { id, results: ordered() };
  }

  /** Replaces the room's members (at most 1 000); see the relay's members and update feeds. */
  async setMembers(room: string, members: readonly Member[]): Promise<MembersAnswer> {
    if (!Array.isArray(members)) throw invalid('members must be a list of {id, role?}');
    return this.#call({
      method: 'PUT',
      path: `/v1/rooms/${segment('room', room)}/members`,
      body: toJson(members, 'members'),
      credentials: { kind: 'webhook' },
    });
  }

  async getMembers(room: string): Promise<MembersAnswer> {
    return this.#call({ method: 'GET', path: `/v1/rooms/${segment('room', room)}/members`, credentials: { kind: 'webhook' } });
  }

  /**
   * Closes every socket of `user` in every room with 4003 and `reason` (at most 123 bytes;
   * `disconnected` by default). Takes a little over a second: the relay asks twice.
   */
  async disconnectUser(user: string, reason?: string): Promise<DisconnectAnswer> {
    return this.#call({
      method: 'POST',
      path: `/v1/users/${segment('user', user)}/disconnect`,
      body: toJson(reason === undefined ? {} : { reason }, 'reason'),
      credentials: { kind: 'webhook' },
    });
  }

  /**
   * Bans `user` from `room`, for good or `until` a time (a `Date` or unix seconds, in the
   * future and within ten years): their sockets there close with 4003 `banned`, and they are
   * refused there until the ban ends or is lifted.
   */
  async ban(room: string, user: string, options: { until?: Date | number } = {}): Promise<BanAnswer> {
    const until = options.until instanceof Date ? Math.floor(options.until.getTime() / 1000) : options.until;
    if (until !== undefined && !Number.isSafeInteger(until)) throw invalid('until must be a Date or whole unix seconds');
    return this.#call({
      method: 'PUT',
      path: `/v1/rooms/${segment('room', room)}/bans/${segment('user', user)}`,
      body: toJson(until === undefined ? {} : { until }, 'until'),
      credentials: { kind: 'webhook' },
    });
  }

  /** Lifts `user`'s ban in `room` (idempotent: `lifted` is false when there was none). */
  async unban(room: string, user: string): Promise<UnbanAnswer> {
    return this.#call({
      method: 'DELETE',
      path: `/v1/rooms/${segment('room', room)}/bans/${segment('user', user)}`,
      credentials: { kind: 'webhook' },
    });
  }

  /** The bans of `room` that hold now, by user id. */
  async bans(room: string): Promise<BansAnswer> {
    return this.#call({ method: 'GET', path: `/v1/rooms/${segment('room', room)}/bans`, credentials: { kind: 'webhook' } });
  }

  /** Connection and room totals (admin secret). */
  async stats(): Promise<Stats> {
    return this.#call({ method: 'GET', path: '/v1/stats', credentials: { kind: 'admin' } });
  }

  /** The rooms with connections, busiest first (admin secret). */
  async roomStats(): Promise<RoomStats> {
    return this.#call({ method: 'GET', path: '/v1/stats/rooms', credentials: { kind: 'admin' } });
  }

  /** A page of who is online in a room, by user id (admin secret); follow `next` for the rest. */
  async presence(room: string, options: PresenceOptions = {}): Promise<Presence> {
    const query = new URLSearchParams();
    if (options.limit !== undefined) {
      if (!Number.isSafeInteger(options.limit) || options.limit < 1 || options.limit > 1000) {
        throw invalid('limit must be an integer from 1 to 1000');
      }
      query.set('limit', String(options.limit));
    }
    if (options.after !== undefined) query.set('after', options.after);
    const search = query.toString() === '' ? '' : `?${query}`;
    return this.#call({ method: 'GET', path: `/v1/rooms/${segment('room', room)}/presence${search}`, credentials: { kind: 'admin' } });
  }

  /** A page of the room's history, read with a user token that grants the room. */
  async history<TData = unknown>(room: string, options: HistoryOptions): Promise<HistoryPage<TData>> {
    const query = new URLSearchParams();
    for (const name of ['after', 'before', 'limit'] as const) {
      const value = options[name];
      if (value === undefined) continue;
      if (!Number.isSafeInteger(value) || value < 0) throw invalid(`${name} must be a non-negative integer`);
      query.set(name, String(value));
    }
    const search = query.toString() === '' ? '' : `?${query}`;
    return this.#call({
      method: 'GET',
      path: `/v1/rooms/${segment('room', room)}/messages${search}`,
      credentials: { kind: 'user', token: options.token },
    });
  }

  /** Publishes as the token's user; idempotent by `cid` (generated when absent). */
  async publish(room: string, data: unknown, options: PublishOptions): Promise<PublishReceipt> {
    if (data === undefined) throw invalid('data is required (null is a value)');
    const cid = options.cid ?? globalThis.crypto.randomUUID();
    checkId('cid', cid);
    const body: Record<string, unknown> = { cid, data };
    if (options.event !== undefined) body['event'] = options.event;
    return this.#call({
      method: 'POST',
      path: `/v1/rooms/${segment('room', room)}/messages`,
      body: toJson(body, 'data'),
      credentials: { kind: 'user', token: options.token },
    });
  }

  #call<T>(call: Call): Promise<T> {
    return this.#withRetries((attempts) => this.#attempt<T>(attempts, call));
  }

  /**
   * Runs `attempt` until it gives a value, at most `maxAttempts` times, waiting the backoff
   * (or a longer Retry-After, up to its bound) between attempts.
   */
  async #withRetries<T>(attempt: (attempts: number) => Promise<Attempt<T>>): Promise<T> {
    for (let attempts = 1; ; attempts++) {
      const outcome = await attempt(attempts);
      if ('value' in outcome) return outcome.value;
      const error = outcome.retry;
      const retryAfter = error.retryAfterSeconds;
      if (attempts >= this.#maxAttempts || (retryAfter !== undefined && retryAfter > this.#maxRetryAfterSeconds)) {
        throw withAttempts(error, attempts);
      }
      const backoff = backoffDelayMs(attempts, this.#backoff, this.#random);
      await this.#sleep(Math.max(backoff, (retryAfter ?? 0) * 1000));
    }
  }

  /** Request number `attempts`: its parsed answer, a retryable failure, or a thrown final one. */
  async #attempt<T>(attempts: number, call: Call): Promise<Attempt<T>> {
    const url = new URL(call.path, this.url);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (call.body !== undefined) headers['content-type'] = 'application/json';
    const credentials = call.credentials;
    if (credentials.kind === 'webhook') {
      if (this.#auth === 'bearer') {
        headers['authorization'] = `Bearer ${this.#webhookSecret}`;
      } else {
        // Signed afresh for every attempt: the timestamp must be within the relay's 5 minutes.
        this.#signingKey ??= importHmacKey(this.#webhookSecret, 'webhookSecret');
        headers[SIGNATURE_HEADER] = await signWithKey(
          await this.#signingKey,
          call.method,
          url.pathname,
          call.body,
          unixSeconds(this.#now()),
        );
      }
    } else if (credentials.kind === 'admin') {
      if (!this.#adminSecret) throw invalid('this call needs options.adminSecret');
      headers['authorization'] = `Bearer ${this.#adminSecret}`;
    } else {
      if (typeof credentials.token !== 'string' || credentials.token === '') throw invalid('token is required');
      headers['authorization'] = `Bearer ${credentials.token}`;
    }
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.#timeoutMs);
    const where = `${call.method} ${url.pathname}`;
    let status: number;
    let text: string;
    let retryAfter: string | null;
    try {
      const init: RequestInitLike = { method: call.method, headers, signal: controller.signal };
      if (call.body !== undefined) init.body = call.body;
      const response = await this.#fetch(url.href, init);
      status = response.status;
      retryAfter = response.headers.get('retry-after');
      text = await response.text();
    } catch (cause) {
      const timedOut = controller.signal.aborted;
      return {
        retry: new RelayError({
          code: timedOut ? 'timeout' : 'network_error',
          message: timedOut ? `${where}: no answer within ${this.#timeoutMs} ms` : `${where}: the request failed before an answer`,
          cause,
        }),
      };
    } finally {
      clearTimeout(timer);
    }
    if (status >= 200 && status <= 299) {
      try {
        return { value: JSON.parse(text) as T };
      } catch {
        throw new RelayError({ code: 'invalid_response', message: `${where}: the answer is not JSON`, status, attempts });
      }
    }
    const error = errorFromAnswer(status, text, parseRetryAfter(retryAfter, this.#now().getTime()));
    if (isRetryableStatus(status)) return { retry: error };
    throw withAttempts(error, attempts);
  }

  #invalidResponse(message: string): RelayError {
    return new RelayError({ code: 'invalid_response', message, status: 200 });
  }
}
