// The one error type of the SDK: the relay's own error (its code, HTTP status and message)
// or what went wrong before an answer came. Messages never carry a secret or a token.

/** The codes the relay answers with (`{"error":{"code","message"}}`). */
export type RelayErrorCodeFromRelay =
  | 'bad_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'too_large'
  | 'upgrade_required'
  | 'rate_limited'
  | 'internal';

/**
 * Codes of failures without a relay answer: `network_error` (fetch failed), `timeout` (no
 * answer in `timeoutMs`), `invalid_response` (an answer that is not the relay's JSON, e.g. from
 * a proxy), `invalid_argument` (refused here, before anything was sent).
 */
export type RelayErrorCodeLocal = 'network_error' | 'timeout' | 'invalid_response' | 'invalid_argument';

export type RelayErrorCode = RelayErrorCodeFromRelay | RelayErrorCodeLocal;

export interface RelayErrorInit {
  code: RelayErrorCode;
  message: string;
  /** The HTTP status; 0 when no answer came. */
  status?: number;
  /** The `Retry-After` of a 429 or 503, in seconds. */
  retryAfterSeconds?: number;
  /** How many requests were made before giving up. */
  attempts?: number;
  cause?: unknown;
}

export class RelayError extends Error {
  override readonly name = 'RelayError';
  readonly code: RelayErrorCode;
  readonly status: number;
  readonly retryAfterSeconds: number | undefined;
  readonly attempts: number;

  constructor(init: RelayErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = init.code;
    this.status = init.status ?? 0;
    this.retryAfterSeconds = init.retryAfterSeconds;
    this.attempts = init.attempts ?? 0;
  }

  /**
   * Like `instanceof RelayError`, but also true for an error from another copy of this
   * package (an ESM and a CJS copy loaded side by side).
   */
  static is(error: unknown): error is RelayError {
    return (
      error instanceof RelayError ||
      (typeof error === 'object' &&
        error !== null &&
        (error as { name?: unknown }).name === 'RelayError' &&
        typeof (error as { code?: unknown }).code === 'string')
    );
  }
}
