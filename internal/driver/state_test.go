package driver_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/internal/driver"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/pipeline"
)

// Dedupe by id and a windowed count by url run in three stages, each
// stateful step reading a repartition topic keyed by what it groups by; windows close when a later record or the virtual
// clock moves stream time past end + grace, per partition.
func TestWindowedCountAcrossStages(t *testing.T) {
	reg := all.New()
	src := `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: clicks}
spec:
  source: {topic: clicks, timestamp: ts}
  steps:
    - dedupe: {by: id, within: 1h}
    - window: {by: url, tumbling: 1m, grace: 10s, aggregates: {clicks: count}}
  sink: {topic: counts}
`
	plan, err := (&pipeline.Compiler{Registry: reg}).Compile("clicks.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Stages) != 3 {
		t.Fatalf("%d stages, want 3 (read, dedupe by id, window by url):\n%s", len(plan.Stages), plan.Describe())
	}
	d, err := driver.New(plan)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, v := range []string{
		`{"id": 1, "url": "/a", "ts": "2026-01-01T00:00:05Z"}`,
		`{"id": 2, "url": "/a", "ts": "2026-01-01T00:00:20Z"}`,
		`{"id": 2, "url": "/a", "ts": "2026-01-01T00:00:21Z"}`, // duplicate
		`{"id": 3, "url": "/b", "ts": "2026-01-01T00:00:30Z"}`,
	} {
		if err := d.Produce(ctx, engine.Message{Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := d.Topic("counts"); len(got) != 0 {
		t.Fatalf("results before any window closed: %v", got)
	}
	// 00:01:09 is not yet end + grace of [00:00, 00:01).
	if err := d.Produce(ctx, engine.Message{Value: []byte(`{"id": 4, "url": "/a", "ts": "2026-01-01T00:01:09Z"}`)}); err != nil {
		t.Fatal(err)
	}
	if got := d.Topic("counts"); len(got) != 0 {
		t.Fatalf("window closed before end + grace: %s", got[0].Value)
	}
	if err := d.Advance(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range d.Topic("counts") {
		got = append(got, string(m.Key)+"="+string(m.Value))
	}
	want := `/a={"clicks":2,"window":{"end":"2026-01-01T00:01:00Z","start":"2026-01-01T00:00:00Z"}}` + "\n" +
		`/b={"clicks":1,"window":{"end":"2026-01-01T00:01:00Z","start":"2026-01-01T00:00:00Z"}}`
	if strings.Join(got, "\n") != want {
		t.Errorf("counts:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
}
