// The `X-Relay-Signature` header read by the relay's rules, shared by request signatures (v2)
// and outgoing events (v1): `t=<unix seconds>` and any number of `v1=`/`v2=` MACs in hex.

import { fromHex } from './encoding.js';

/** The relay reads at most this many comma-separated elements, and MACs of at most 32 bytes. */
const MAX_ELEMENTS = 8;
const MAX_MAC_HEX = 64;

export interface SignatureHeader {
  timestamp: number;
  v1: Uint8Array<ArrayBuffer>[];
  v2: Uint8Array<ArrayBuffer>[];
}

/**
 * The header's timestamp and MACs, or `null` when it has no usable timestamp or any MAC is not
 * hex of two digits per byte (the relay refuses the whole header then). Several MACs of one
 * version may be given (secret rotation): any one matching is enough.
 */
export function parseSignatureHeader(header: string): SignatureHeader | null {
  let timestamp: number | undefined;
  const v1: Uint8Array<ArrayBuffer>[] = [];
  const v2: Uint8Array<ArrayBuffer>[] = [];
  for (const part of header.split(',').slice(0, MAX_ELEMENTS)) {
    const element = part.trim();
    const at = element.indexOf('=');
    if (at === -1) continue;
    const name = element.slice(0, at);
    const value = element.slice(at + 1);
    if (name === 't') {
      timestamp = /^[+-]?\d{1,19}$/.test(value) ? Number(value) : undefined;
    } else if (name === 'v1' || name === 'v2') {
      const mac = value.length <= MAX_MAC_HEX ? fromHex(value) : null;
      if (mac === null) return null;
      (name === 'v1' ? v1 : v2).push(mac);
    }
  }
  if (timestamp === undefined || !Number.isSafeInteger(timestamp)) return null;
  return { timestamp, v1, v2 };
}
