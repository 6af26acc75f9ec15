package edgerelay

// VerifyEvents: a delivery signed as the relay signs it is parsed into events; a missing,
// malformed, wrong or stale signature, a tampered or oversized body, and a signed body that is
// not {"events":[…]} are refused with the status to answer.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

const eventsSecret = "events-secret"

var delivered = `{"events":[` +
	`{"id":"ev-1","type":"message.created","room":"support:7","seq":12,"ts":"2026-12-05T01:00:00.000Z","user":null,` +
	`"message":{"type":"message","room":"support:7","seq":12,"id":"m12","event":"order:new","data":{"id":42},"from":null,"ts":"2026-12-05T01:00:00.000Z"}},` +
	`{"id":"ev-2","type":"presence.left","room":"support:7","ts":"2026-12-05T01:00:01.000Z","user":{"id":"ann","name":"Ann"},"last_seen":"2026-12-05T01:00:00.500Z"},` +
	`{"id":"ev-3","type":"some.future","room":"support:7","ts":"2026-12-05T01:00:02.000Z","extra":[1]}]}`

// signEvents is the relay's header for body at timestamp, computed here independently.
func signEvents(secret string, timestamp int64, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(timestamp, 10) + "." + body))
	return "t=" + strconv.FormatInt(timestamp, 10) + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

func deliveryRequest(body, header string) *http.Request {
	request := httptest.NewRequest(http.MethodPost, "/events", strings.NewReader(body))
	if header != "" {
		request.Header.Set(SignatureHeader, header)
	}
	return request
}

func TestVerifyEventsParsesASignedDelivery(t *testing.T) {
	now := time.Now()
	events, err := VerifyEvents(deliveryRequest(delivered, signEvents(eventsSecret, now.Unix(), delivered)), eventsSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 3 {
		t.Fatalf("%d events", len(events))
	}
	created, left, future := events[0], events[1], events[2]
	if created.Type != "message.created" || created.Seq != 12 || created.User != nil || created.Message == nil ||
		string(created.Message.Data) != `{"id":42}` || created.Message.From != nil {
		t.Errorf("message.created %+v", created)
	}
	if left.User == nil || left.User.ID != "ann" || left.User.Name != "Ann" || left.LastSeen != "2026-12-05T01:00:00.500Z" {
		t.Errorf("presence.left %+v", left)
	}
	if future.Type != "some.future" || !strings.Contains(string(future.Raw), `"extra":[1]`) {
		t.Errorf("an unknown type came as %+v", future)
	}
}

func TestVerifyEventsRefuses(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	good := signEvents(eventsSecret, now.Unix(), delivered)
	rotated := signEvents("old-secret", now.Unix(), delivered) + "," + strings.Split(good, ",")[1]
	if _, err := VerifyEventsBody([]byte(delivered), rotated, eventsSecret, &VerifyOptions{Now: now}); err != nil {
		t.Errorf("any matching v1 element is enough (secret rotation): %v", err)
	}
	notEvents := `{"evts":[]}`
	cases := []struct {
		name, body, header string
		status             int
	}{
		{"no header", delivered, "", 401},
		{"another secret", delivered, signEvents("other", now.Unix(), delivered), 401},
		{"a tampered body", strings.Replace(delivered, "42", "43", 1), good, 401},
		{"a v2 signature only", delivered, strings.Replace(good, "v1=", "v2=", 1), 401},
		{"malformed hex", delivered, good + "0", 401},
		{"301 s old", delivered, signEvents(eventsSecret, now.Unix()-301, delivered), 401},
		{"301 s ahead", delivered, signEvents(eventsSecret, now.Unix()+301, delivered), 401},
		{"signed, not events", notEvents, signEvents(eventsSecret, now.Unix(), notEvents), 400},
		{"signed, not JSON", "{", signEvents(eventsSecret, now.Unix(), "{"), 400},
		{"signed, an event without ts", `{"events":[{"id":"a","type":"b","room":"c"}]}`,
			signEvents(eventsSecret, now.Unix(), `{"events":[{"id":"a","type":"b","room":"c"}]}`), 400},
		{"signed, id null", `{"events":[{"id":null,"type":"b","room":"c","ts":"d"}]}`,
			signEvents(eventsSecret, now.Unix(), `{"events":[{"id":null,"type":"b","room":"c","ts":"d"}]}`), 400},
		{"signed, not UTF-8", "{\"events\":[],\"x\":\"\xff\"}", signEvents(eventsSecret, now.Unix(), "{\"events\":[],\"x\":\"\xff\"}"), 400},
	}
	for _, c := range cases {
		for _, viaRequest := range []bool{true, false} {
			var err error
			if viaRequest {
				_, err = VerifyEvents(deliveryRequest(c.body, c.header), eventsSecret, &VerifyOptions{Now: now})
			} else {
				_, err = VerifyEventsBody([]byte(c.body), c.header, eventsSecret, &VerifyOptions{Now: now})
			}
			var failure *Error
			if !errors.As(err, &failure) || failure.Status != c.status {
				t.Errorf("%s (request %v): got %v, want status %d", c.name, viaRequest, err, c.status)
			}
		}
	}
	// 300 s is still in bounds; a smaller Tolerance narrows it.
	old := signEvents(eventsSecret, now.Unix()-300, delivered)
	if _, err := VerifyEventsBody([]byte(delivered), old, eventsSecret, &VerifyOptions{Now: now}); err != nil {
		t.Errorf("300 s old: %v", err)
	}
	if _, err := VerifyEventsBody([]byte(delivered), old, eventsSecret, &VerifyOptions{Now: now, Tolerance: time.Minute}); err == nil {
		t.Error("300 s old was accepted with a 1 minute tolerance")
	}
}

// tripwire fails the test if the body is read.
type tripwire struct{ t *testing.T }

func (w tripwire) Read([]byte) (int, error) {
	w.t.Error("the body was read")
	return 0, errors.New("read")
}

func TestVerifyEventsBoundsTheBody(t *testing.T) {
	now := time.Now()
	large := `{"events":[],"pad":"` + strings.Repeat("x", 2000) + `"}`
	header := signEvents(eventsSecret, now.Unix(), large)
	for _, declared := range []bool{true, false} {
		request := deliveryRequest(large, header)
		if !declared {
			request.ContentLength = -1 // chunked: read only up to the bound
		}
		_, err := VerifyEvents(request, eventsSecret, &VerifyOptions{MaxBodyBytes: 1000})
		var failure *Error
		if !errors.As(err, &failure) || failure.Code != CodeTooLarge || failure.Status != 413 {
			t.Errorf("declared %v: got %v, want too_large 413", declared, err)
		}
	}
	if _, err := VerifyEventsBody([]byte(large), header, eventsSecret, &VerifyOptions{MaxBodyBytes: 1000}); err == nil {
		t.Error("VerifyEventsBody accepted a body over MaxBodyBytes")
	}
	// A header refused before the body is read: a forged delivery costs no read.
	request := httptest.NewRequest(http.MethodPost, "/events", tripwire{t})
	request.Header.Set(SignatureHeader, "t=1,v1=00")
	if _, err := VerifyEvents(request, eventsSecret, nil); err == nil {
		t.Error("a stale header was accepted")
	}
}
