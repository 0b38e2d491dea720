package runtime_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/runtime"
)

// On Kafka as in `runner test` (internal/driver's
// TestDeadLetterAfterRepartitionIsTheInput): a late record, found late by
// a window two repartitions after the source and after a map rebuilt its
// value, is dead-lettered as the record that was read, with its key,
// value bytes, timestamp, headers and source, not as the repartition
// record keyed by url.
func TestDeadLetterAfterRepartitionIsTheInput(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.Topic(t, "views")
	kafkatest.CreateTopic(t, brokers, in, 1)
	rt := newRuntime(t, brokers)
	p := runtime.Pipeline{Revision: "r1", Plan: plan(t, "dlq-original", `  source: {topic: `+in+`, timestamp: ts}
  steps:
    - map: {event_id: event_id, url: lower(url), ts: ts}
    - dedupe: {by: event_id, within: 1h}
    - window: {by: url, tumbling: 1m, grace: 0s, aggregates: {views: count}}
  sink: {topic: `+in+`.per-minute}
`)}
	if err := rt.Apply(context.Background(), []runtime.Pipeline{p}); err != nil {
		t.Fatal(err)
	}
	waitAssigned(t, rt, "dlq-original", 1, 30*time.Second)
	kafkaTime := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	late := &kgo.Record{Topic: in, Key: []byte("session-3"), Value: []byte(`{"event_id": "e3", "url": "/HOME", "user": "u3",  "ts": "2026-01-01T10:00:10Z"}`),
		Headers: []kgo.RecordHeader{{Key: "origin", Value: []byte("web")}}, Timestamp: kafkaTime}
	kafkatest.Produce(t, brokers,
		&kgo.Record{Topic: in, Key: []byte("session-1"), Value: []byte(`{"event_id": "e1", "url": "/Home", "ts": "2026-01-01T10:00:05Z"}`)},
		&kgo.Record{Topic: in, Key: []byte("session-2"), Value: []byte(`{"event_id": "e2", "url": "/home", "ts": "2026-01-01T10:01:30Z"}`)},
		late,
	)
	dlq := kafkatest.ReadCommitted(t, brokers, p.Plan.DLQ, 1, 30*time.Second)
	if len(dlq) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dlq))
	}
	got := dlq[0]
	if string(got.Key) != "session-3" || !bytes.Equal(got.Value, late.Value) || !got.Timestamp.Equal(kafkaTime) {
		t.Errorf("dead letter key %q value %s time %v, want the input's: %q %s %v", got.Key, got.Value, got.Timestamp, late.Key, late.Value, kafkaTime)
	}
	headers := map[string]string{}
	for _, h := range got.Headers {
		headers[h.Key] = string(h.Value)
	}
	for k, want := range map[string]string{"origin": "web", engine.HeaderReason: "late", engine.HeaderSource: in + "/0/2", engine.HeaderStep: "window"} {
		if headers[k] != want {
			t.Errorf("header %s = %q, want %q (headers %v)", k, headers[k], want, headers)
		}
	}
	if _, ok := headers[engine.HeaderInput]; ok {
		t.Errorf("the dead letter carries the internal %s header", engine.HeaderInput)
	}
}
