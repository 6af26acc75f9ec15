package edgerelay

// Receiving the relay's outgoing events (EVENTS_URL): the delivery's X-Relay-Signature
// (t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>"> under EVENTS_SECRET) checked against the raw
// body in constant time, then the body parsed into events. A delivery that does not verify is
// refused before its body is parsed.

import (
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxEventsBodyBytes is the default bound of a delivery's body: a delivery is at most 100
// events and about 120 000 bytes; this leaves room and bounds a forged one.
const MaxEventsBodyBytes = 1 << 20

// Event is one outgoing event. Type is message.created, message.edited, message.deleted,
// presence.joined, presence.left, read.updated or message.unread; a newer relay may send
// other types, so keep a default branch when switching on it. Delivery is at least once:
// deduplicate on ID.
type Event struct {
	// ID is stable across deliveries of the event.
	ID   string `json:"id"`
	Type string `json:"type"`
	Room string `json:"room"`
	// TS is when it happened (RFC 3339, UTC, milliseconds).
	TS string `json:"ts"`
	// Seq: for message.*, the message's (or record's) seq; read.updated: read up to it;
	// message.unread: the oldest message the member left unread.
	Seq int64 `json:"seq,omitempty"`
	// RefSeq is the message an edit or delete changed.
	RefSeq int64 `json:"ref_seq,omitempty"`
	// User is who; nil for a backend's broadcast.
	User *User `json:"user"`
	// Message is the message as clients and history see it (message.* only); nil when it was
	// left out for its size (MessageOmitted): read it from the history by Seq.
	Message        *Message `json:"message,omitempty"`
	MessageOmitted bool     `json:"message_omitted,omitempty"`
	// LastSeen is the user's last activity (presence.left).
	LastSeen string `json:"last_seen,omitempty"`
	// Unread is how many messages the member has left unread from Seq on (message.unread).
	Unread int64 `json:"unread,omitempty"`
	// Raw is the event exactly as delivered, for fields this version does not name.
	Raw json.RawMessage `json:"-"`
}

// VerifyOptions bound what VerifyEvents accepts. Zero values take the defaults.
type VerifyOptions struct {
	// Tolerance is how far the signature's timestamp may be from this clock (default 300 s).
	Tolerance time.Duration
	// MaxBodyBytes is the most body read (default MaxEventsBodyBytes).
	MaxBodyBytes int64
	// Now is the verifier's clock; the current time when zero.
	Now time.Time
}

func refused(message string) *Error {
	return &Error{Code: CodeUnauthorized, Status: http.StatusUnauthorized, Message: message}
}

func tooLarge(limit int64) *Error {
	return &Error{Code: CodeTooLarge, Status: http.StatusRequestEntityTooLarge,
		Message: "the body is larger than " + strconv.FormatInt(limit, 10) + " bytes"}
}

// VerifyEvents checks a delivery of outgoing events received by an http.Handler and returns
// its events in the room's order. secret is the relay's EVENTS_SECRET. The body is read here,
// at most MaxBodyBytes, and only once the header's timestamp is in bounds.
//
// It returns an *Error whose Status is the answer to give: unauthorized (401) when the header
// is missing, malformed, signed with another secret or over another body, or its timestamp is
// more than Tolerance from this clock; too_large (413) past MaxBodyBytes; bad_request (400)
// when a correctly signed body is not {"events":[…]}.
func VerifyEvents(request *http.Request, secret string, options *VerifyOptions) ([]Event, error) {
	settings, err := verifySettings(secret, options)
	if err != nil {
		return nil, err
	}
	// Several header lines read as one list, as Node's joined header does.
	header := strings.Join(request.Header.Values(SignatureHeader), ",")
	parsed, err := settings.checkHeader(header)
	if err != nil {
		return nil, err
	}
	if request.ContentLength > settings.maxBodyBytes {
		return nil, tooLarge(settings.maxBodyBytes)
	}
	if request.Body == nil {
		return settings.checkBody(parsed, nil)
	}
	body, err := io.ReadAll(io.LimitReader(request.Body, settings.maxBodyBytes+1))
	if err != nil {
		return nil, &Error{Code: CodeBadRequest, Status: http.StatusBadRequest, Message: "the body could not be read", Err: err}
	}
	return settings.checkBody(parsed, body)
}

// VerifyEventsBody is VerifyEvents for a body already read (the raw bytes as received, parsed
// by nothing before) and the X-Relay-Signature header's value.
func VerifyEventsBody(body []byte, signatureHeader, secret string, options *VerifyOptions) ([]Event, error) {
	settings, err := verifySettings(secret, options)
	if err != nil {
		return nil, err
	}
	parsed, err := settings.checkHeader(signatureHeader)
	if err != nil {
		return nil, err
	}
	return settings.checkBody(parsed, body)
}

type verifier struct {
	secret       []byte
	tolerance    time.Duration
	maxBodyBytes int64
	now          time.Time
}

func verifySettings(secret string, options *VerifyOptions) (verifier, error) {
	settings := verifier{secret: []byte(secret), tolerance: SignatureTolerance, maxBodyBytes: MaxEventsBodyBytes, now: time.Now()}
	if options != nil {
		if options.Tolerance != 0 {
			settings.tolerance = options.Tolerance
		}
		if options.MaxBodyBytes != 0 {
			settings.maxBodyBytes = options.MaxBodyBytes
		}
		if !options.Now.IsZero() {
			settings.now = options.Now
		}
	}
	if secret == "" {
		return verifier{}, invalidArgument("the events secret is empty")
	}
	if settings.tolerance < 0 || settings.maxBodyBytes < 0 {
		return verifier{}, invalidArgument("Tolerance and MaxBodyBytes must not be negative")
	}
	return settings, nil
}

// checkHeader reads the header and refuses it before any body is read.
func (v verifier) checkHeader(header string) (signature, error) {
	if header == "" {
		return signature{}, refused("the " + SignatureHeader + " header is missing")
	}
	parsed, ok := parseSignature(header)
	if !ok || len(parsed.v1) == 0 {
		return signature{}, refused("the " + SignatureHeader + " header is malformed")
	}
	if !withinTolerance(parsed.timestamp, v.now, v.tolerance) {
		return signature{}, refused("the signature's timestamp is more than " + v.tolerance.String() + " from this clock")
	}
	return parsed, nil
}

// checkBody matches the body against the header's MACs (any one is enough: secret rotation),
// in constant time, and only then parses it.
func (v verifier) checkBody(parsed signature, body []byte) ([]Event, error) {
	if int64(len(body)) > v.maxBodyBytes {
		return nil, tooLarge(v.maxBodyBytes)
	}
	expected := v1MAC(v.secret, parsed.timestamp, body)
	valid := false
	for _, mac := range parsed.v1 {
		// Every MAC is compared, so the time taken does not tell which one matched.
		if hmac.Equal(mac, expected) {
			valid = true
		}
	}
	if !valid {
		return nil, refused("the signature does not match the body")
	}
	malformed := &Error{Code: CodeBadRequest, Status: http.StatusBadRequest,
		Message: `the body is not {"events":[…]} with an id, type, room and ts in each event`}
	if !utf8.Valid(body) {
		return nil, malformed
	}
	var delivery struct {
		Events []json.RawMessage `json:"events"`
	}
	if json.Unmarshal(body, &delivery) != nil || delivery.Events == nil {
		return nil, malformed
	}
	events := make([]Event, len(delivery.Events))
	for i, raw := range delivery.Events {
		var fields map[string]json.RawMessage
		if json.Unmarshal(raw, &fields) != nil || json.Unmarshal(raw, &events[i]) != nil {
			return nil, malformed
		}
		for _, name := range []string{"id", "type", "room", "ts"} {
			if value := fields[name]; len(value) == 0 || value[0] != '"' {
				return nil, malformed
			}
		}
		events[i].Raw = raw
	}
	return events, nil
}
