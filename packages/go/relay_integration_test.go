package edgerelay

// Against a real relay (wrangler dev in scripts/test): a signed broadcast is stored once per id
// and read back through the history with a SignToken token, a user's publish is idempotent by
// cid, members round-trip over a percent-encoded path, and wrong secrets are typed 401s.
// Needs RELAY_URL, JWT_SECRET and WEBHOOK_SECRET; without them each test is skipped (and
// scripts/test fails its run if any is).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"testing"
	"time"
)

type relayEnv struct {
	client    *Client
	url       string
	jwtSecret string
	run       string
}

func liveRelay(t *testing.T) relayEnv {
	t.Helper()
	env := relayEnv{url: os.Getenv("RELAY_URL"), jwtSecret: os.Getenv("JWT_SECRET")}
	webhookSecret := os.Getenv("WEBHOOK_SECRET")
	if env.url == "" || env.jwtSecret == "" || webhookSecret == "" {
		t.Skip("SKIPPED: needs a relay (RELAY_URL, JWT_SECRET and WEBHOOK_SECRET)")
	}
	client, err := New(Options{URL: env.url, WebhookSecret: webhookSecret})
	if err != nil {
		t.Fatal(err)
	}
	env.client = client
	env.run = fmt.Sprintf("%x-%s", time.Now().UnixNano(), t.Name())
	return env
}

func (env relayEnv) token(t *testing.T, sub string) string {
	t.Helper()
	token, err := SignToken(TokenOptions{Secret: env.jwtSecret, Sub: sub, Name: "Go SDK", Rooms: []string{"go-sdk-*"}, TTL: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func withDeadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRelayBroadcastIsStoredOncePerID(t *testing.T) {
	env := liveRelay(t)
	ctx := withDeadline(t)
	room := "go-sdk-" + env.run + ":Саратов"
	first, err := env.client.Broadcast(ctx, []string{room, room}, "order:new", map[string]int{"order": 42}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Results) != 1 || first.Results[0].Room != room || first.Results[0].Seq < 1 || first.Results[0].Error != nil {
		t.Fatalf("results %+v", first.Results)
	}
	again, err := env.client.Broadcast(ctx, []string{room}, "order:new", map[string]int{"order": 42}, &BroadcastOptions{ID: first.ID})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Results, first.Results) {
		t.Errorf("the same id again answered %+v, want the original %+v", again.Results, first.Results)
	}
	after := int64(0)
	page, err := env.client.History(ctx, room, HistoryOptions{Token: env.token(t, "go-reader"), After: &after})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 {
		t.Fatalf("history holds %d messages, want the broadcast once: %+v", len(page.Messages), page.Messages)
	}
	stored := page.Messages[0]
	if stored.Seq != first.Results[0].Seq || stored.Event != "order:new" || stored.From != nil || string(stored.Data) != `{"order":42}` {
		t.Errorf("stored %+v (data %s)", stored, stored.Data)
	}
}

func TestRelayPublishAsAUserIsIdempotentByCID(t *testing.T) {
	env := liveRelay(t)
	ctx := withDeadline(t)
	room := "go-sdk-" + env.run
	token := env.token(t, "go-ann")
	options := PublishOptions{Token: token, Event: "note", CID: "c-1"}
	receipt, err := env.client.Publish(ctx, room, "hello", options)
	if err != nil {
		t.Fatal(err)
	}
	repeat, err := env.client.Publish(ctx, room, "hello", options)
	if err != nil {
		t.Fatal(err)
	}
	if receipt.Duplicate || !repeat.Duplicate || repeat.Seq != receipt.Seq || repeat.ID != receipt.ID {
		t.Errorf("receipts %+v then %+v", receipt, repeat)
	}
	page, err := env.client.History(ctx, room, HistoryOptions{Token: token, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 || page.Messages[0].From == nil || page.Messages[0].From.ID != "go-ann" || page.Messages[0].CID != "c-1" {
		t.Errorf("history %+v", page.Messages)
	}
	var text string
	if err := json.Unmarshal(page.Messages[0].Data, &text); err != nil || text != "hello" {
		t.Errorf("data %s", page.Messages[0].Data)
	}
}

func TestRelaySetMembersThenGetMembers(t *testing.T) {
	env := liveRelay(t)
	ctx := withDeadline(t)
	room := "go-sdk-" + env.run + ":support&7+é="
	members := []Member{{ID: "max", Role: "manager"}, {ID: "ann", Role: "customer"}, {ID: "bob"}}
	set, err := env.client.SetMembers(ctx, room, members)
	if err != nil {
		t.Fatal(err)
	}
	got, err := env.client.GetMembers(ctx, room)
	if err != nil {
		t.Fatal(err)
	}
	byID := func(list []Member) []Member {
		sorted := append([]Member(nil), list...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
		return sorted
	}
	if set.Room != room || got.Room != room || !reflect.DeepEqual(byID(set.Members), byID(members)) || !reflect.DeepEqual(byID(got.Members), byID(members)) {
		t.Errorf("set %+v, got %+v, want %+v in %q", set, got, members, room)
	}
	if _, err := env.client.SetMembers(ctx, room, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := env.client.GetMembers(ctx, room); err != nil || len(got.Members) != 0 {
		t.Errorf("after an empty list: %+v, %v", got, err)
	}
}

func TestRelayRefusesWrongSecretsWithTypedErrors(t *testing.T) {
	env := liveRelay(t)
	ctx := withDeadline(t)
	wrong, err := New(Options{URL: env.url, WebhookSecret: "not-the-secret"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = wrong.Broadcast(ctx, []string{"go-sdk-" + env.run}, "e", 1, nil)
	var failure *Error
	if !errors.As(err, &failure) || failure.Code != CodeUnauthorized || failure.Status != 401 || failure.Attempts != 1 {
		t.Errorf("a wrong webhook secret: %v", err)
	}
	forged, err := SignToken(TokenOptions{Secret: "not-the-jwt-secret", Sub: "go-eve", Rooms: []string{"*"}, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	_, err = env.client.History(ctx, "go-sdk-"+env.run, HistoryOptions{Token: forged})
	if !errors.As(err, &failure) || failure.Code != CodeUnauthorized || failure.Status != 401 {
		t.Errorf("a token under another secret: %v", err)
	}
}
