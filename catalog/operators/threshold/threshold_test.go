package threshold_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/internal/keyed/keyedtest"
	"github.com/sluicehq/sluice/catalog/operators/threshold"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, operatortest.Registry(t, threshold.Register), "threshold")
}

// readings are random temperatures of a few sensors at distinct times.
func readings(rng *rand.Rand, n int) []*record.Record {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var in []*record.Record
	at := start
	for range n {
		at = at.Add(time.Duration(1+rng.IntN(90)) * time.Second)
		s := fmt.Sprintf("s%d", rng.IntN(3))
		in = append(in, keyedtest.Record(nil, at, map[string]any{"sensor": s, "temp": 70 + rng.IntN(20)}))
	}
	return in
}

// oracle computes the alerts and clears from the readings in time order
// without timers or a store: an episode runs from a reading above 80 to the
// next reading below 75 (or the end); it alerts when it lasts at least d.
func oracle(in []*record.Record, d time.Duration) []string {
	type event struct {
		at  time.Time
		out string
	}
	var evs []event
	bySensor := map[string][]*record.Record{}
	var order []string
	for _, r := range in {
		s := r.Value.(map[string]any)["sensor"].(string)
		if _, ok := bySensor[s]; !ok {
			order = append(order, s)
		}
		bySensor[s] = append(bySensor[s], r)
	}
	f := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	for _, s := range order {
		rs := bySensor[s]
		for i := 0; i < len(rs); i++ {
			if rs[i].Value.(map[string]any)["temp"].(int) <= 80 {
				continue
			}
			since, last := rs[i].Timestamp, rs[i].Value.(map[string]any)["temp"]
			end := -1
			for j := i + 1; j < len(rs); j++ {
				tj := rs[j].Value.(map[string]any)["temp"].(int)
				if tj < 75 {
					end = j
					break
				}
				if rs[j].Timestamp.Before(since.Add(d)) {
					last = tj
				}
			}
			if end < 0 || !rs[end].Timestamp.Before(since.Add(d)) {
				at := since.Add(d)
				evs = append(evs, event{at, fmt.Sprintf(`%s@%s {"at":"%s","event":"alert","key":"%s","reading":%v,"since":"%s"}`, s, f(at), f(at), s, last, f(since))})
				if end >= 0 {
					e := rs[end].Timestamp
					evs = append(evs, event{e, fmt.Sprintf(`%s@%s {"at":"%s","duration_ms":%d,"event":"clear","key":"%s","reading":%v,"since":"%s"}`,
						s, f(e), f(e), e.Sub(since).Milliseconds(), s, rs[end].Value.(map[string]any)["temp"], f(since))})
				}
			}
			if end < 0 {
				break
			}
			i = end
		}
	}
	// Outputs come in event-time order; at one time, alerts (timers) before
	// clears (readings), and alerts by key.
	slices.SortStableFunc(evs, func(a, b event) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		ac, bc := strings.Contains(a.out, `"clear"`), strings.Contains(b.out, `"clear"`)
		if ac != bc {
			if ac {
				return 1
			}
			return -1
		}
		return strings.Compare(a.out, b.out)
	})
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.out
	}
	return out
}

// The operator agrees with the oracle, whatever the arrival order within
// grace and wherever the task is restored.
func TestOracle(t *testing.T) {
	reg := operatortest.Registry(t, threshold.Register)
	build := func() catalog.Operator {
		op, err := operatortest.Build(reg, "threshold", "by: sensor\nwhen: temp > 80\nclear: temp < 75\nfor: 3m\ngrace: 2m\nvalue: temp\nemit: transitions\n")
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
	for seed := range 200 {
		rng := rand.New(rand.NewPCG(uint64(seed), 1))
		in := readings(rng, 5+rng.IntN(60))
		want := oracle(in, 3*time.Minute)
		got, dlq := keyedtest.Run(t, build, keyedtest.Disorder(rng, in, 2*time.Minute), rng.IntN(len(in)))
		if len(dlq) != 0 {
			t.Fatalf("seed %d: DLQ %v within grace", seed, dlq)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d:\n got %s\nwant %s", seed, strings.Join(got, "\n     "), strings.Join(want, "\n     "))
		}
	}
}
