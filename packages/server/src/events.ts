// Receiving the relay's outgoing events (`EVENTS_URL`): the signed delivery checked against its
// raw body (`X-Relay-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">` under
// EVENTS_SECRET), then parsed into typed events. A delivery that does not verify is refused
// before its body is parsed.

import { RelayError } from './errors.js';
import { hmacMatches, importHmacKey, type Secret } from './hmac.js';
import type { Message } from './server.js';
import { bodyBytes, SIGNATURE_HEADER, SIGNATURE_TOLERANCE_SECONDS, v1Message } from './signature.js';
import { parseSignatureHeader } from './signature_header.js';
import { unixSeconds } from './token.js';

/** A delivery is at most 100 events and 120 000 bytes of them; this leaves room and bounds a forged one. */
export const MAX_EVENTS_BODY_BYTES = 1_048_576;

/** Who an event is about: the user as their token named them. */
export interface EventUser {
  id: string;
  name?: string;
  role?: string;
}

interface EventBase {
  /** Stable across deliveries: deduplicate on it (delivery is at least once). */
  id: string;
  room: string;
  /** When it happened (RFC 3339, UTC, milliseconds). */
  ts: string;
}

/** A new message: a user's publish, or a backend's broadcast (`user` is `null` then). */
export interface MessageCreatedEvent<TData = unknown> extends EventBase {
  type: 'message.created';
  seq: number;
  user: EventUser | null;
  /** The message as clients and history see it; absent when it was larger than 100 000 bytes. */
  message?: Message<TData>;
  /** Set when `message` was left out for its size: read it from the history by `seq`. */
  message_omitted?: true;
}

/** A message changed: its record at a new `seq`, naming the message changed by `ref_seq`. */
interface MessageChangeEvent<TData> extends EventBase {
  seq: number;
  /** The seq of the message edited or deleted. */
  ref_seq: number;
  /** Who changed it: the author or a moderator. */
  user: EventUser;
  /** The record as clients see it (an edit's carries the new `data`); absent when over 100 000 bytes. */
  message?: Message<TData>;
  message_omitted?: true;
}

/** A message was edited; `message.data` is its new data. */
export interface MessageEditedEvent<TData = unknown> extends MessageChangeEvent<TData> {
  type: 'message.edited';
}

/** A message was deleted. */
export interface MessageDeletedEvent<TData = unknown> extends MessageChangeEvent<TData> {
  type: 'message.deleted';
}

/**
 * A member offline in the room left others' messages unread for `UNREAD_NOTIFY_AFTER_S`: once
 * per streak, the moment to send a push notification.
 */
export interface MessageUnreadEvent<TData = unknown> extends EventBase {
  type: 'message.unread';
  /** The oldest message the member left unread. */
  seq: number;
  /** How many messages the member has left unread from `seq` on. */
  unread: number;
  /** The member, with their `role` on the members list. */
  user: EventUser;
  /** The newest message left unread; absent when too large or no longer kept by the room. */
  message?: Message<TData>;
  message_omitted?: true;
}

/** The user's first connection in the room. */
export interface PresenceJoinedEvent extends EventBase {
  type: 'presence.joined';
  user: EventUser;
}

/** The user's last connection in the room closed (after the leave grace). */
export interface PresenceLeftEvent extends EventBase {
  type: 'presence.left';
  user: EventUser;
  last_seen: string;
}

/** The user's read marker moved forward to `seq`. */
export interface ReadUpdatedEvent extends EventBase {
  type: 'read.updated';
  seq: number;
  user: EventUser;
}

/**
 * One outgoing event. A newer relay may send types this version does not list; they are
 * returned as they came, so keep a `default` branch when switching on `type`.
 */
export type RelayEvent<TData = unknown> =
  | MessageCreatedEvent<TData>
  | MessageEditedEvent<TData>
  | MessageDeletedEvent<TData>
  | MessageUnreadEvent<TData>
  | PresenceJoinedEvent
  | PresenceLeftEvent
  | ReadUpdatedEvent;

export type RelayEventType = RelayEvent['type'];

/** A delivery's raw body and its `X-Relay-Signature` header, e.g. from Node's `http`. */
export interface SignedDelivery {
  /** The body exactly as received: the bytes, or their UTF-8 text. */
  body: string | Uint8Array;
  /**
   * The `X-Relay-Signature` header; `null`/`undefined` when it is missing. A list (as Node's
   * header types allow) is read as its elements joined by commas.
   */
  signature: string | readonly string[] | null | undefined;
}

/** What `verifyEvents` reads of a fetch `Request` (Workers, Deno, Bun, Node's global fetch). */
export interface RequestLike {
  headers: { get(name: string): string | null };
  body?: ReadableStream<Uint8Array> | null;
  arrayBuffer(): Promise<ArrayBuffer>;
}

