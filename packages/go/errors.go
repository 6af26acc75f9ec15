package edgerelay

// The one error type of the package: the relay's own error (its code, HTTP status and
// message) or what went wrong before an answer came. Messages never carry a secret or a token.

import (
	"fmt"
	"time"
)

// The codes the relay answers with in {"error":{"code","message"}}. A newer relay may add
// codes; they come through as sent.
const (
	CodeBadRequest       = "bad_request"
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeTooLarge         = "too_large"
	CodeUpgradeRequired  = "upgrade_required"
	CodeRejected         = "rejected"
	CodeRateLimited      = "rate_limited"
	CodeInternal         = "internal"
)

// The codes of failures without a relay answer.
const (
	// CodeNetworkError: the request failed before an answer (connection refused, reset...).
	CodeNetworkError = "network_error"
	// CodeTimeout: no answer within Options.Timeout, or the caller's context deadline passed.
	CodeTimeout = "timeout"
	// CodeCanceled: the caller's context was canceled.
	CodeCanceled = "canceled"
	// CodeInvalidResponse: an answer that is not the relay's JSON (e.g. a proxy's page).
	CodeInvalidResponse = "invalid_response"
	// CodeInvalidArgument: refused here, before anything was sent.
	CodeInvalidArgument = "invalid_argument"
)

// Error is every error this package returns. Use errors.As to read it.
type Error struct {
	// Code is one of the Code constants (or a code a newer relay sent).
	Code string
	// Status is the HTTP status; 0 when no answer came. For VerifyEvents, the status to answer.
	Status int
	// Message is the relay's message, or what went wrong here.
	Message string
	// RetryAfter is the Retry-After of a 429 or 503; 0 when there was none.
	RetryAfter time.Duration
	// Attempts is how many requests were made before giving up.
	Attempts int
	// Err is the underlying error (a network error, a context's error), if any.
	Err error
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("edgerelay: %s (%d): %s", e.Code, e.Status, e.Message)
	}
	return fmt.Sprintf("edgerelay: %s: %s", e.Code, e.Message)
}

// Unwrap gives the underlying error, so that errors.Is(err, context.Canceled) works.
func (e *Error) Unwrap() error { return e.Err }

func invalidArgument(format string, args ...any) *Error {
	return &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf(format, args...)}
}
