package edgerelay

// The Client against httptest servers: what goes on the wire (signature over method, path as
// sent and body; ids; user tokens), which failures are retried and how long it waits, and the
// *Error it returns.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const testSecret = "webhook-secret"

// received is one request as the test server saw it.
type received struct {
	method, path, signature, authorization string
	body                                   []byte
	signatureValid                         bool
}

// fakeRelay answers each request with the next handler (the last one repeats) and records the
// requests, checking their v2 signature as the relay does: over the path as received.
type fakeRelay struct {
	t        *testing.T
	mu       sync.Mutex
	requests []received
	answers  []http.HandlerFunc
	server   *httptest.Server
}

func newFakeRelay(t *testing.T, answers ...http.HandlerFunc) *fakeRelay {
	relay := &fakeRelay{t: t, answers: answers}
	relay.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		header := r.Header.Get(SignatureHeader)
		valid := false
		if parsed, ok := parseSignature(header); ok && len(parsed.v2) == 1 {
			valid = SignRequest(testSecret, r.Method, r.URL.EscapedPath(), body, time.Unix(parsed.timestamp, 0)) == header
		}
		relay.mu.Lock()
		relay.requests = append(relay.requests, received{r.Method, r.URL.EscapedPath(), header, r.Header.Get("Authorization"), body, valid})
		answer := relay.answers[min(len(relay.requests), len(relay.answers))-1]
		relay.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(relay.server.Close)
	return relay
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}

func (f *fakeRelay) received() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]received(nil), f.requests...)
}