export interface VerifyEventsOptions {
  /** How far (seconds) the delivery's timestamp may be from this clock; 300 by default. */
  toleranceSeconds?: number;
  /** Bytes of body read at most (a `Request`'s body is read only up to it); 1 MiB by default. */
  maxBodyBytes?: number;
  now?: Date;
}

function refused(message: string): RelayError {
  return new RelayError({ code: 'unauthorized', status: 401, message });
}

function malformed(message: string): RelayError {
  return new RelayError({ code: 'bad_request', status: 400, message });
}

function tooLarge(limit: number): RelayError {
  return new RelayError({ code: 'too_large', status: 413, message: `the body is larger than ${limit} bytes` });
}

function isRequestLike(input: SignedDelivery | RequestLike): input is RequestLike {
  return typeof (input as RequestLike).headers?.get === 'function';
}

/** A request's body, read chunk by chunk and given up past `limit` bytes. */
async function readBounded(request: RequestLike, limit: number): Promise<Uint8Array<ArrayBuffer>> {
  const declared = Number(request.headers.get('content-length') ?? '0');
  if (declared > limit) throw tooLarge(limit);
  const stream = request.body;
  if (!stream) {
    const whole = new Uint8Array(await request.arrayBuffer());
    if (whole.length > limit) throw tooLarge(limit);
    return whole;
  }
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    length += value.length;
    if (length > limit) {
      await reader.cancel();
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  const body = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.length;
  }
  return body;
}

function isEvent(value: unknown): value is RelayEvent {
  if (typeof value !== 'object' || value === null) return false;
  const event = value as Record<string, unknown>;
  return ['id', 'type', 'room', 'ts'].every((field) => typeof event[field] === 'string');
}

/**
 * Checks a delivery of outgoing events and returns its events, in the room's order. Give it
 * the fetch `Request` (its body is read here) or `{ body, signature }` with the raw body and
 * the `X-Relay-Signature` header. `secret` is the relay's `EVENTS_SECRET`.
 *
 * Throws a `RelayError` with the HTTP status to answer: `unauthorized` (401) when the header
 * is missing, malformed, signed with another secret or over another body, or its timestamp is
 * more than `toleranceSeconds` from this clock; `too_large` (413) past `maxBodyBytes`;
 * `bad_request` (400) when a correctly signed body is not `{"events":[…]}`. MACs are compared
 * in constant time (WebCrypto `verify`); several `v1=` elements may be given (secret rotation).
 */
export async function verifyEvents<TData = unknown>(
  delivery: SignedDelivery | RequestLike,
  secret: Secret,
  options: VerifyEventsOptions = {},
): Promise<RelayEvent<TData>[]> {
  const tolerance = options.toleranceSeconds ?? SIGNATURE_TOLERANCE_SECONDS;
  const limit = options.maxBodyBytes ?? MAX_EVENTS_BODY_BYTES;
  if (!(tolerance >= 0) || !(limit > 0)) {
    throw new RelayError({ code: 'invalid_argument', message: 'toleranceSeconds must be >= 0 and maxBodyBytes > 0' });
  }
  const key = await importHmacKey(secret, 'secret');
  const given = isRequestLike(delivery) ? delivery.headers.get(SIGNATURE_HEADER) : delivery.signature;
  const header = typeof given === 'string' || given == null ? given : given.join(',');
  if (typeof header !== 'string' || header === '') throw refused(`the ${SIGNATURE_HEADER} header is missing`);
  const signature = parseSignatureHeader(header);
  if (signature === null || signature.v1.length === 0) throw refused(`the ${SIGNATURE_HEADER} header is malformed`);
  if (Math.abs(unixSeconds(options.now) - signature.timestamp) > tolerance) {
    throw refused(`the signature's timestamp is more than ${tolerance} s from this clock`);
  }
  const body = isRequestLike(delivery) ? await readBounded(delivery, limit) : bodyBytes(delivery.body);
  if (body.length > limit) throw tooLarge(limit);
  const message = v1Message(signature.timestamp, body);
  let valid = false;
  for (const mac of signature.v1) {
    if (await hmacMatches(key, mac, message)) {
      valid = true;
      break;
    }
  }
  if (!valid) throw refused('the signature does not match the body');

  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw malformed('the body is not JSON');
  }
  const events = (parsed as { events?: unknown } | null)?.events;
  if (!Array.isArray(events) || !events.every(isEvent)) {
    throw malformed('the body is not {"events":[…]} with an id, type, room and ts in each event');
  }
  return events as RelayEvent<TData>[];
}
