package edgerelay

// Tokens: byte for byte the token the TypeScript server SDK signs for the same claims, the
// claims the relay reads, and the relay's limits refused before signing.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var issued = time.Unix(1_700_000_000, 0)

func TestSignTokenMatchesTheTypeScriptSDK(t *testing.T) {
	// From @edge-relay/server's signToken with the same options (name with <&>, a Cyrillic grant).
	const fromTypeScript = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." +
		"eyJzdWIiOiJhbm4iLCJuYW1lIjoiQW5uIDwmPiIsInJvbGUiOiJjdXN0b21lciIsInJvb21zIjpbImNoYXQ6KiIsItCh0LDRgNCw0YLQvtCyIl0sImlzcyI6Imh0dHBzOi8vYXBwLmV4YW1wbGUiLCJhdWQiOiJyZWxheSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAwfQ." +
		"yxU5gD1qt7RReBMWOFmQq74WwzlS07gHa_9m5gz1Y8c"
	token, err := SignToken(TokenOptions{
		Secret: "jwt-secret", Sub: "ann", Name: "Ann <&>", Role: "customer", Rooms: []string{"chat:*", "Саратов"},
		TTL: time.Hour, Issuer: "https://app.example", Audience: []string{"relay"}, Now: issued,
	})
	if err != nil {
		t.Fatal(err)
	}
	if token != fromTypeScript {
		t.Fatalf("token differs from the TypeScript SDK's:\n got %s\nwant %s", token, fromTypeScript)
	}
}

// decodeToken checks the HS256 signature independently and returns the header and claims.
func decodeToken(t *testing.T, token, secret string) (map[string]any, map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if got := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); got != parts[2] {
		t.Fatalf("signature %s, want %s", parts[2], got)
	}
	decode := func(part string) map[string]any {
		raw, err := base64.RawURLEncoding.DecodeString(part)
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	return decode(parts[0]), decode(parts[1])
}

func TestSignTokenClaims(t *testing.T) {
	token, err := SignToken(TokenOptions{Secret: "s", Sub: "max", TTL: 90*time.Second + 900*time.Millisecond,
		Audience: []string{"a", "b"}, Now: issued})
	if err != nil {
		t.Fatal(err)
	}
	header, claims := decodeToken(t, token, "s")
	if !reflect.DeepEqual(header, map[string]any{"alg": "HS256", "typ": "JWT"}) {
		t.Errorf("header %v", header)
	}
	want := map[string]any{
		"sub": "max", "rooms": []any{}, "aud": []any{"a", "b"},
		"iat": float64(1_700_000_000), "exp": float64(1_700_000_090), // whole seconds of the TTL
	}
	if !reflect.DeepEqual(claims, want) {
		t.Errorf("claims %v, want %v", claims, want)
	}
}

func TestSignTokenRefusesWhatTheRelayWould(t *testing.T) {
	ok := TokenOptions{Secret: "s", Sub: "ann", Rooms: []string{"chat:*"}, TTL: time.Minute}
	cases := map[string]func(o *TokenOptions){
		"empty secret":  func(o *TokenOptions) { o.Secret = "" },
		"empty sub":     func(o *TokenOptions) { o.Sub = "" },
		"257-byte sub":  func(o *TokenOptions) { o.Sub = strings.Repeat("x", 257) },
		"257-byte name": func(o *TokenOptions) { o.Name = strings.Repeat("é", 129) },
		"257-byte role": func(o *TokenOptions) { o.Role = strings.Repeat("x", 257) },
		"257 grants":    func(o *TokenOptions) { o.Rooms = make([]string, 257) },
		"TTL under 1 s": func(o *TokenOptions) { o.TTL = 999 * time.Millisecond },
		"negative TTL":  func(o *TokenOptions) { o.TTL = -time.Hour },
		"token over 8 KiB": func(o *TokenOptions) {
			o.Rooms = []string{strings.Repeat("r", 200), strings.Repeat("s", 6000)}
		},
	}
	for name, change := range cases {
		options := ok
		change(&options)
		_, err := SignToken(options)
		var failure *Error
		if !errors.As(err, &failure) || failure.Code != CodeInvalidArgument {
			t.Errorf("%s: got %v, want an invalid_argument *Error", name, err)
		}
	}
	if _, err := SignToken(ok); err != nil {
		t.Errorf("the valid options were refused: %v", err)
	}
	// At the limits exactly: accepted.
	ok.Sub, ok.Rooms = strings.Repeat("x", 256), make([]string, 256)
	if _, err := SignToken(ok); err != nil {
		t.Errorf("256 bytes and 256 grants were refused: %v", err)
	}
}
