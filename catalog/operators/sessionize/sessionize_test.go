package sessionize_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/internal/keyed/keyedtest"
	"github.com/sluicehq/sluice/catalog/operators/sessionize"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, operatortest.Registry(t, sessionize.Register), "sessionize")
}

// oracle splits each key's sorted records at gaps of more than gap and
// orders the summaries by closing time (last + gap), then key.
func oracle(in []*record.Record, gap time.Duration, maxPath int) []string {
	type sess struct {
		key         string
		start, last time.Time
		path        []string
	}
	f := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	open := map[string]*sess{}
	var done []*sess
	for _, r := range in {
		k := r.Value.(map[string]any)["u"].(string)
		p := fmt.Sprintf("%q", r.Value.(map[string]any)["p"])
		s := open[k]
		if s != nil && r.Timestamp.Sub(s.last) > gap {
			done = append(done, s)
			s = nil
		}
		if s == nil {
			s = &sess{key: k, start: r.Timestamp}
			open[k] = s
		}
		s.last = r.Timestamp
		s.path = append(s.path, p)
	}
	for _, s := range open {
		done = append(done, s)
	}
	slices.SortStableFunc(done, func(a, b *sess) int {
		if c := a.last.Compare(b.last); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	var out []string
	for _, s := range done {
		path := s.path[:min(len(s.path), maxPath)]
		out = append(out, fmt.Sprintf(`%s@%s {"duration_ms":%d,"end":"%s","entry":%s,"event":"session","events":%d,"exit":%s,"key":"%s","path":[%s],"start":"%s"}`,
			s.key, f(s.last), s.last.Sub(s.start).Milliseconds(), f(s.last), s.path[0], len(s.path), s.path[len(s.path)-1], s.key, strings.Join(path, ","), f(s.start)))
	}
	return out
}

func TestOracle(t *testing.T) {
	reg := operatortest.Registry(t, sessionize.Register)
	build := func() catalog.Operator {
		op, err := operatortest.Build(reg, "sessionize", "by: u\ngap: 2m\npath: p\nmax_path: 3\ngrace: 1m\n")
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for seed := range 200 {
		rng := rand.New(rand.NewPCG(uint64(seed), 11))
		var in []*record.Record
		at := start
		for range 3 + rng.IntN(60) {
			at = at.Add(time.Duration(1+rng.IntN(80)) * time.Second)
			in = append(in, keyedtest.Record(nil, at, map[string]any{"u": fmt.Sprint("u", rng.IntN(3)), "p": fmt.Sprint("/", rng.IntN(5))}))
		}
		want := oracle(in, 2*time.Minute, 3)
		got, dlq := keyedtest.Run(t, build, keyedtest.Disorder(rng, in, time.Minute), rng.IntN(len(in)))
		if len(dlq) != 0 {
			t.Fatalf("seed %d: DLQ %v", seed, dlq)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d:\n got %s\nwant %s", seed, strings.Join(got, "\n     "), strings.Join(want, "\n     "))
		}
	}
}
