package driver_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/internal/driver"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/record"
)

// docs/pipelines.md promises that a dead letter is the original input.
// After a repartition the failing record is a repartition record, with
// the grouping key and a rebuilt value; its dead letter must still be the
// input as it was read: key, value bytes, timestamp, headers and source.
// testdata/dlq-original runs the same through `runner test`.
func TestDeadLetterAfterRepartitionIsTheInput(t *testing.T) {
	var out bytes.Buffer
	sum, err := (&driver.Runner{Registry: all.New(), Out: &out}).Run(context.Background(), "testdata/dlq-original")
	if err != nil || !sum.OK() || sum.Passed != 1 {
		t.Fatalf("runner test testdata/dlq-original: %+v, %v\n%s", sum, err, out.String())
	}

	data := []byte(`apiVersion: sluice/v1
kind: Pipeline
metadata: {name: dlq-original}
spec:
  source: {topic: views, timestamp: ts}
  steps:
    - map: {event_id: event_id, url: lower(url), ts: ts}
    - dedupe: {by: event_id, within: 1h}
    - window: {by: url, tumbling: 1m, grace: 0s, aggregates: {views: count}}
  sink: {topic: views.per-minute}
`)
	plan, err := (&pipeline.Compiler{Registry: all.New()}).Compile("p.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	d, err := driver.New(plan)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kafkaTime := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	late := engine.Message{Key: []byte("session-3"), Value: []byte(`{"event_id": "e3", "url": "/HOME", "user": "u3",  "ts": "2026-01-01T10:00:10Z"}`),
		Headers: []record.Header{{Key: "origin", Value: []byte("web")}}, Timestamp: kafkaTime}
	for _, m := range []engine.Message{
		{Key: []byte("session-1"), Value: []byte(`{"event_id": "e1", "url": "/Home", "ts": "2026-01-01T10:00:05Z"}`)},
		{Key: []byte("session-2"), Value: []byte(`{"event_id": "e2", "url": "/home", "ts": "2026-01-01T10:01:30Z"}`)},
		late,
	} {
		if err := d.Produce(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	dlq := d.Topic(plan.DLQ)
	if len(dlq) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dlq))
	}
	got := dlq[0]
	if string(got.Key) != "session-3" || !bytes.Equal(got.Value, late.Value) || !got.Timestamp.Equal(kafkaTime) {
		t.Errorf("dead letter key %q value %s time %v, want the input's: %q %s %v", got.Key, got.Value, got.Timestamp, late.Key, late.Value, kafkaTime)
	}
	if h := header(got, "origin"); h != "web" {
		t.Errorf("the input's header origin is %q in the dead letter", h)
	}
	if h := header(got, engine.HeaderSource); h != "views/0/2" {
		t.Errorf("sluice.source is %q, want the input's views/0/2", h)
	}
	if h := header(got, engine.HeaderReason); h != "late" {
		t.Errorf("reason %q, want late", h)
	}
	// The carried input is internal: not in the dead letter, not in the
	// outputs.
	for _, topic := range append([]string{plan.DLQ}, plan.Topics()...) {
		for _, m := range d.Topic(topic) {
			if strings.HasPrefix(topic, "dlq-original-") {
				continue // repartition topics carry it
			}
			for _, h := range m.Headers {
				if h.Key == engine.HeaderInput {
					t.Errorf("%s carries %s", topic, engine.HeaderInput)
				}
			}
		}
	}
}
