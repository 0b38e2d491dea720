package heartbeat_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/heartbeat"
	"github.com/sluicehq/sluice/catalog/operators/internal/keyed/keyedtest"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, operatortest.Registry(t, heartbeat.Register), "heartbeat")
}

// oracle: for each pair of consecutive records of a key more than timeout
// apart, a missing event at the first + timeout and a resumed one at the
// second; after a key's last record, a missing event (the input ends).
func oracle(in []*record.Record, timeout time.Duration) []string {
	type ev struct {
		at       time.Time
		resumed  bool
		key, out string
	}
	f := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	last := map[string]time.Time{}
	var evs []ev
	for _, r := range in {
		k := r.Value.(map[string]any)["d"].(string)
		if l, ok := last[k]; ok && r.Timestamp.Sub(l) > timeout {
			at := l.Add(timeout)
			evs = append(evs, ev{at, false, k, fmt.Sprintf(`%s@%s {"at":"%s","event":"missing","key":"%s","last_seen":"%s"}`, k, f(at), f(at), k, f(l))})
			evs = append(evs, ev{r.Timestamp, true, k, fmt.Sprintf(`%s@%s {"at":"%s","event":"resumed","key":"%s","last_seen":"%s","silent_ms":%d}`,
				k, f(r.Timestamp), f(r.Timestamp), k, f(l), r.Timestamp.Sub(l).Milliseconds())})
		}
		last[k] = r.Timestamp
	}
	for k, l := range last {
		at := l.Add(timeout)
		evs = append(evs, ev{at, false, k, fmt.Sprintf(`%s@%s {"at":"%s","event":"missing","key":"%s","last_seen":"%s"}`, k, f(at), f(at), k, f(l))})
	}
	// In event time; a missing event (a timer, 1 ms after the deadline)
	// before a record at the same millisecond is impossible, as times are
	// whole seconds; missing events of one time by key.
	slices.SortStableFunc(evs, func(a, b ev) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		if a.resumed != b.resumed {
			if a.resumed {
				return -1
			}
			return 1
		}
		return strings.Compare(a.key, b.key)
	})
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.out
	}
	return out
}

func TestOracle(t *testing.T) {
	reg := operatortest.Registry(t, heartbeat.Register)
	build := func() catalog.Operator {
		op, err := operatortest.Build(reg, "heartbeat", "by: d\ntimeout: 2m\ngrace: 1m\n")
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for seed := range 200 {
		rng := rand.New(rand.NewPCG(uint64(seed), 6))
		var in []*record.Record
		at := start
		for range 3 + rng.IntN(60) {
			at = at.Add(time.Duration(1+rng.IntN(90)) * time.Second)
			in = append(in, keyedtest.Record(nil, at, map[string]any{"d": fmt.Sprint("d", rng.IntN(4))}))
		}
		want := oracle(in, 2*time.Minute)
		got, dlq := keyedtest.Run(t, build, keyedtest.Disorder(rng, in, time.Minute), rng.IntN(len(in)))
		if len(dlq) != 0 {
			t.Fatalf("seed %d: DLQ %v", seed, dlq)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d:\n got %s\nwant %s", seed, strings.Join(got, "\n     "), strings.Join(want, "\n     "))
		}
	}
}
