// Backend request signatures, the relay's `X-Relay-Signature: t=<unix seconds>,v2=<hex>`: the
// HMAC-SHA256 under WEBHOOK_SECRET of "<t>.<METHOD>.<path>.<raw body>". `v2` binds the method
// and path, so the relay takes it on every backend route (broadcast, members, disconnect);
// the older `v1` ("<t>.<body>") only where the body names the rooms, so this SDK signs `v2`.

import { hex, percentDecodeLossy, utf8 } from './encoding.js';
import { RelayError } from './errors.js';
import { hmacMatches, hmacSha256, importHmacKey, type Secret } from './hmac.js';
import { parseSignatureHeader } from './signature_header.js';
import { unixSeconds } from './token.js';

export const SIGNATURE_HEADER = 'X-Relay-Signature';
/** How far (seconds) a signature's timestamp may be from the verifier's clock, as in the relay. */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

export type Body = string | Uint8Array | undefined;

export interface SignRequestOptions {
  /** The relay's `WEBHOOK_SECRET`. */
  secret: Secret;
  /** The HTTP method; signed in capitals, as it goes on the wire. */
  method: string;
  /** The URL path exactly as sent (percent-encoded), e.g. `/v1/rooms/chat%3A1/members`; a query is not signed. */
  path: string;
  /** The raw body as sent; nothing (or empty) for a GET. */
  body?: Body;
  now?: Date;
}

export function bodyBytes(body: Body): Uint8Array<ArrayBuffer> {
  if (body === undefined) return new Uint8Array(0);
  return typeof body === 'string' ? utf8(body) : new Uint8Array(body);
}

/** The path without `?query` or `#fragment`, which the relay does not sign. */
function pathOnly(path: string): string {
  const end = path.search(/[?#]/);
  return end === -1 ? path : path.slice(0, end);
}

/** "<t>.<METHOD>.<path>.<body>" as bytes: the one definition of what a `v2` MAC covers. */
function v2Message(timestamp: number, method: string, path: string, body: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const head = utf8(`${timestamp}.${method}.${path}.`);
  const message = new Uint8Array(head.length + body.length);
  message.set(head);
  message.set(body, head.length);
  return message;
}

export function v1Message(timestamp: number, body: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const head = utf8(`${timestamp}.`);
  const message = new Uint8Array(head.length + body.length);
  message.set(head);
  message.set(body, head.length);
  return message;
}

/** Signs with an already imported key (the client imports its secret once). */
export async function signWithKey(
  key: CryptoKey,
  method: string,
  path: string,
  body: Body,
  timestamp: number,
): Promise<string> {
  const mac = await hmacSha256(key, v2Message(timestamp, method.toUpperCase(), pathOnly(path), bodyBytes(body)));
  return `t=${timestamp},v2=${hex(mac)}`;
}

/** The `X-Relay-Signature` value for one request: `t=<unix seconds>,v2=<hex>`. */
export async function signRequest(options: SignRequestOptions): Promise<string> {
  const key = await importHmacKey(options.secret, 'secret');
  return signWithKey(key, options.method, options.path, options.body, unixSeconds(options.now));
}

export interface VerifySignatureOptions {
  secret: Secret;
  /** The `X-Relay-Signature` header as received; a missing header is simply not valid. */
  header: string | null | undefined;
  method: string;
  /** The URL path as received (percent-encoded); a signature of its decoded form counts too. */
  path: string;
  body?: Body;
  now?: Date;
  /** Seconds; 300 by default, as the relay. */
  toleranceSeconds?: number;
  /**
   * Accept `v1` (body-only) signatures as well. Off by default: a `v1` signature does not
   * bind the method or path, so it is safe only where the body names everything the request
   * touches, which is why the relay takes it only on broadcasts.
   */
  acceptV1?: boolean;
}

/**
 * Whether `header` signs this request under `secret`, within the tolerance, by the relay's
 * rules: several `v1=`/`v2=` elements may be given (secret rotation) and any one matching is
 * enough; hex is exactly two digits per byte; MACs are compared in constant time.
 */
export async function verifySignature(options: VerifySignatureOptions): Promise<boolean> {
  if (typeof options.header !== 'string') return false;
  const parsed = parseSignatureHeader(options.header);
  if (parsed === null) return false;
  const { timestamp, v1, v2 } = parsed;
  const tolerance = options.toleranceSeconds ?? SIGNATURE_TOLERANCE_SECONDS;
  if (!(tolerance >= 0)) {
    throw new RelayError({ code: 'invalid_argument', message: 'toleranceSeconds must be >= 0' });
  }
  if (Math.abs(unixSeconds(options.now) - timestamp) > tolerance) return false;
  const key = await importHmacKey(options.secret, 'secret');
  const body = bodyBytes(options.body);
  const method = options.method.toUpperCase();
  const sent = pathOnly(options.path);
  const decoded = percentDecodeLossy(sent);
  const paths = decoded === sent ? [sent] : [sent, decoded];
  for (const mac of v2) {
    for (const path of paths) {
      if (await hmacMatches(key, mac, v2Message(timestamp, method, path, body))) return true;
    }
  }
  if (options.acceptV1) {
    for (const mac of v1) {
      if (await hmacMatches(key, mac, v1Message(timestamp, body))) return true;
    }
  }
  return false;
}