func answer(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// testClient is a Client of the fake relay whose waits are recorded instead of slept.
func testClient(t *testing.T, relay *fakeRelay, options Options) (*Client, *[]time.Duration) {
	options.URL = relay.server.URL
	options.WebhookSecret = testSecret
	client, err := New(options)
	if err != nil {
		t.Fatal(err)
	}
	waits := &[]time.Duration{}
	client.sleep = func(ctx context.Context, wait time.Duration) error {
		*waits = append(*waits, wait)
		return ctx.Err()
	}
	client.jitter = func() float64 { return 1 } // the full step: waits are exact
	return client, waits
}

func asError(t *testing.T, err error) *Error {
	t.Helper()
	var failure *Error
	if !errors.As(err, &failure) {
		t.Fatalf("got %v (%T), want an *Error", err, err)
	}
	return failure
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestBroadcastSendsOneSignedRequestWithAGeneratedID(t *testing.T) {
	relay := newFakeRelay(t, answer(200, `{"results":[{"room":"chat:1","seq":7},{"room":"ops","error":{"code":"forbidden","message":"no"}}]}`))
	client, waits := testClient(t, relay, Options{})
	result, err := client.Broadcast(context.Background(), []string{"chat:1", "ops", "chat:1"}, "order:new",
		map[string]any{"text": "<b>é</b>"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	requests := relay.received()
	if len(requests) != 1 || len(*waits) != 0 {
		t.Fatalf("%d requests, waits %v; want one request", len(requests), *waits)
	}
	sent := requests[0]
	if sent.method != "POST" || sent.path != "/v1/broadcast" || !sent.signatureValid || sent.authorization != "" {
		t.Fatalf("request %s %s signature %q (valid %v) authorization %q", sent.method, sent.path, sent.signature, sent.signatureValid, sent.authorization)
	}
	var body struct {
		Rooms []string        `json:"rooms"`
		Event string          `json:"event"`
		Data  json.RawMessage `json:"data"`
		ID    string          `json:"id"`
	}
	if err := json.Unmarshal(sent.body, &body); err != nil {
		t.Fatal(err)
	}
	if strings.Join(body.Rooms, ",") != "chat:1,ops" || body.Event != "order:new" || string(body.Data) != `{"text":"<b>é</b>"}` {
		t.Errorf("body %s", sent.body)
	}
	if !uuidV4.MatchString(body.ID) || result.ID != body.ID {
		t.Errorf("id %q sent, %q returned; want one generated UUID", body.ID, result.ID)
	}
	if len(result.Results) != 2 || result.Results[0].Seq != 7 || result.Results[1].Error.Code != CodeForbidden {
		t.Errorf("results %+v", result.Results)
	}
}

func TestBroadcastRetries5xxWithTheSameIDAndBackoff(t *testing.T) {
	relay := newFakeRelay(t,
		answer(503, `{"error":{"code":"internal","message":"busy"}}`),
		answer(502, `<html>bad gateway</html>`),
		answer(200, `{"results":[{"room":"a","seq":1}]}`))
	client, waits := testClient(t, relay, Options{BaseDelay: 100 * time.Millisecond, MaxDelay: 150 * time.Millisecond})
	result, err := client.Broadcast(context.Background(), []string{"a"}, "e", 1, &BroadcastOptions{ID: "order-42"})
	if err != nil {
		t.Fatal(err)
	}
	requests := relay.received()
	if len(requests) != 3 || result.ID != "order-42" || result.Results[0].Seq != 1 {
		t.Fatalf("%d requests, result %+v", len(requests), result)
	}
	for _, request := range requests {
		if !strings.Contains(string(request.body), `"id":"order-42"`) || !request.signatureValid {
			t.Errorf("attempt %s (signature valid %v): want the same id, signed", request.body, request.signatureValid)
		}
	}
	// 100 ms, then 200 ms capped at MaxDelay.
	if len(*waits) != 2 || (*waits)[0] != 100*time.Millisecond || (*waits)[1] != 150*time.Millisecond {
		t.Errorf("waits %v, want [100ms 150ms]", *waits)
	}
}

func TestRetryAfterIsHonouredAndBounded(t *testing.T) {
	limited := `{"error":{"code":"rate_limited","message":"slow down"}}`
	relay := newFakeRelay(t, answer(429, limited, "Retry-After", "7"), answer(200, `{"room":"r","members":[]}`))
	client, waits := testClient(t, relay, Options{})
	if _, err := client.GetMembers(context.Background(), "r"); err != nil {
		t.Fatal(err)
	}
	if len(*waits) != 1 || (*waits)[0] != 7*time.Second {
		t.Errorf("waits %v, want the Retry-After of 7s", *waits)
	}

	// Longer than MaxRetryAfter: given up at once, the error says when to come back.
	relay = newFakeRelay(t, answer(429, limited, "Retry-After", "120"))
	client, waits = testClient(t, relay, Options{MaxRetryAfter: time.Minute})
	_, err := client.GetMembers(context.Background(), "r")
	failure := asError(t, err)
	if failure.Code != CodeRateLimited || failure.Status != 429 || failure.RetryAfter != 2*time.Minute ||
		failure.Attempts != 1 || failure.Message != "slow down" || len(*waits) != 0 {
		t.Errorf("error %+v, waits %v", failure, *waits)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	for value, want := range map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		" 0 ":                           0,
		"99999999999999999999999":       365 * 24 * time.Hour,
		"Sat, 05 Dec 2026 01:00:30 GMT": 30 * time.Second,
		"Sat, 05 Dec 2026 00:59:00 GMT": 0,
		"soon":                          0,
		"-5":                            0,
	} {
		if got := parseRetryAfter(value, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", value, got, want)
		}
	}
}

func TestBroadcastRetriesOnlyTheRoomsThatFailedAlone(t *testing.T) {
	relay := newFakeRelay(t,
		answer(200, `{"results":[{"room":"a","seq":1},{"room":"b","error":{"code":"internal","message":"x"}},{"room":"c","error":{"code":"bad_request","message":"bad name"}}]}`),
		answer(200, `{"results":[{"room":"b","error":{"code":"rate_limited","message":"later"}}]}`),
		answer(200, `{"results":[{"room":"b","seq":9}]}`))
	client, _ := testClient(t, relay, Options{})
	result, err := client.Broadcast(context.Background(), []string{"a", "b", "c"}, "e", nil, &BroadcastOptions{ID: "k"})
	if err != nil {
		t.Fatal(err)
	}
	requests := relay.received()
	if len(requests) != 3 {
		t.Fatalf("%d requests, want 3", len(requests))
	}
	for _, again := range requests[1:] {
		if !strings.HasPrefix(string(again.body), `{"rooms":["b"],"event":"e","data":null,"id":"k"}`) {
			t.Errorf("a retry sent %s, want room b alone with the same id", again.body)
		}
	}
	got, _ := json.Marshal(result.Results)
	want := `[{"room":"a","seq":1},{"room":"b","seq":9},{"room":"c","error":{"code":"bad_request","message":"bad name"}}]`
	if string(got) != want {
		t.Errorf("results %s, want %s", got, want)
	}
}

func TestBroadcastKeepsAnsweredRoomsWhenLaterAttemptsFail(t *testing.T) {
	relay := newFakeRelay(t,
		answer(200, `{"results":[{"room":"a","seq":1},{"room":"b","error":{"code":"internal","message":"x"}}]}`),
		answer(503, `{"error":{"code":"internal","message":"down"}}`))
	client, _ := testClient(t, relay, Options{MaxAttempts: 3})
	result, err := client.Broadcast(context.Background(), []string{"a", "b"}, "e", 1, nil)
	if err != nil {
		t.Fatalf("a broadcast with an answered room failed as a whole: %v", err)
	}
	if len(relay.received()) != 3 || result.Results[0].Seq != 1 || result.Results[1].Error == nil || result.Results[1].Error.Code != CodeInternal {
		t.Errorf("%d requests, results %+v", len(relay.received()), result.Results)
	}

	// No room answered at all: the whole call fails, with the attempts made.
	relay = newFakeRelay(t, answer(503, `{"error":{"code":"internal","message":"down"}}`))
	client, _ = testClient(t, relay, Options{MaxAttempts: 2})
	_, err = client.Broadcast(context.Background(), []string{"a"}, "e", 1, nil)
	if failure := asError(t, err); failure.Code != CodeInternal || failure.Status != 503 || failure.Attempts != 2 {
		t.Errorf("error %+v", failure)
	}
}

func TestBroadcastAnswerWithoutEveryRoomIsInvalid(t *testing.T) {
	relay := newFakeRelay(t, answer(200, `{"results":[{"room":"a","seq":1}]}`))
	client, _ := testClient(t, relay, Options{})
	result, err := client.Broadcast(context.Background(), []string{"a", "b"}, "e", 1, nil)
	if err != nil || len(relay.received()) != 1 {
		t.Fatalf("%v after %d requests", err, len(relay.received()))
	}
	if result.Results[0].Seq != 1 || result.Results[1].Error == nil || result.Results[1].Error.Code != CodeInvalidResponse {
		t.Errorf("results %+v, want room b failed with invalid_response", result.Results)
	}
}

func TestClientErrorsAreNotRetried(t *testing.T) {
	relay := newFakeRelay(t, answer(401, `{"error":{"code":"unauthorized","message":"signature rejected"}}`))
	client, waits := testClient(t, relay, Options{})
	_, err := client.SetMembers(context.Background(), "r", nil)
	failure := asError(t, err)
	if failure.Code != CodeUnauthorized || failure.Status != 401 || failure.Attempts != 1 || len(*waits) != 0 {
		t.Errorf("error %+v, waits %v", failure, *waits)
	}
	if !strings.Contains(failure.Error(), "unauthorized (401): signature rejected") || strings.Contains(failure.Error(), testSecret) {
		t.Errorf("message %q", failure.Error())
	}
	// A code this version does not list comes through; a proxy's JSON does not pass for the relay's.
	relay = newFakeRelay(t, answer(422, `{"error":{"code":"rejected","message":"no phone numbers"}}`))
	client, _ = testClient(t, relay, Options{})
	_, err = client.Publish(context.Background(), "r", "hi", PublishOptions{Token: "t"})
	if failure := asError(t, err); failure.Code != CodeRejected || failure.Message != "no phone numbers" {
		t.Errorf("error %+v", failure)
	}
	relay = newFakeRelay(t, answer(404, `{"error":"Not Found"}`))
	client, _ = testClient(t, relay, Options{})
	_, err = client.GetMembers(context.Background(), "r")
	if failure := asError(t, err); failure.Code != CodeInvalidResponse || failure.Status != 404 {
		t.Errorf("error %+v", failure)
	}
}

func TestNetworkFailuresAndTimeoutsAreRetriedThenTyped(t *testing.T) {
	relay := newFakeRelay(t, answer(200, `{}`))
	client, waits := testClient(t, relay, Options{MaxAttempts: 3})
	relay.server.Close() // nothing listens any more
	_, err := client.GetMembers(context.Background(), "r")
	if failure := asError(t, err); failure.Code != CodeNetworkError || failure.Status != 0 || failure.Attempts != 3 || len(*waits) != 2 || failure.Err == nil {
		t.Errorf("error %+v, waits %v", failure, *waits)
	}

	release := make(chan struct{})
	defer close(release)
	slow := newFakeRelay(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	client, _ = testClient(t, slow, Options{MaxAttempts: 2, Timeout: 50 * time.Millisecond})
	started := time.Now()
	_, err = client.GetMembers(context.Background(), "r")
	if failure := asError(t, err); failure.Code != CodeTimeout || failure.Attempts != 2 || len(slow.received()) != 2 {
		t.Errorf("error %+v after %d requests", failure, len(slow.received()))
	}
	if elapsed := time.Since(started); elapsed > 5*time.Second {
		t.Errorf("two 50 ms timeouts took %v", elapsed)
	}
}

func TestTheCallersContextEndsTheRetries(t *testing.T) {
	relay := newFakeRelay(t, answer(503, `{"error":{"code":"internal","message":"down"}}`))
	client, err := New(Options{URL: relay.server.URL, WebhookSecret: testSecret, BaseDelay: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for len(relay.received()) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	started := time.Now()
	_, err = client.GetMembers(ctx, "r")
	failure := asError(t, err)
	if failure.Code != CodeCanceled || !errors.Is(err, context.Canceled) || failure.Attempts != 1 {
		t.Errorf("error %+v", failure)
	}
	if elapsed := time.Since(started); elapsed > 10*time.Second {
		t.Errorf("a canceled call waited %v of its minute of backoff", elapsed)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	_, err = client.GetMembers(ctx, "r")
	if failure := asError(t, err); failure.Code != CodeTimeout || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %+v", failure)
	}
}

func TestMembersAreSignedOverThePercentEncodedPath(t *testing.T) {
	relay := newFakeRelay(t, answer(200, `{"room":"city:С 1","members":[{"id":"ann","role":"customer"},{"id":"max"}]}`))
	client, _ := testClient(t, relay, Options{})
	members := []Member{{ID: "ann", Role: "customer"}, {ID: "max"}}
	set, err := client.SetMembers(context.Background(), "city:С 1", members)
	if err != nil {
		t.Fatal(err)
	}
	got, err := client.GetMembers(context.Background(), "city:С 1")
	if err != nil {
		t.Fatal(err)
	}
	requests := relay.received()
	wantPath := "/v1/rooms/city%3A%D0%A1%201/members"
	if requests[0].method != "PUT" || requests[0].path != wantPath || !requests[0].signatureValid ||
		string(requests[0].body) != `[{"id":"ann","role":"customer"},{"id":"max"}]` {
		t.Errorf("PUT sent %+v", requests[0])
	}
	if requests[1].method != "GET" || requests[1].path != wantPath || !requests[1].signatureValid || len(requests[1].body) != 0 {
		t.Errorf("GET sent %+v", requests[1])
	}
	if set.Room != "city:С 1" || len(got.Members) != 2 || got.Members[0] != members[0] || got.Members[1] != members[1] {
		t.Errorf("answers %+v %+v", set, got)
	}
	// No members is an empty list, never null; "." and ".." are no room in a URL.
	if _, err := client.SetMembers(context.Background(), "r", nil); err != nil || string(relay.received()[2].body) != "[]" {
		t.Errorf("nil members sent %s (%v)", relay.received()[2].body, err)
	}
	for _, room := range []string{"", ".", ".."} {
		if _, err := client.GetMembers(context.Background(), room); asError(t, err).Code != CodeInvalidArgument {
			t.Errorf("room %q: %v", room, err)
		}
	}
}

func TestPublishAndHistoryCarryTheUserToken(t *testing.T) {
	relay := newFakeRelay(t,
		answer(200, `{"seq":3,"id":"m3","ts":"2026-12-05T01:00:00.000Z","duplicate":false}`),
		answer(200, `{"messages":[{"type":"message","room":"r","seq":3,"id":"m3","event":"note","data":{"n":1},"from":{"id":"ann"},"cid":"c-1","ts":"2026-12-05T01:00:00.000Z"}],"has_more":false}`))
	client, _ := testClient(t, relay, Options{})
	receipt, err := client.Publish(context.Background(), "r", map[string]int{"n": 1}, PublishOptions{Token: "user-token", Event: "note", CID: "c-1"})
	if err != nil || receipt.Seq != 3 || receipt.Duplicate {
		t.Fatalf("receipt %+v, %v", receipt, err)
	}
	after := int64(0)
	page, err := client.History(context.Background(), "r", HistoryOptions{Token: "user-token", After: &after, Limit: 10})
	if err != nil || len(page.Messages) != 1 || string(page.Messages[0].Data) != `{"n":1}` || page.Messages[0].From.ID != "ann" {
		t.Fatalf("page %+v, %v", page, err)
	}
	requests := relay.received()
	if requests[0].authorization != "Bearer user-token" || requests[0].signature != "" || requests[0].path != "/v1/rooms/r/messages" ||
		string(requests[0].body) != `{"cid":"c-1","event":"note","data":{"n":1}}` {
		t.Errorf("publish sent %+v", requests[0])
	}
	if requests[1].authorization != "Bearer user-token" || requests[1].method != "GET" {
		t.Errorf("history sent %+v", requests[1])
	}
	if _, err := client.Publish(context.Background(), "r", 1, PublishOptions{}); asError(t, err).Code != CodeInvalidArgument {
		t.Errorf("a publish without a token: %v", err)
	}
}

func TestHistoryQuery(t *testing.T) {
	var query string
	relay := newFakeRelay(t, func(w http.ResponseWriter, r *http.Request) {
		query = r.URL.RawQuery
		answer(200, `{"messages":[],"has_more":false}`)(w, r)
	})
	client, _ := testClient(t, relay, Options{})
	before := int64(40)
	if _, err := client.History(context.Background(), "r", HistoryOptions{Token: "t", Before: &before}); err != nil || query != "before=40" {
		t.Errorf("query %q, %v", query, err)
	}
	if _, err := client.History(context.Background(), "r", HistoryOptions{Token: "t"}); err != nil || query != "" {
		t.Errorf("query %q, %v", query, err)
	}
}

func TestRefusedBeforeSending(t *testing.T) {
	relay := newFakeRelay(t, answer(200, `{}`))
	client, _ := testClient(t, relay, Options{})
	ctx := context.Background()
	checks := map[string]error{}
	_, checks["no rooms"] = client.Broadcast(ctx, nil, "e", 1, nil)
	_, checks["no event"] = client.Broadcast(ctx, []string{"a"}, "", 1, nil)
	_, checks["65-character id"] = client.Broadcast(ctx, []string{"a"}, "e", 1, &BroadcastOptions{ID: strings.Repeat("é", 65)})
	_, checks["data JSON cannot carry"] = client.Broadcast(ctx, []string{"a"}, "e", make(chan int), nil)
	negative := int64(-1)
	_, checks["negative after"] = client.History(ctx, "r", HistoryOptions{Token: "t", After: &negative})
	_, checks["negative limit"] = client.History(ctx, "r", HistoryOptions{Token: "t", Limit: -1})
	_, checks["history without a token"] = client.History(ctx, "r", HistoryOptions{})
	for name, err := range checks {
		if asError(t, err).Code != CodeInvalidArgument {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n := len(relay.received()); n != 0 {
		t.Errorf("%d requests were sent", n)
	}
	for name, options := range map[string]Options{
		"no URL":         {WebhookSecret: "s"},
		"a path":         {URL: "https://relay.example/v1", WebhookSecret: "s"},
		"credentials":    {URL: "https://u:p@relay.example", WebhookSecret: "s"},
		"ftp":            {URL: "ftp://relay.example", WebhookSecret: "s"},
		"no secret":      {URL: "https://relay.example"},
		"11 attempts":    {URL: "https://relay.example", WebhookSecret: "s", MaxAttempts: 11},
		"negative delay": {URL: "https://relay.example", WebhookSecret: "s", BaseDelay: -1},
	} {
		if _, err := New(options); asError(t, err).Code != CodeInvalidArgument {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestBackoffJitterStaysWithinHalfToAllOfTheStep(t *testing.T) {
	client, err := New(Options{URL: "https://relay.example", WebhookSecret: "s", BaseDelay: time.Second, MaxDelay: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[time.Duration]bool{}
	for i := 0; i < 200; i++ {
		for retry, step := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 3 * time.Second, 30: 3 * time.Second} {
			wait := client.backoff(retry)
			if wait < step/2 || wait > step {
				t.Fatalf("retry %d waits %v, want %v..=%v", retry, wait, step/2, step)
			}
			seen[wait] = true
		}
	}
	if len(seen) < 100 {
		t.Errorf("%d distinct waits in 800: the jitter is not random", len(seen))
	}
}
