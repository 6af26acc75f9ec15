package edgerelay_test

// Examples for the package documentation, compiled by go test (and vetted): the README's
// receiving-events handler and a broadcast's per-room results.

import (
	"context"
	"errors"
	"log"
	"net/http"
	"os"

	edgerelay "github.com/edge-relay/edge-relay/packages/go"
)

func ExampleVerifyEvents() {
	http.HandleFunc("/relay-events", func(w http.ResponseWriter, r *http.Request) {
		events, err := edgerelay.VerifyEvents(r, os.Getenv("EVENTS_SECRET"), nil)
		var failure *edgerelay.Error
		if errors.As(err, &failure) {
			w.WriteHeader(failure.Status) // 401, 413 or 400: the relay retries and dead-letters
			return
		}
		for _, event := range events { // deduplicate on event.ID: delivery is at least once
			log.Println(event.Type, event.Room, event.Seq)
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func ExampleClient_Broadcast() {
	relay, err := edgerelay.New(edgerelay.Options{URL: "https://relay.example.com", WebhookSecret: os.Getenv("RELAY_WEBHOOK_SECRET")})
	if err != nil {
		log.Fatal(err)
	}
	result, err := relay.Broadcast(context.Background(), []string{"chat:1", "operators"}, "order:new",
		map[string]int{"id": 42}, &edgerelay.BroadcastOptions{ID: "order-42"})
	var failure *edgerelay.Error
	if errors.As(err, &failure) {
		log.Fatalf("%s (%d, after %d attempts): %s", failure.Code, failure.Status, failure.Attempts, failure.Message)
	}
	for _, r := range result.Results {
		if r.Error != nil {
			log.Println(r.Room, r.Error.Code, r.Error.Message)
		}
	}
}
