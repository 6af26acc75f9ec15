package edgerelay

// Client: the relay's backend routes over net/http, each request signed with a v2 signature
// (so the webhook secret itself never travels), retried when a retry can help and within
// bounds, and failing with an *Error.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Options configure a Client. Zero values take the defaults.
type Options struct {
	// URL is the relay's origin, e.g. https://relay.example.com (no path).
	URL string
	// WebhookSecret is the relay's WEBHOOK_SECRET.
	WebhookSecret string
	// HTTPClient sends the requests; http.DefaultClient by default.
	HTTPClient *http.Client
	// MaxAttempts is requests per call at most, the first included (default 4, 1..=10).
	MaxAttempts int
	// BaseDelay: the first retry waits between half of it and all of it (default 250 ms).
	BaseDelay time.Duration
	// MaxDelay caps the backoff between attempts (default 5 s).
	MaxDelay time.Duration
	// MaxRetryAfter is the longest Retry-After waited for (default 30 s); a longer one fails
	// the call at once with the *Error (its RetryAfter says when to come back).
	MaxRetryAfter time.Duration
	// Timeout is each request's deadline, answer included (default 10 s).
	Timeout time.Duration
	// Now is the clock used for signatures; time.Now by default.
	Now func() time.Time
}

// Client calls one relay. It is safe for concurrent use.
type Client struct {
	origin        string
	webhookSecret string
	http          *http.Client
	maxAttempts   int
	baseDelay     time.Duration
	maxDelay      time.Duration
	maxRetryAfter time.Duration
	timeout       time.Duration
	now           func() time.Time
	// sleep waits between attempts; tests replace it to record the waits.
	sleep func(ctx context.Context, wait time.Duration) error
	// jitter gives a number in [0, 1) for the backoff's jitter.
	jitter func() float64
}

// Bounds of the answers read: a history page of 200 messages of up to 64 KiB of data each fits.
const maxAnswerBytes = 16 << 20

// The longest Retry-After read, a year: it only has to be beyond MaxRetryAfter's bound.
const maxRetryAfterSeconds = 365 * 24 * 3600

// Room errors of a broadcast worth sending again (the same id keeps them from delivering twice).
var retryableRoomCodes = map[string]bool{CodeInternal: true, CodeRateLimited: true}

// New checks the options and returns a Client.
func New(options Options) (*Client, error) {
	parsed, err := url.Parse(options.URL)
	if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" || parsed.User != nil {
		return nil, invalidArgument("the URL must be an http(s) origin without credentials")
	}
	if (parsed.Path != "" && parsed.Path != "/") || parsed.RawQuery != "" || parsed.Fragment != "" {
		return nil, invalidArgument("the URL must be the relay origin, without a path or query")
	}
	if options.WebhookSecret == "" {
		return nil, invalidArgument("the webhook secret is required")
	}
	client := &Client{
		origin:        parsed.Scheme + "://" + parsed.Host,
		webhookSecret: options.WebhookSecret,
		http:          options.HTTPClient,
		maxAttempts:   options.MaxAttempts,
		baseDelay:     options.BaseDelay,
		maxDelay:      options.MaxDelay,
		maxRetryAfter: options.MaxRetryAfter,
		timeout:       options.Timeout,
		now:           options.Now,
		sleep:         sleepContext,
		jitter:        randomFraction,
	}
	if client.http == nil {
		client.http = http.DefaultClient
	}
	if client.now == nil {
		client.now = time.Now
	}
	settings := []struct {
		name          string
		value         *time.Duration
		fallback, max time.Duration
	}{
		{"BaseDelay", &client.baseDelay, 250 * time.Millisecond, time.Minute},
		{"MaxDelay", &client.maxDelay, 5 * time.Second, 5 * time.Minute},
		{"MaxRetryAfter", &client.maxRetryAfter, 30 * time.Second, 5 * time.Minute},
		{"Timeout", &client.timeout, 10 * time.Second, 5 * time.Minute},
	}
	for _, setting := range settings {
		if *setting.value == 0 {
			*setting.value = setting.fallback
		}
		if *setting.value < 0 || *setting.value > setting.max {
			return nil, invalidArgument("%s must be within 0..=%s", setting.name, setting.max)
		}
	}
	if client.maxAttempts == 0 {
		client.maxAttempts = 4
	}
	if client.maxAttempts < 1 || client.maxAttempts > 10 {
		return nil, invalidArgument("MaxAttempts must be within 1..=10")
	}
	return client, nil
}

