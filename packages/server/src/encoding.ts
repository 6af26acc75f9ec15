// Byte encodings the tokens and signatures need: UTF-8, base64url and hex.
// Written by hand because the portable alternatives are awkward: `Buffer` is Node-only, and
// `btoa` takes a "binary string" (one char per byte) and gives padded standard base64 that
// would need two more rewrites. These are a few lines each and identical on every runtime.

const encoder = new TextEncoder();
/** Replaces invalid UTF-8 with U+FFFD, as the relay's lossy decoding does. */
const lossyDecoder = new TextDecoder('utf-8', { fatal: false });

export function utf8(text: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(text) as Uint8Array<ArrayBuffer>;
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Unpadded base64url (RFC 4648 section 5), as JWTs use it. */
export function base64url(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += BASE64URL[n >> 18]! + BASE64URL[(n >> 12) & 63]! + BASE64URL[(n >> 6) & 63]! + BASE64URL[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += BASE64URL[n >> 18]! + BASE64URL[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += BASE64URL[n >> 18]! + BASE64URL[(n >> 12) & 63]! + BASE64URL[(n >> 6) & 63]!;
  }
  return out;
}

export function hex(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0');
  return out;
}

/** Strict hex: exactly two digits per byte (either case), nothing else; `null` otherwise. */
export function fromHex(text: string): Uint8Array<ArrayBuffer> | null {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) return null;
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/**
 * Percent-decodes `%XX` escapes into bytes and reads them as UTF-8, replacing invalid
 * sequences; malformed escapes stay as they are. This is how the relay decodes a signed path
 * (`percent_decode_str(..).decode_utf8_lossy()`), unlike `decodeURIComponent`, which throws.
 */
export function percentDecodeLossy(text: string): string {
  if (!text.includes('%')) return text;
  const source = utf8(text);
  const bytes: number[] = [];
  for (let i = 0; i < source.length; i++) {
    const byte = source[i]!;
    if (byte === 0x25 && i + 2 < source.length) {
      const pair = String.fromCharCode(source[i + 1]!, source[i + 2]!);
      if (/^[0-9a-fA-F]{2}$/.test(pair)) {
        bytes.push(parseInt(pair, 16));
        i += 2;
        continue;
      }
    }
    bytes.push(byte);
  }
  return lossyDecoder.decode(new Uint8Array(bytes));
}
