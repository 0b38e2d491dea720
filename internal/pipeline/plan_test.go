package pipeline_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/record"
)

// withCounter returns the standard catalog plus a stateful test operator,
// without touching the standard one: stateful operators arrive in their own
// issue, and planning must already place repartitions for them.
func withCounter(t *testing.T) *catalog.Registry {
	t.Helper()
	reg := all.New().Clone()
	err := reg.Register(catalog.Spec{
		Name:    "count",
		Summary: "Counts records per key (test operator).",
		Config: `{"type": "object", "additionalProperties": false,
		  "properties": {"by": {"type": "string"}, "window": {"type": "string"}}}`,
		State: &catalog.StateSpec{KeyField: "by", ShapeFields: []string{"window"}},
		New: func(*catalog.Build, catalog.Config) (catalog.Operator, error) {
			return catalog.OperatorFunc(func(ctx context.Context, r *record.Record, out catalog.Output) error {
				return out.Next(ctx, r)
			}), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, leaked := all.New().Lookup("count"); leaked {
		t.Fatal("registering on a clone changed the standard catalog")
	}
	return reg
}

func compile(t *testing.T, reg *catalog.Registry, src string) *pipeline.Plan {
	t.Helper()
	p, err := (&pipeline.Compiler{Registry: reg}).Compile("p.yaml", []byte(src))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return p
}

const head = `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: clicks}
spec:
  sink: {topic: out}
`

func TestPlanRepartition(t *testing.T) {
	reg := withCounter(t)
	cases := []struct {
		name   string
		body   string
		stages []string // input topic per stage
		keys   []string // repartition key per boundary ("" = current key)
	}{
		{
			name:   "stateless pipeline is one stage",
			body:   "  source: {topic: clicks}\n  steps:\n    - filter: url != nil\n",
			stages: []string{"clicks"},
		},
		{
			name:   "stateful step on the input key needs no repartition",
			body:   "  source: {topic: clicks}\n  steps:\n    - count: {}\n",
			stages: []string{"clicks"},
		},
		{
			name:   "computed source key needs a repartition",
			body:   "  source: {topic: clicks, key: url}\n  steps:\n    - count: {}\n",
			stages: []string{"clicks", "clicks-count-repartition"},
			keys:   []string{""},
		},
		{
			name:   "computed key already partitioned by the producer",
			body:   "  source: {topic: clicks, key: url, partitioned_by_key: true}\n  steps:\n    - count: {}\n",
			stages: []string{"clicks"},
		},
		{
			name:   "rekey before a stateful step",
			body:   "  source: {topic: clicks}\n  steps:\n    - rekey: user\n    - filter: url != nil\n    - count: {}\n",
			stages: []string{"clicks", "clicks-count-repartition"},
			keys:   []string{""},
		},
		{
			name:   "grouping by its own key",
			body:   "  source: {topic: clicks}\n  steps:\n    - count: {by: url}\n",
			stages: []string{"clicks", "clicks-count-repartition"},
			keys:   []string{"url"},
		},
		{
			name:   "grouping by the key the source already computed and partitions by",
			body:   "  source: {topic: clicks, key: url, partitioned_by_key: true}\n  steps:\n    - count: {by: url}\n",
			stages: []string{"clicks"},
		},
		{
			name:   "two stateful steps with different keys",
			body:   "  source: {topic: clicks}\n  steps:\n    - count: {by: url}\n    - name: per-user\n      count: {by: user}\n",
			stages: []string{"clicks", "clicks-count-repartition", "clicks-per-user-repartition"},
			keys:   []string{"url", "user"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := compile(t, reg, head+tc.body)
			var inputs, keys []string
			for _, st := range p.Stages {
				inputs = append(inputs, st.Input)
				if r := st.Repartition; r != nil {
					k := ""
					if r.Key != nil {
						k = r.Key.Source()
					}
					keys = append(keys, k)
				}
			}
			if strings.Join(inputs, ",") != strings.Join(tc.stages, ",") {
				t.Errorf("stages read %v, want %v\n%s", inputs, tc.stages, p.Describe())
			}
			if strings.Join(keys, ",") != strings.Join(tc.keys, ",") {
				t.Errorf("repartition keys %v, want %v", keys, tc.keys)
			}
		})
	}
}

func TestStateFingerprints(t *testing.T) {
	reg := withCounter(t)
	base := compile(t, reg, head+"  source: {topic: clicks}\n  steps:\n    - filter: url != nil\n    - count: {by: url, window: 1m}\n")
	same := compile(t, reg, head+"  source: {topic: clicks}\n  steps:\n    - filter: url != nil && user != nil\n    - count: {by: url, window: 1m}\n")
	rekeyed := compile(t, reg, head+"  source: {topic: clicks}\n  steps:\n    - count: {by: user, window: 1m}\n")
	reshaped := compile(t, reg, head+"  source: {topic: clicks}\n  steps:\n    - count: {by: url, window: 5m}\n")
	removed := compile(t, reg, head+"  source: {topic: clicks}\n  steps:\n    - filter: url != nil\n")

	if got := pipeline.StateChanges(base, same); len(got) != 0 {
		t.Errorf("changing a stateless step changed state: %v", got)
	}
	for name, next := range map[string]*pipeline.Plan{"key": rekeyed, "shape": reshaped, "removed": removed} {
		got := pipeline.StateChanges(base, next)
		if len(got) != 1 || got[0].Step != "count" {
			t.Errorf("%s change: got %v, want one change to step count", name, got)
		}
	}
}

func TestDescribeNamesKeyChanges(t *testing.T) {
	p := compile(t, withCounter(t), head+"  source: {topic: clicks}\n  steps:\n    - rekey: user\n    - count: {}\n")
	d := p.Describe()
	for _, want := range []string{"changes key: user", "repartition by current key -> clicks-count-repartition", "stage 1: read clicks-count-repartition", "errors -> clicks.dlq"} {
		if !strings.Contains(d, want) {
			t.Errorf("plan description lacks %q:\n%s", want, d)
		}
	}
}

func TestJSONSchemaCoversCatalog(t *testing.T) {
	reg := all.New()
	b, err := pipeline.JSONSchema(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range reg.Names() {
		if !strings.Contains(string(b), `"title": "`+name+`"`) {
			t.Errorf("combined schema has no branch for operator %s", name)
		}
	}
}

// A revision that changes a stateful step's key or shape is refused at that
// step unless the step says `reset: true`; removed steps are reported as
// resets.
func TestCheckState(t *testing.T) {
	reg := withCounter(t)
	base := compile(t, reg, head+"  source: {topic: clicks}\n  steps:\n    - filter: url != nil\n    - count: {by: url, window: 1m}\n")
	same := compile(t, reg, head+"  source: {topic: clicks}\n  steps:\n    - filter: url != nil && user != nil\n    - count: {by: url, window: 1m}\n      reset: true\n")
	reshaped := compile(t, reg, head+"  source: {topic: clicks}\n  steps:\n    - filter: url != nil\n    - count: {by: url, window: 5m}\n")
	resetting := compile(t, reg, head+"  source: {topic: clicks}\n  steps:\n    - filter: url != nil\n    - count: {by: url, window: 5m}\n      reset: true\n")
	removed := compile(t, reg, head+"  source: {topic: clicks}\n  steps:\n    - filter: url != nil\n")

	if resets, err := pipeline.CheckState(base, same); err != nil || len(resets) != 0 {
		t.Errorf("unchanged state (reset: true kept in the file): resets %v, err %v", resets, err)
	}
	_, err := pipeline.CheckState(base, reshaped)
	if err == nil || !strings.HasPrefix(err.Error(), "p.yaml:9:7: step count: key or state shape changed") || !strings.Contains(err.Error(), "reset: true") {
		t.Errorf("reshaped without reset: %v", err)
	}
	if resets, err := pipeline.CheckState(base, resetting); err != nil || len(resets) != 1 || resets[0].Step != "count" {
		t.Errorf("reshaped with reset: resets %v, err %v", resets, err)
	}
	if resets, err := pipeline.CheckState(base, removed); err != nil || len(resets) != 1 {
		t.Errorf("removed: resets %v, err %v", resets, err)
	}
}

func TestResetOnlyOnStatefulSteps(t *testing.T) {
	reg := withCounter(t)
	for src, want := range map[string]string{
		"    - filter: url != nil\n      reset: true\n": "p.yaml:9:14: reset applies to stateful steps; filter keeps no state",
		"    - count: {by: url}\n      reset: maybe\n":  "p.yaml:9:14: reset must be true or false",
	} {
		_, err := (&pipeline.Compiler{Registry: reg}).Compile("p.yaml", []byte(head+"  source: {topic: clicks}\n  steps:\n"+src))
		if err == nil || err.Error() != want {
			t.Errorf("got %v, want %s", err, want)
		}
	}
	b, err := pipeline.JSONSchema(reg)
	if err != nil || !strings.Contains(string(b), `"reset"`) {
		t.Errorf("combined schema has no reset for the stateful operator: %v", err)
	}
}

func TestStateStoreChoice(t *testing.T) {
	reg := all.New()
	if p := compile(t, reg, head+"  source: {topic: clicks}\n  steps: []\n"); p.StateStore != pipeline.StoreMemory {
		t.Errorf("default state store %q, want memory", p.StateStore)
	}
	if p := compile(t, reg, head+"  source: {topic: clicks}\n  steps: []\n  state: {store: disk}\n"); p.StateStore != pipeline.StoreDisk {
		t.Errorf("state store %q, want disk", p.StateStore)
	}
	_, err := (&pipeline.Compiler{Registry: reg}).Compile("p.yaml", []byte(head+"  source: {topic: clicks}\n  steps: []\n  state: {store: ssd}\n"))
	if err == nil || !strings.Contains(err.Error(), "p.yaml:8:") {
		t.Errorf("bad store: %v", err)
	}
}
