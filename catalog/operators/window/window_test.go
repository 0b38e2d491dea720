package window_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/catalog/operators/window"
	"github.com/sluicehq/sluice/catalog/operatortest"
)

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, operatortest.Registry(t, window.Register), "window")
}

// Bad configurations fail when the step is built, naming what is wrong.
func TestConfigErrors(t *testing.T) {
	reg := operatortest.Registry(t, window.Register)
	for step, want := range map[string]string{
		"tumbling: 1m\naggregates: {n: count}\n":                                "grace",
		"tumbling: soon\ngrace: 0s\naggregates: {n: count}\n":                   `"soon" is not a duration`,
		"tumbling: 1m\ngrace: -1s\naggregates: {n: count}\n":                    "grace",
		"hopping: {size: 1m, advance: 2m}\ngrace: 0s\naggregates: {n: count}\n": "advance",
		"session: {gap: 5m}\ngrace: 0s\naggregates: {n: {median: x}}\n":         "does not match the schema",
		"tumbling: 1m\ngrace: 0s\naggregates: {n: {sum: 'amount >'}}\n":         "example.yaml:3:",
		"tumbling: 1m\ngrace: 0s\naggregates: {t: {top_n: url, n: 0, by: s}}\n": "does not match the schema",
		"tumbling: 1m\nsession: {gap: 1m}\ngrace: 0s\naggregates: {n: count}\n": "does not match the schema",
	} {
		_, err := operatortest.Build(reg, "window", step)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error containing %q", step, err, want)
		}
	}
}

// Percentiles, count_distinct and top_n through the operator.
func TestSketchAggregates(t *testing.T) {
	reg := operatortest.Registry(t, window.Register)
	op, err := operatortest.Build(reg, "window", "tumbling: 1h\ngrace: 0s\naggregates:\n  p: {percentiles: ms, at: [50, 99]}\n  d: {count_distinct: user}\n  top: {top_n: url, n: 2, by: score}\n")
	if err != nil {
		t.Fatal(err)
	}
	var in []any
	for i := range 1000 {
		in = append(in, map[string]any{"ms": float64(i + 1), "user": fmt.Sprintf("u%d", i%300), "url": fmt.Sprintf("/%d", i), "score": float64(i % 500), "ts": "2026-01-01T00:00:00Z"})
	}
	res := operatortest.Process(context.Background(), op, operatortest.Values(in...))
	if len(res.Out) != 1 || len(res.DLQ) != 0 {
		t.Fatalf("got %d results, DLQ %v", len(res.Out), res.Errs)
	}
	v := res.Out[0].Value.(map[string]any)
	p := v["p"].(map[string]any)
	if p50 := p["p50"].(float64); p50 < 495 || p50 > 505 {
		t.Errorf("p50 = %v, want 500 within 1%%", p50)
	}
	if p99 := p["p99"].(float64); p99 < 980 || p99 > 1000 {
		t.Errorf("p99 = %v, want about 990", p99)
	}
	if d := v["d"]; d != 300 {
		t.Errorf("count_distinct = %v (%T), want 300", d, d)
	}
	if top := fmt.Sprint(v["top"]); top != "[/499 /999]" {
		t.Errorf("top_n = %v, want the first arrivals with score 499", top)
	}
}

func TestTopNExamples(t *testing.T) {
	operatortest.RunExamples(t, operatortest.Registry(t, window.RegisterTopN), "top_n")
}
