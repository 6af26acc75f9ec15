package edgerelay

// Request signatures against the relay's reference vector and the TypeScript SDK, and the
// header parsed by the relay's rules.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

func TestSignRequestReferenceVector(t *testing.T) {
	// The vector of src/webhook.rs `macs_match_a_reference_hmac` (taken from openssl there).
	got := SignRequest("webhook-secret", "POST", "/v1/broadcast", []byte("{}"), issued)
	want := "t=1700000000,v2=9d13786b9d891af5edcea3fb8cd4d3afe20acf1c50cfcfd4aa70dc32c37c868a"
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestSignRequestSignsMethodInCapitalsAndPathWithoutQuery(t *testing.T) {
	// From @edge-relay/server's signRequest with the same arguments.
	got := SignRequest("webhook-secret", "put", "/v1/rooms/city%3A%D0%A1/members?x=1", []byte(`[{"id":"ann"}]`), issued)
	want := "t=1700000000,v2=c383963f1daf6a3758d1509dc1729f37d1d80c9c904bf85f106126f35b1431ad"
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	mac := hmac.New(sha256.New, []byte("k"))
	mac.Write([]byte("1700000000.GET./v1/rooms/a/members."))
	if got, want := SignRequest("k", "get", "/v1/rooms/a/members#x", nil, issued), "t=1700000000,v2="+hex.EncodeToString(mac.Sum(nil)); got != want {
		t.Fatalf("GET without body: got %s, want %s", got, want)
	}
}

func TestParseSignature(t *testing.T) {
	mac := strings.Repeat("ab", 32)
	parsed, ok := parseSignature(" t=1700000000 , v1=" + mac + ",v1=" + strings.ToUpper(mac) + ",v2=00,x=y,junk")
	if !ok || parsed.timestamp != 1_700_000_000 || len(parsed.v1) != 2 || len(parsed.v2) != 1 {
		t.Fatalf("got %+v %v", parsed, ok)
	}
	refusedHeaders := map[string]string{
		"no timestamp":          "v1=" + mac,
		"timestamp not decimal": "t=17e8,v1=" + mac,
		"double sign":           "t=--1,v1=" + mac,
		"20 digits":             "t=17000000000000000000,v1=" + mac,
		"odd hex":               "t=1,v1=abc",
		"not hex":               "t=1,v1=zz",
		"MAC over 32 bytes":     "t=1,v1=" + mac + "00",
		"t past 8 elements":     "a,b,c,d,e,f,g,h,t=1,v1=" + mac,
		"a later t unreadable":  "t=1,t=x,v1=" + mac,
	}
	for name, header := range refusedHeaders {
		if _, ok := parseSignature(header); ok {
			t.Errorf("%s: %q was accepted", name, header)
		}
	}
}

func TestWithinTolerance(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for timestamp, want := range map[int64]bool{
		1_700_000_000: true, 1_700_000_300: true, 1_699_999_700: true,
		1_700_000_301: false, 1_699_999_699: false, -1 << 63: false, 1<<63 - 1: false,
	} {
		if got := withinTolerance(timestamp, now, SignatureTolerance); got != want {
			t.Errorf("withinTolerance(%d) = %v, want %v", timestamp, got, want)
		}
	}
}
