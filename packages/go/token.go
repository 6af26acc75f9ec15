package edgerelay

// User tokens: HS256 JWTs with the claims the relay reads (sub, name, role, rooms, iat, exp,
// and iss/aud for relays that check them), signed with the relay's JWT_SECRET.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"time"
)

// The relay's limits: sub (and name/role, else dropped) 1..=256 bytes, 256 grants, 8 KiB.
const (
	maxClaimBytes = 256
	maxGrants     = 256
	maxTokenBytes = 8 * 1024
)

// TokenOptions are the claims of one user token.
type TokenOptions struct {
	// Secret is the relay's JWT_SECRET.
	Secret string
	// Sub is the user id, 1..=256 bytes; the token always grants the user's feed user:<Sub> too.
	Sub string
	// Name is shown to other users of a room; empty: not sent.
	Name string
	// Role is shown to other users, and moderator roles may edit others' messages; empty: not sent.
	Role string
	// Rooms are the grants: exact names, prefixes ending in * (chat:*), or * for every room.
	Rooms []string
	// TTL is the lifetime, at least a second (counted in whole seconds). Keep it short: the
	// relay closes sockets at exp.
	TTL time.Duration
	// Issuer is iss, for relays configured with JWT_ISSUER; empty: not sent.
	Issuer string
	// Audience is aud, for relays configured with JWT_AUDIENCE (one value is sent as a string).
	Audience []string
	// Now is the issue time; the current time when zero.
	Now time.Time
}

// claims in the order they are signed; omitempty leaves out what was not given.
type claims struct {
	Sub   string   `json:"sub"`
	Name  string   `json:"name,omitempty"`
	Role  string   `json:"role,omitempty"`
	Rooms []string `json:"rooms"`
	Iss   string   `json:"iss,omitempty"`
	Aud   any      `json:"aud,omitempty"`
	Iat   int64    `json:"iat"`
	Exp   int64    `json:"exp"`
}

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// SignToken signs an HS256 JWT that the relay accepts for Sub with the given room grants.
func SignToken(options TokenOptions) (string, error) {
	if options.Secret == "" {
		return "", invalidArgument("the JWT secret is empty")
	}
	if len(options.Sub) == 0 || len(options.Sub) > maxClaimBytes {
		return "", invalidArgument("sub must be 1..=%d bytes", maxClaimBytes)
	}
	if len(options.Name) > maxClaimBytes || len(options.Role) > maxClaimBytes {
		return "", invalidArgument("name and role must be at most %d bytes", maxClaimBytes)
	}
	if len(options.Rooms) > maxGrants {
		return "", invalidArgument("rooms may list at most %d grants", maxGrants)
	}
	if options.TTL < time.Second {
		return "", invalidArgument("the TTL must be at least a second")
	}
	now := options.Now
	if now.IsZero() {
		now = time.Now()
	}
	iat := now.Unix()
	rooms := options.Rooms
	if rooms == nil {
		rooms = []string{} // the relay reads a list, never null
	}
	body := claims{
		Sub: options.Sub, Name: options.Name, Role: options.Role, Rooms: rooms,
		Iss: options.Issuer, Iat: iat, Exp: iat + int64(options.TTL/time.Second),
	}
	switch len(options.Audience) {
	case 0:
	case 1:
		body.Aud = options.Audience[0]
	default:
		body.Aud = options.Audience
	}
	payload, err := marshalJSON(body)
	if err != nil {
		return "", invalidArgument("the claims cannot be sent as JSON")
	}
	signingInput := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	mac := hmac.New(sha256.New, []byte(options.Secret))
	mac.Write([]byte(signingInput))
	token := signingInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	if len(token) > maxTokenBytes {
		return "", invalidArgument("the token is over %d bytes (too many or too long grants)", maxTokenBytes)
	}
	return token, nil
}

// marshalJSON is json.Marshal without HTML escaping (<, >, & stay as written) and without the
// encoder's trailing newline: the bytes signed are the bytes sent.
func marshalJSON(value any) ([]byte, error) {
	var out bytes.Buffer
	encoder := json.NewEncoder(&out)
	encoder.SetEscapeHTML(false)
	if err := encoder.Encode(value); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}
