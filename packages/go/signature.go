package edgerelay

// The X-Relay-Signature header: backend requests are signed with v2 (the HMAC-SHA256 under
// WEBHOOK_SECRET of "<t>.<METHOD>.<path>.<raw body>", accepted on every backend route), and the
// relay's outgoing events carry v1 (the HMAC under EVENTS_SECRET of "<t>.<raw body>").

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader is the header that carries request and event signatures.
const SignatureHeader = "X-Relay-Signature"

// SignatureTolerance is how far a signature's timestamp may be from the verifier's clock, as
// in the relay.
const SignatureTolerance = 300 * time.Second

// The relay reads at most this many comma-separated elements, and MACs of at most 32 bytes.
const (
	maxSignatureElements = 8
	maxMACHexDigits      = 64
)

// SignRequest is the X-Relay-Signature value "t=<unix seconds>,v2=<hex>" for one request:
// method as sent (signed in capitals), path exactly as sent (percent-encoded; a query is not
// signed), and the raw body (nil for a GET). The relay takes it for 300 s around its clock.
func SignRequest(secret, method, path string, body []byte, now time.Time) string {
	if end := strings.IndexAny(path, "?#"); end >= 0 {
		path = path[:end]
	}
	timestamp := now.Unix()
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(timestamp, 10) + "." + strings.ToUpper(method) + "." + path + "."))
	mac.Write(body)
	return "t=" + strconv.FormatInt(timestamp, 10) + ",v2=" + hex.EncodeToString(mac.Sum(nil))
}

// v1MAC is the HMAC-SHA256 of "<t>.<body>", what outgoing events are signed with.
func v1MAC(secret []byte, timestamp int64, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(strconv.FormatInt(timestamp, 10) + "."))
	mac.Write(body)
	return mac.Sum(nil)
}

// signature is a parsed X-Relay-Signature header.
type signature struct {
	timestamp int64
	v1, v2    [][]byte
}

// parseSignature reads the header by the relay's rules: the first 8 elements, `t=` a decimal
// integer (a later one replaces an earlier), any number of v1=/v2= MACs. It answers false when
// there is no usable timestamp, or when any MAC is not hex of two digits per byte (the relay
// refuses the whole header then).
func parseSignature(header string) (signature, bool) {
	var parsed signature
	hasTimestamp := false
	parts := strings.SplitN(header, ",", maxSignatureElements+1)
	if len(parts) > maxSignatureElements {
		parts = parts[:maxSignatureElements]
	}
	for _, part := range parts {
		name, value, found := strings.Cut(strings.TrimSpace(part), "=")
		if !found {
			continue
		}
		switch name {
		case "t":
			timestamp, err := parseTimestamp(value)
			parsed.timestamp, hasTimestamp = timestamp, err == nil
		case "v1", "v2":
			if len(value) > maxMACHexDigits {
				return signature{}, false
			}
			mac, err := hex.DecodeString(value)
			if err != nil {
				return signature{}, false
			}
			if name == "v1" {
				parsed.v1 = append(parsed.v1, mac)
			} else {
				parsed.v2 = append(parsed.v2, mac)
			}
		}
	}
	return parsed, hasTimestamp
}

// parseTimestamp takes 1..=19 decimal digits with an optional sign, as the relay does.
func parseTimestamp(value string) (int64, error) {
	digits := strings.TrimLeft(value, "+-")
	if len(value)-len(digits) > 1 || len(digits) == 0 || len(digits) > 19 ||
		strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseInt(value, 10, 64)
}

// withinTolerance reports whether timestamp is at most tolerance from now, without overflow
// for timestamps near the ends of int64.
func withinTolerance(timestamp int64, now time.Time, tolerance time.Duration) bool {
	seconds := int64(tolerance / time.Second)
	current := now.Unix()
	return timestamp >= current-seconds && timestamp <= current+seconds
}
