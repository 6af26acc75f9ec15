// HMAC-SHA256 through WebCrypto (globalThis.crypto.subtle), the one primitive both the tokens
// and the request signatures use; available in Node >= 18, Deno, Bun and Workers alike.

import { RelayError } from './errors.js';
import { utf8 } from './encoding.js';

/** A secret as text (used as its UTF-8 bytes, as the relay reads its env vars) or as bytes. */
export type Secret = string | Uint8Array;

export function secretBytes(secret: Secret, what: string): Uint8Array<ArrayBuffer> {
  const bytes = typeof secret === 'string' ? utf8(secret) : new Uint8Array(secret);
  if (bytes.length === 0) {
    // The relay refuses an empty secret too, and WebCrypto cannot import one.
    throw new RelayError({ code: 'invalid_argument', message: `${what} is empty` });
  }
  return bytes;
}

/** WebCrypto's SubtleCrypto, or an `invalid_argument` error in a runtime without it. */
export function subtle(): SubtleCrypto {
  const crypto = globalThis.crypto;
  if (!crypto?.subtle) {
    throw new RelayError({
      code: 'invalid_argument',
      message: 'WebCrypto (globalThis.crypto.subtle) is not available in this runtime',
    });
  }
  return crypto.subtle;
}

export function importHmacKey(secret: Secret, what: string): Promise<CryptoKey> {
  return subtle().importKey('raw', secretBytes(secret, what), { name: 'HMAC', hash: 'SHA-256' }, false, [
    'sign',
    'verify',
  ]);
}

export async function hmacSha256(key: CryptoKey, data: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await subtle().sign('HMAC', key, data));
}

/**
 * Whether `mac` is the HMAC of `data`. WebCrypto's verify compares in constant time, so the
 * time taken does not tell an attacker how many leading bytes of a forged MAC were right.
 */
export function hmacMatches(key: CryptoKey, mac: Uint8Array<ArrayBuffer>, data: Uint8Array<ArrayBuffer>): Promise<boolean> {
  return subtle().verify('HMAC', key, mac, data);
}
