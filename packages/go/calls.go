package edgerelay

// The relay's routes as methods of Client: broadcast (idempotent by id, rooms that alone
// failed sent again), members, and a user's publish and history with a user token.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxIDChars bounds broadcast ids and publish cids, as the relay does.
const maxIDChars = 64

// RoomError is why one room of a broadcast failed.
type RoomError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// RoomResult is one room's outcome of a broadcast: its Seq, or why that room alone failed.
type RoomResult struct {
	Room  string     `json:"room"`
	Seq   int64      `json:"seq,omitempty"`
	Error *RoomError `json:"error,omitempty"`
}

// BroadcastResult is what a broadcast did.
type BroadcastResult struct {
	// ID is the idempotency key used (yours, or the one generated): send it again to retry safely.
	ID string
	// Results has one entry per distinct room, in the order given.
	Results []RoomResult
}

// BroadcastOptions are a broadcast's optional settings.
type BroadcastOptions struct {
	// ID is the idempotency key, 1..=64 characters, per room: a repeat delivers nothing again.
	// Empty: a random one is generated, once per call, so that retries never deliver twice.
	ID string
}

// Broadcast stores event with data (anything encoding/json encodes, at most 64 KiB) in each
// room (1..=100) and delivers it to the room's sockets. Failures worth retrying (429, 5xx,
// network, timeout) are retried with the same id, and so are rooms that alone failed with
// internal or rate_limited, without delivering twice. It returns an error when the relay
// refused the request (credentials, body) or no room was answered; a room that still fails
// after the last attempt is reported in its result.
func (c *Client) Broadcast(ctx context.Context, rooms []string, event string, data any, options *BroadcastOptions) (*BroadcastResult, error) {
	if len(rooms) == 0 {
		return nil, invalidArgument("rooms must name at least one room")
	}
	if event == "" {
		return nil, invalidArgument("the event is required")
	}
	id := ""
	if options != nil {
		id = options.ID
	}
	id, err := idOrNew("id", id)
	if err != nil {
		return nil, err
	}
	encoded, err := marshalJSON(data)
	if err != nil {
		return nil, invalidArgument("data cannot be sent as JSON: %v", err)
	}
	distinct := make([]string, 0, len(rooms))
	seen := make(map[string]bool, len(rooms))
	for _, room := range rooms {
		if !seen[room] {
			seen[room] = true
			distinct = append(distinct, room)
		}
	}
	results := make(map[string]RoomResult, len(distinct))
	pending := distinct
	err = c.withRetries(ctx, func(attempts int) error {
		body, err := marshalJSON(struct {
			Rooms []string `json:"rooms"`
			Event string   `json:"event"`
			Data  jsonText `json:"data"`
			ID    string   `json:"id"`
		}{pending, event, encoded, id})
		if err != nil {
			return invalidArgument("the broadcast cannot be sent as JSON")
		}
		var answer struct {
			Results []RoomResult `json:"results"`
		}
		if err := c.attempt(ctx, call{method: http.MethodPost, path: "/v1/broadcast", body: body}, &answer); err != nil {
			return err
		}
		for _, result := range answer.Results {
			results[result.Room] = result
		}
		var again []string
		for _, room := range pending {
			result, answered := results[room]
			if !answered {
				return &Error{Code: CodeInvalidResponse, Status: http.StatusOK, Message: "the broadcast answer misses room " + strconv.Quote(room)}
			}
			if result.Error != nil && retryableRoomCodes[result.Error.Code] {
				again = append(again, room)
			}
		}
		pending = again
		if len(pending) == 0 {
			return nil
		}
		first := results[pending[0]].Error
		return retryable{&Error{Code: first.Code, Status: http.StatusOK, Message: first.Message}}
	})
	// Rooms answered in an earlier round keep their results; only a call where no room was
	// answered at all is a failure of the whole broadcast.
	if err != nil && len(results) == 0 {
		return nil, err
	}
	if err != nil {
		for _, room := range pending {
			// A room answered in this round keeps its answer (a seq is never overwritten).
			if _, answered := results[room]; !answered {
				roomError := &RoomError{Code: CodeInternal, Message: err.Error()}
				var failure *Error
				if errors.As(err, &failure) {
					roomError = &RoomError{Code: failure.Code, Message: failure.Message}
				}
				results[room] = RoomResult{Room: room, Error: roomError}
			}
		}
	}
	ordered := make([]RoomResult, len(distinct))
	for i, room := range distinct {
		ordered[i] = results[room]
	}
	return &BroadcastResult{ID: id, Results: ordered}, nil
}