// randomFraction is a number in [0, 1) from crypto/rand: math/rand's global source starts from
// the same seed in every process before Go 1.20, which would put backends in lockstep.
func randomFraction() float64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0.5
	}
	return float64(binary.BigEndian.Uint64(b[:])>>11) / (1 << 53)
}

func sleepContext(ctx context.Context, wait time.Duration) error {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// call is one request: its route, body, and whose credentials it carries.
type call struct {
	method string
	path   string // percent-encoded, as sent
	body   []byte // nil: no body
	token  string // a user token; empty: signed with the webhook secret
}

// retryable is an attempt's failure that another attempt may fix.
type retryable struct{ err *Error }

func (r retryable) Error() string { return r.err.Error() }

// withRetries runs attempt until it succeeds, at most maxAttempts times, waiting the backoff
// (or a longer Retry-After, up to its bound) between attempts. attempt returns nil, a
// retryable, or a final error.
func (c *Client) withRetries(ctx context.Context, attempt func(attempts int) error) error {
	for attempts := 1; ; attempts++ {
		err := attempt(attempts)
		var again retryable
		if !errors.As(err, &again) {
			return withAttempts(err, attempts)
		}
		failure := again.err
		if attempts >= c.maxAttempts || failure.RetryAfter > c.maxRetryAfter {
			return withAttempts(failure, attempts)
		}
		wait := c.backoff(attempts)
		if failure.RetryAfter > wait {
			wait = failure.RetryAfter
		}
		if err := c.sleep(ctx, wait); err != nil {
			return withAttempts(contextError(ctx), attempts)
		}
	}
}

// backoff is the wait before retry number retry (1 for the first): the exponential step
// min(maxDelay, baseDelay * 2^(retry-1)), jittered to between half of it and all of it so that
// many backends failing together do not retry in lockstep.
func (c *Client) backoff(retry int) time.Duration {
	step := float64(c.baseDelay) * math.Pow(2, float64(retry-1))
	if step > float64(c.maxDelay) {
		step = float64(c.maxDelay)
	}
	return time.Duration(step/2 + step/2*c.jitter())
}

func withAttempts(err error, attempts int) error {
	var failure *Error
	if errors.As(err, &failure) {
		copied := *failure
		copied.Attempts = attempts
		return &copied
	}
	return err
}

// contextError is the caller's context ending, as an *Error wrapping ctx.Err().
func contextError(ctx context.Context) *Error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &Error{Code: CodeTimeout, Message: "the context's deadline passed", Err: ctx.Err()}
	}
	return &Error{Code: CodeCanceled, Message: "the context was canceled", Err: ctx.Err()}
}

// do runs one call with retries and decodes its JSON answer into answer.
func (c *Client) do(ctx context.Context, request call, answer any) error {
	return c.withRetries(ctx, func(attempts int) error { return c.attempt(ctx, request, answer) })
}

