package pipeline_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/internal/pipeline"
)

// fiftySteps builds a realistic 50-step pipeline cycling through the
// stateless operators, each with expressions to compile.
func fiftySteps() []byte {
	var b strings.Builder
	b.WriteString("apiVersion: sluice/v1\nkind: Pipeline\nmetadata: {name: big}\nspec:\n  source: {topic: in, key: id, timestamp: ts}\n  steps:\n")
	for i := 0; i < 50; i++ {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "    - filter: f%d == nil || (f%d > %d && len(name ?? \"\") < 100)\n", i, i, i)
		case 1:
			fmt.Fprintf(&b, "    - set: {f%d: \"speed * %d + 1\", g%d: \"upper(name ?? 'x')\"}\n", i, i, i)
		case 2:
			fmt.Fprintf(&b, "    - rename: {g%d: h%d}\n", i-1, i)
		case 3:
			fmt.Fprintf(&b, "    - drop: [h%d]\n", i-1)
		case 4:
			fmt.Fprintf(&b, "    - mask: {fields: [card%d], with: last4}\n", i)
		}
	}
	b.WriteString("  sink: {topic: out}\n")
	return []byte(b.String())
}

func TestFiftyStepsCompiles(t *testing.T) {
	p, err := (&pipeline.Compiler{Registry: all.New()}).Compile("big.yaml", fiftySteps())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Steps) != 50 {
		t.Fatalf("compiled %d steps, want 50", len(p.Steps))
	}
}

// BenchmarkCompile50Steps: target < 50 ms per compile (bench/targets.json).
func BenchmarkCompile50Steps(b *testing.B) {
	src := fiftySteps()
	c := &pipeline.Compiler{Registry: all.New()}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := c.Compile("big.yaml", src); err != nil {
			b.Fatal(err)
		}
	}
}