// jsonText is JSON already encoded, sent as it is (json.RawMessage would be compacted again).
type jsonText []byte

func (text jsonText) MarshalJSON() ([]byte, error) { return text, nil }

// Member is one entry of a room's members list.
type Member struct {
	ID   string `json:"id"`
	Role string `json:"role,omitempty"`
}

// Members is a room's members list as the relay answers it.
type Members struct {
	Room    string   `json:"room"`
	Members []Member `json:"members"`
}

// SetMembers replaces the room's members (at most 1 000): they drive the user:<id> update
// feeds and admit users to members-only rooms. An empty list admits nobody there.
func (c *Client) SetMembers(ctx context.Context, room string, members []Member) (*Members, error) {
	path, err := roomPath(room, "/members")
	if err != nil {
		return nil, err
	}
	if members == nil {
		members = []Member{}
	}
	body, err := marshalJSON(members)
	if err != nil {
		return nil, invalidArgument("members cannot be sent as JSON")
	}
	var answer Members
	if err := c.do(ctx, call{method: http.MethodPut, path: path, body: body}, &answer); err != nil {
		return nil, err
	}
	return &answer, nil
}

// GetMembers returns the room's members.
func (c *Client) GetMembers(ctx context.Context, room string) (*Members, error) {
	path, err := roomPath(room, "/members")
	if err != nil {
		return nil, err
	}
	var answer Members
	if err := c.do(ctx, call{method: http.MethodGet, path: path}, &answer); err != nil {
		return nil, err
	}
	return &answer, nil
}

// User is who sent a message or whom an event is about, as their token named them.
type User struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	Role string `json:"role,omitempty"`
}

// Message is a stored message as clients and history see it.
type Message struct {
	Type  string `json:"type"`
	Room  string `json:"room"`
	Seq   int64  `json:"seq"`
	ID    string `json:"id"`
	Event string `json:"event"`
	// Data is the message's JSON as stored; decode it with json.Unmarshal.
	Data json.RawMessage `json:"data"`
	// From is nil for a backend's broadcast.
	From *User  `json:"from"`
	CID  string `json:"cid,omitempty"`
	TS   string `json:"ts"`
	// RefSeq is the message an edit or delete record changed (event message.edited/deleted).
	RefSeq int64 `json:"ref_seq,omitempty"`
}

// PublishOptions are a user's publish settings.
type PublishOptions struct {
	// Token is a user token granting the room: the message is sent as that user.
	Token string
	// Event names the message; the relay's default when empty.
	Event string
	// CID is the idempotency key (1..=64 characters); generated when empty so retries are safe.
	CID string
}

// Receipt is the relay's answer to a publish.
type Receipt struct {
	Seq       int64  `json:"seq"`
	ID        string `json:"id"`
	TS        string `json:"ts"`
	Duplicate bool   `json:"duplicate"`
}

