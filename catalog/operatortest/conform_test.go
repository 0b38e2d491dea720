package operatortest_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

var update = flag.Bool("update", false, "rewrite testdata/traits.golden")

// Every standard operator passes the conformance suite.
func TestConformance(t *testing.T) {
	reg := all.New()
	for _, name := range reg.Names() {
		t.Run(name, func(t *testing.T) { operatortest.Conform(t, reg, name) })
	}
}

// testdata/traits.golden is the table of which checks apply to which
// operator, derived from the specs: a change in what an operator declares
// (it became stateful, it gained a grace) shows in review.
func TestTraitsTable(t *testing.T) {
	reg := all.New()
	var b strings.Builder
	b.WriteString("# operator        stateful  event-time  examples (go test ./catalog/operatortest -update rewrites this)\n")
	for _, name := range reg.Names() {
		spec, _ := reg.Lookup(name)
		tr := operatortest.TraitsOf(spec)
		yn := func(v bool) string {
			if v {
				return "yes"
			}
			return "no"
		}
		fmt.Fprintf(&b, "%-17s %-9s %-11s %d\n", name, yn(tr.Stateful), yn(tr.EventTime), len(spec.Examples))
	}
	const path = "testdata/traits.golden"
	if *update {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != b.String() {
		t.Fatalf("traits changed (go test ./catalog/operatortest -run TestTraitsTable -update):\n%s", b.String())
	}
}

// forgetful counts records in a field of the operator, not in the task's
// store: the state a restore loses. The restore check must notice.
type forgetful struct{ n int }

func (f *forgetful) Process(context.Context, *record.Record, catalog.Output) error { return nil }

func (f *forgetful) ProcessTask(ctx context.Context, _ catalog.Task, r *record.Record, out catalog.Output) error {
	f.n++
	return out.Next(ctx, &record.Record{Timestamp: r.Timestamp, Value: f.n})
}

func (f *forgetful) OnWatermark(context.Context, catalog.Task, catalog.Output) error { return nil }

func TestRunRestoredCatchesLostState(t *testing.T) {
	build := func() catalog.Operator { return &forgetful{} }
	in := operatortest.Values(1, 2, 3, 4)
	want := operatortest.RunRestored(t, build, in, -1, 1)
	if got := operatortest.RunRestored(t, build, operatortest.Values(1, 2, 3, 4), 2, 1); got == want {
		t.Fatalf("state kept outside the store survived a restore: %s", got)
	}
}
