package sequence_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/internal/keyed/keyedtest"
	"github.com/sluicehq/sluice/catalog/operators/sequence"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, operatortest.Registry(t, sequence.Register), "sequence")
	operatortest.RunExamples(t, operatortest.Registry(t, sequence.RegisterAbsence), "absence")
}

// events are random a, b, ab (both) and other records of a few keys at
// distinct times.
func events(rng *rand.Rand, n int) []*record.Record {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var in []*record.Record
	for i := range n {
		at = at.Add(time.Duration(1+rng.IntN(40)) * time.Second)
		kind := []string{"a", "b", "ab", "x"}[rng.IntN(4)]
		in = append(in, keyedtest.Record(nil, at, map[string]any{"k": fmt.Sprint("k", rng.IntN(3)), "e": kind, "i": i}))
	}
	return in
}

const within = 90 * time.Second

func fields(r *record.Record) (key, kind string, i int) {
	v := r.Value.(map[string]any)
	return v["k"].(string), v["e"].(string), v["i"].(int)
}

func f(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func js(r *record.Record) string {
	b, _ := record.EncodeJSON(r.Value)
	return string(b)
}

// sequenceOracle: a then event at index j matches when an earlier first
// event of its key, at index at or after the last match, is within range;
// the output names the earliest such first.
func sequenceOracle(in []*record.Record) []string {
	var out []string
	since := map[string]int{}
	for j, b := range in {
		k, kind, _ := fields(b)
		if !strings.Contains(kind, "b") {
			continue
		}
		for i := since[k]; i < j; i++ {
			ka, kinda, _ := fields(in[i])
			if ka == k && strings.Contains(kinda, "a") && b.Timestamp.Sub(in[i].Timestamp) <= within {
				out = append(out, fmt.Sprintf(`%s@%s {"at":"%s","elapsed_ms":%d,"event":"sequence","first_at":"%s","first_record":%s,"key":"%s","then_record":%s}`,
					k, f(b.Timestamp), f(b.Timestamp), b.Timestamp.Sub(in[i].Timestamp).Milliseconds(), f(in[i].Timestamp), js(in[i]), k, js(b)))
				break
			}
		}
		since[k] = j
	}
	return out
}

// absenceOracle: a first event is absent when no later then event of its
// key comes within range; reports come by deadline, then key.
func absenceOracle(in []*record.Record) []string {
	type rep struct {
		deadline time.Time
		key, out string
	}
	var reps []rep
	for i, a := range in {
		k, kind, _ := fields(a)
		if !strings.Contains(kind, "a") {
			continue
		}
		found := false
		for _, b := range in[i+1:] {
			kb, kindb, _ := fields(b)
			if kb == k && strings.Contains(kindb, "b") && b.Timestamp.Sub(a.Timestamp) <= within {
				found = true
				break
			}
		}
		if !found {
			d := a.Timestamp.Add(within)
			reps = append(reps, rep{d, k, fmt.Sprintf(`%s@%s {"deadline":"%s","event":"absent","first_at":"%s","first_record":%s,"key":"%s"}`,
				k, f(d), f(d), f(a.Timestamp), js(a), k)})
		}
	}
	slices.SortStableFunc(reps, func(x, y rep) int {
		if c := x.deadline.Compare(y.deadline); c != 0 {
			return c
		}
		return strings.Compare(x.key, y.key)
	})
	out := make([]string, len(reps))
	for i, r := range reps {
		out[i] = r.out
	}
	return out
}

// Both operators agree with brute-force oracles whatever the arrival
// order within grace and wherever the task is restored.
func TestOracles(t *testing.T) {
	for _, c := range []struct {
		name     string
		register func(*catalog.Registry) error
		oracle   func([]*record.Record) []string
	}{
		{"sequence", sequence.Register, sequenceOracle},
		{"absence", sequence.RegisterAbsence, absenceOracle},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg := operatortest.Registry(t, c.register)
			build := func() catalog.Operator {
				op, err := operatortest.Build(reg, c.name, "by: k\nfirst: e contains \"a\"\nthen: e contains \"b\"\nwithin: 90s\ngrace: 1m\n")
				if err != nil {
					t.Fatal(err)
				}
				return op
			}
			total := 0
			for seed := range 200 {
				rng := rand.New(rand.NewPCG(uint64(seed), 5))
				in := events(rng, 5+rng.IntN(80))
				want := c.oracle(in)
				got, dlq := keyedtest.Run(t, build, keyedtest.Disorder(rng, in, time.Minute), rng.IntN(len(in)))
				if len(dlq) != 0 {
					t.Fatalf("seed %d: DLQ %v within grace", seed, dlq)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("seed %d:\n got %s\nwant %s", seed, strings.Join(got, "\n     "), strings.Join(want, "\n     "))
				}
				total += len(want)
			}
			if total < 300 {
				t.Fatalf("only %d outputs", total)
			}
		})
	}
}
