// User tokens: JWTs with the claims the relay reads (sub, name, role, rooms, iat, exp, and
// iss/aud for relays that check them), HS256 with the relay's JWT_SECRET, or RS256, ES256 or
// EdDSA with a private key whose public half is in the relay's JWT_PUBLIC_KEYS or JWT_JWKS_URL.

import { base64url, utf8 } from './encoding.js';
import { RelayError } from './errors.js';
import { hmacSha256, importHmacKey, type Secret } from './hmac.js';
import { readySigningKey, type PrivateKey } from './signing_key.js';

/** The relay's limits: `sub` (and `name`/`role`, else dropped) 1..=256 bytes, 256 grants, 8 KiB. */
const MAX_CLAIM_BYTES = 256;
const MAX_GRANTS = 256;
const MAX_TOKEN_BYTES = 8 * 1024;

/** The claims of a user token, whatever signs it. */
export interface TokenClaims {
  /** The user id, 1..=256 bytes; the token always grants the user's feed `user:<sub>` too. */
  sub: string;
  /** Shown to other users of a room. */
  name?: string;
  role?: string;
  /** Room grants: exact names, prefixes ending in `*` (`chat:*`), or `*` for every room. */
  rooms: readonly string[];
  /** Lifetime in seconds (a positive integer). Keep it short: the relay closes sockets at `exp`. */
  ttlSeconds: number;
  /** `iss`, for relays configured with `JWT_ISSUER`. */
  issuer?: string;
  /** `aud`, for relays configured with `JWT_AUDIENCE`. */
  audience?: string | readonly string[];
  /** The issue time; the current time by default. */
  now?: Date;
}

/** An HS256 token, signed with the relay's `JWT_SECRET`. */
export interface SignTokenWithSecret extends TokenClaims {
  /** The relay's `JWT_SECRET`. */
  secret: Secret;
  privateKey?: never;
  kid?: never;
}

/**
 * An RS256, ES256 or EdDSA token (the algorithm follows from the key: RSA 2048 to 4096 bits,
 * EC P-256 or Ed25519), for a relay whose `JWT_PUBLIC_KEYS` or `JWT_JWKS_URL` holds the public key.
 */
export interface SignTokenWithKey extends TokenClaims {
  /** A private `CryptoKey` with the `sign` usage, or a private JWK. */
  privateKey: PrivateKey;
  /**
   * The `kid` of the public key in the relay's key set; a JWK's own `kid` by default. The relay
   * needs it unless its set has a single key.
   */
  kid?: string;
  secret?: never;
}

export type SignTokenOptions = SignTokenWithSecret | SignTokenWithKey;

function invalid(message: string): RelayError {
  return new RelayError({ code: 'invalid_argument', message });
}

function checkClaimText(name: string, value: string | undefined, required: boolean): void {
  if (value === undefined) {
    if (required) throw invalid(`${name} is required`);
    return;
  }
  const bytes = utf8(value).length;
  if ((required && bytes === 0) || bytes > MAX_CLAIM_BYTES) {
    throw invalid(`${name} must be ${required ? '1' : '0'}..=${MAX_CLAIM_BYTES} bytes`);
  }
}

/** Unix seconds of `now` (or of the current time). */
export function unixSeconds(now: Date | undefined): number {
  const ms = now === undefined ? Date.now() : now.getTime();
  if (!Number.isFinite(ms)) throw invalid('now is not a valid date');
  return Math.floor(ms / 1000);
}

/**
 * Signs a JWT that the relay accepts for `sub` with the given room grants: HS256 with `secret`,
 * or RS256/ES256/EdDSA with `privateKey` (and its `kid`).
 */
export async function signToken(options: SignTokenOptions): Promise<string> {
  checkClaimText('sub', options.sub, true);
  checkClaimText('name', options.name, false);
  checkClaimText('role', options.role, false);
  if (!Array.isArray(options.rooms) || options.rooms.some((room) => typeof room !== 'string')) {
    throw invalid('rooms must be a list of room names or patterns');
  }
  if (options.rooms.length > MAX_GRANTS) throw invalid(`rooms may list at most ${MAX_GRANTS} grants`);
  const ttl = options.ttlSeconds;
  if (!Number.isSafeInteger(ttl) || ttl <= 0) throw invalid('ttlSeconds must be a positive integer');
  const iat = unixSeconds(options.now);
  const claims: Record<string, unknown> = { sub: options.sub };
  if (options.name !== undefined) claims['name'] = options.name;
  if (options.role !== undefined) claims['role'] = options.role;
  claims['rooms'] = [...options.rooms];
  if (options.issuer !== undefined) claims['iss'] = options.issuer;
  if (options.audience !== undefined) {
    claims['aud'] = typeof options.audience === 'string' ? options.audience : [...options.audience];
  }
  claims['iat'] = iat;
  claims['exp'] = iat + ttl;
  const payload = base64url(utf8(JSON.stringify(claims)));
  let token: string;
  if (options.privateKey !== undefined) {
    if (options.secret !== undefined) throw invalid('give either secret or privateKey, not both');
    const key = await readySigningKey(options.privateKey, options.kid);
    const header = key.kid === undefined ? { alg: key.alg, typ: 'JWT' } : { alg: key.alg, typ: 'JWT', kid: key.kid };
    const signingInput = base64url(utf8(JSON.stringify(header))) + '.' + payload;
    token = signingInput + '.' + base64url(await key.sign(utf8(signingInput)));
  } else {
    const signingInput = base64url(utf8(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))) + '.' + payload;
    const key = await importHmacKey(options.secret, 'secret');
    token = signingInput + '.' + base64url(await hmacSha256(key, utf8(signingInput)));
  }
  if (token.length > MAX_TOKEN_BYTES) throw invalid(`the token is over ${MAX_TOKEN_BYTES} bytes (too many or too long grants)`);
  return token;
}