// attempt sends one request: nil when answer holds the decoded answer, a retryable for 429,
// 5xx, network failures and timeouts, else the final error.
func (c *Client) attempt(ctx context.Context, request call, answer any) error {
	if ctx.Err() != nil {
		return contextError(ctx)
	}
	target, err := url.Parse(c.origin + request.path)
	if err != nil {
		return invalidArgument("the path cannot be sent")
	}
	where := request.method + " " + target.EscapedPath()
	requestCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var body io.Reader
	if request.body != nil {
		body = bytes.NewReader(request.body)
	}
	httpRequest, err := http.NewRequestWithContext(requestCtx, request.method, target.String(), body)
	if err != nil {
		return invalidArgument("%s cannot be sent", where)
	}
	httpRequest.Header.Set("Accept", "application/json")
	if request.body != nil {
		httpRequest.Header.Set("Content-Type", "application/json")
	}
	if request.token != "" {
		httpRequest.Header.Set("Authorization", "Bearer "+request.token)
	} else {
		// Signed afresh for every attempt: the timestamp must be within the relay's 5 minutes.
		// The path signed is the one net/http sends (EscapedPath).
		httpRequest.Header.Set(SignatureHeader,
			SignRequest(c.webhookSecret, request.method, target.EscapedPath(), request.body, c.now()))
	}
	response, err := c.http.Do(httpRequest)
	var text []byte
	if err == nil {
		text, err = io.ReadAll(io.LimitReader(response.Body, maxAnswerBytes+1))
		response.Body.Close()
	}
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return contextError(ctx)
		case errors.Is(requestCtx.Err(), context.DeadlineExceeded):
			return retryable{&Error{Code: CodeTimeout, Message: where + ": no answer within " + c.timeout.String(), Err: err}}
		default:
			return retryable{&Error{Code: CodeNetworkError, Message: where + ": the request failed before an answer", Err: err}}
		}
	}
	status := response.StatusCode
	if len(text) > maxAnswerBytes {
		return &Error{Code: CodeInvalidResponse, Status: status, Message: where + ": the answer is too large"}
	}
	if status >= 200 && status <= 299 {
		if json.Unmarshal(text, answer) != nil {
			return &Error{Code: CodeInvalidResponse, Status: status, Message: where + ": the answer is not the relay's JSON"}
		}
		return nil
	}
	failure := errorFromAnswer(status, text)
	failure.RetryAfter = parseRetryAfter(response.Header.Get("Retry-After"), c.now())
	if status == http.StatusTooManyRequests || (status >= 500 && status <= 599) {
		return retryable{failure}
	}
	return failure
}

// errorFromAnswer reads the relay's {"error":{"code","message"}}; any other body is an
// invalid_response (a proxy's page, a truncated answer) and the status tells the rest.
func errorFromAnswer(status int, text []byte) *Error {
	var parsed struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(text, &parsed) == nil && isCode(parsed.Error.Code) {
		message := parsed.Error.Message
		if message == "" {
			message = parsed.Error.Code
		}
		return &Error{Code: parsed.Error.Code, Status: status, Message: message}
	}
	return &Error{Code: CodeInvalidResponse, Status: status, Message: "the relay answered " + strconv.Itoa(status) + " without its error body"}
}

// isCode accepts what the relay's codes look like (lower-case words joined by _), so that a
// newer relay's codes come through while a proxy's odd JSON does not.
func isCode(code string) bool {
	if code == "" || len(code) > 64 {
		return false
	}
	return strings.IndexFunc(code, func(r rune) bool { return (r < 'a' || r > 'z') && r != '_' }) < 0
}

// parseRetryAfter reads Retry-After as seconds or as an HTTP date (counted from now); 0 when
// absent or unreadable.
func parseRetryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if strings.Trim(value, "0123456789") == "" {
		// Seconds; more than a year (or more than uint64) is read as a year, far past any bound.
		seconds, err := strconv.ParseUint(value, 10, 64)
		if err != nil || seconds > maxRetryAfterSeconds {
			seconds = maxRetryAfterSeconds
		}
		return time.Duration(seconds) * time.Second
	}
	at, err := http.ParseTime(value)
	if err != nil || !at.After(now) {
		return 0
	}
	return at.Sub(now).Round(time.Second)
}