// Publish stores data in the room as the token's user and delivers it, idempotent by CID.
func (c *Client) Publish(ctx context.Context, room string, data any, options PublishOptions) (*Receipt, error) {
	path, err := roomPath(room, "/messages")
	if err != nil {
		return nil, err
	}
	if options.Token == "" {
		return nil, invalidArgument("a user token is required")
	}
	cid, err := idOrNew("cid", options.CID)
	if err != nil {
		return nil, err
	}
	encoded, err := marshalJSON(data)
	if err != nil {
		return nil, invalidArgument("data cannot be sent as JSON: %v", err)
	}
	body, err := marshalJSON(struct {
		CID   string   `json:"cid"`
		Event string   `json:"event,omitempty"`
		Data  jsonText `json:"data"`
	}{cid, options.Event, encoded})
	if err != nil {
		return nil, invalidArgument("the publish cannot be sent as JSON")
	}
	var answer Receipt
	if err := c.do(ctx, call{method: http.MethodPost, path: path, body: body, token: options.Token}, &answer); err != nil {
		return nil, err
	}
	return &answer, nil
}

// HistoryOptions select a page of a room's history.
type HistoryOptions struct {
	// Token is a user token granting the room.
	Token string
	// After, when set: the oldest messages with seq > *After.
	After *int64
	// Before, when set: messages with seq < *Before; alone, the newest ones below it.
	Before *int64
	// Limit is 1..=200 messages; 0: the relay's default (50).
	Limit int
}

// HistoryPage is a page of history, ascending by seq.
type HistoryPage struct {
	Messages []Message `json:"messages"`
	HasMore  bool      `json:"has_more"`
}

// History reads a page of the room's history with a user token that grants the room.
func (c *Client) History(ctx context.Context, room string, options HistoryOptions) (*HistoryPage, error) {
	path, err := roomPath(room, "/messages")
	if err != nil {
		return nil, err
	}
	if options.Token == "" {
		return nil, invalidArgument("a user token is required")
	}
	query := url.Values{}
	for name, value := range map[string]*int64{"after": options.After, "before": options.Before} {
		if value != nil {
			if *value < 0 {
				return nil, invalidArgument("%s must not be negative", name)
			}
			query.Set(name, strconv.FormatInt(*value, 10))
		}
	}
	if options.Limit < 0 {
		return nil, invalidArgument("limit must not be negative")
	}
	if options.Limit > 0 {
		query.Set("limit", strconv.Itoa(options.Limit))
	}
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	var answer HistoryPage
	if err := c.do(ctx, call{method: http.MethodGet, path: path, token: options.Token}, &answer); err != nil {
		return nil, err
	}
	return &answer, nil
}

// roomPath is /v1/rooms/<room><rest> with the room as one percent-encoded path segment;
// "." and ".." cannot be one (URLs resolve them away).
func roomPath(room, rest string) (string, error) {
	if room == "" || room == "." || room == ".." {
		return "", invalidArgument("room %q cannot be named in a URL path", room)
	}
	return "/v1/rooms/" + escapeSegment(room) + rest, nil
}

// escapeSegment percent-encodes all but the unreserved characters, as JavaScript's
// encodeURIComponent does, so both SDKs send (and sign) the same paths.
func escapeSegment(value string) string {
	var out strings.Builder
	for i := 0; i < len(value); i++ {
		b := value[i]
		if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("-_.!~*'()", b) >= 0 {
			out.WriteByte(b)
		} else {
			fmt.Fprintf(&out, "%%%02X", b)
		}
	}
	return out.String()
}

// newID is a random version 4 UUID, the idempotency key of a call made without one.
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", &Error{Code: CodeInvalidArgument, Message: "no randomness for an idempotency key", Err: err}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	text := hex.EncodeToString(b[:])
	return text[:8] + "-" + text[8:12] + "-" + text[12:16] + "-" + text[16:20] + "-" + text[20:], nil
}

// idOrNew is id, or a new one when empty, checked against the relay's bounds.
func idOrNew(what, id string) (string, error) {
	if id == "" {
		return newID()
	}
	if utf8.RuneCountInString(id) > maxIDChars {
		return "", invalidArgument("%s must be 1..=%d characters", what, maxIDChars)
	}
	return id, nil
}
