// When and how long to wait before retrying a request: which failures are worth another
// attempt, bounded exponential backoff with jitter, and the relay's Retry-After.

/** 429 and every 5xx may succeed later; other statuses will answer the same again. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599);
}

export interface Backoff {
  /** The first retry waits between half of this and this, in milliseconds. */
  baseDelayMs: number;
  /** No computed wait exceeds this. */
  maxDelayMs: number;
}

/**
 * The wait before retry number `retry` (1 for the first): the exponential step
 * `min(maxDelayMs, baseDelayMs * 2^(retry-1))`, jittered to between half of it and all of it
 * so that many backends failing together do not retry in lockstep.
 */
export function backoffDelayMs(retry: number, backoff: Backoff, random: () => number): number {
  const step = Math.min(backoff.maxDelayMs, backoff.baseDelayMs * 2 ** Math.min(retry - 1, 30));
  return Math.round(step / 2 + (step / 2) * random());
}

/**
 * `Retry-After` in seconds: an integer of seconds, or an HTTP date (then counted from `nowMs`);
 * `undefined` when absent or unreadable.
 */
export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - nowMs) / 1000));
}
