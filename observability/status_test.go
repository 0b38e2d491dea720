package observability

import (
	"testing"
	"time"
)

// burrowCase is one of Burrow's own evaluator test vectors
// (core/internal/evaluator/caching_test.go, "tests"), transcribed: commit
// timestamps in milliseconds, now in seconds, a lag of -1 meaning nil.
type burrowCase struct {
	name                                                   string
	offsets                                                [][3]int64 // offset, timestamp ms, lag (-1: none)
	brokerOffsets                                          []int64
	currentLag                                             int64
	timeNow                                                int64
	alwaysNotZero, rewind, stopped, stalled, notDecreasing bool
	recentLagZero                                          bool
	want                                                   Status
}

func commits(rows [][3]int64) []Commit {
	out := make([]Commit, len(rows))
	for i, r := range rows {
		out[i] = Commit{Offset: r[0], At: time.UnixMilli(r[1]), Lag: max(r[2], 0), HasLag: r[2] >= 0}
	}
	return out
}

var steady = [][3]int64{{1000, 100000, 0}, {2000, 200000, 50}, {3000, 300000, 100}, {4000, 400000, 150}, {5000, 500000, 200}}
var growing = [][3]int64{{1000, 100000, 50}, {2000, 200000, 100}, {3000, 300000, 150}, {4000, 400000, 200}, {5000, 500000, 250}}

// Burrow's vectors 9 and 10: a consumer that was caught up at every commit
// and stopped committing while new data arrived.
var caughtUp = func() [][3]int64 {
	var rows [][3]int64
	ts := []int64{1512224618356, 1512224619362, 1512224620366, 1512224621367, 1512224622370, 1512224623373, 1512224624378,
		1512224625379, 1512224626383, 1512224627383, 1512224628383, 1512224629388, 1512224630391, 1512224631394, 1512224632397}
	for i, t := range ts {
		rows = append(rows, [3]int64{792748079 + int64(i), t, 0})
	}
	return rows
}()

var burrowCases = []burrowCase{
	{name: "0 zero lag somewhere is OK", offsets: steady, brokerOffsets: []int64{5200}, currentLag: 200, timeNow: 600,
		notDecreasing: true, want: StatusOK},
	{name: "1 not stopped: time since last commit equals the window", offsets: steady, brokerOffsets: []int64{5200}, currentLag: 200, timeNow: 900,
		notDecreasing: true, want: StatusOK},
	{name: "2 stopped although lag was zero at the start (#290)", offsets: steady, brokerOffsets: []int64{5200}, currentLag: 200, timeNow: 1000,
		stopped: true, notDecreasing: true, want: StatusStopped},
	{name: "3 stopped with lag always non-zero", offsets: growing, brokerOffsets: []int64{5250}, currentLag: 250, timeNow: 1000,
		alwaysNotZero: true, stopped: true, notDecreasing: true, want: StatusStopped},
	{name: "4 OK on zero lag though the offsets stall", offsets: [][3]int64{{1000, 100000, 0}, {1000, 200000, 50}, {1000, 300000, 100}, {1000, 400000, 150}, {1000, 500000, 200}},
		brokerOffsets: []int64{1200}, currentLag: 200, timeNow: 600, stalled: true, notDecreasing: true, want: StatusOK},
	{name: "5 stalled with lag always non-zero", offsets: [][3]int64{{1000, 100000, 100}, {1000, 200000, 150}, {1000, 300000, 200}, {1000, 400000, 250}, {1000, 500000, 300}},
		brokerOffsets: []int64{1300}, currentLag: 300, timeNow: 600, alwaysNotZero: true, stalled: true, notDecreasing: true, want: StatusStalled},
	{name: "6 stalled with constant lag", offsets: [][3]int64{{1000, 100000, 100}, {1000, 200000, 100}, {1000, 300000, 100}, {1000, 400000, 100}, {1000, 500000, 100}},
		brokerOffsets: []int64{1100}, currentLag: 100, timeNow: 600, alwaysNotZero: true, stalled: true, notDecreasing: true, want: StatusStalled},
	{name: "7 rewind outranks a decreasing lag", offsets: [][3]int64{{1000, 100000, 100}, {2000, 200000, 150}, {3000, 300000, 200}, {2000, 400000, 1250}, {4000, 500000, 300}},
		brokerOffsets: []int64{4300}, currentLag: 300, timeNow: 600, alwaysNotZero: true, rewind: true, want: StatusRewind},
	{name: "8 OK on zero current lag though stopped by timestamps", offsets: growing, brokerOffsets: []int64{5250}, currentLag: 0, timeNow: 1000,
		alwaysNotZero: true, stopped: true, notDecreasing: true, want: StatusOK},
	{name: "9 stopped: caught up at every commit, then new data (#290)", offsets: caughtUp,
		brokerOffsets: []int64{792749024, 792749000, 792748800, 792748600, 792748500}, currentLag: 931, timeNow: 1512224650,
		stopped: true, notDecreasing: true, want: StatusStopped},
	{name: "10 OK: caught up within the recent broker offsets (#303)", offsets: caughtUp,
		brokerOffsets: []int64{792748094, 792748093, 792748093, 792748093}, currentLag: 1, timeNow: 1512224650,
		stopped: true, notDecreasing: true, recentLagZero: true, want: StatusOK},
	{name: "11 nil lags do not change case 0", offsets: [][3]int64{{1000, 100000, 0}, {1500, 150000, -1}, {2000, 200000, 50}, {2500, 250000, -1}, {3000, 300000, 100},
		{3500, 350000, -1}, {4000, 400000, 150}, {4500, 450000, -1}, {5000, 500000, 200}, {5500, 550000, -1}},
		brokerOffsets: []int64{5700}, currentLag: 200, timeNow: 600, notDecreasing: true, want: StatusOK},
}

// TestLagBurrowVectors checks every rule and the combined status against
// Burrow's own evaluator test vectors, so "Burrow's rules" means what
// Burrow does, including its fixes #290 and #303.
func TestLagBurrowVectors(t *testing.T) {
	for _, c := range burrowCases {
		t.Run(c.name, func(t *testing.T) {
			w := commits(c.offsets)
			now := time.Unix(c.timeNow, 0)
			check := func(rule string, got, want bool) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %v, want %v", rule, got, want)
				}
			}
			check("lagAlwaysNotZero", lagAlwaysNotZero(w), c.alwaysNotZero)
			check("offsetsRewind", offsetsRewind(w), c.rewind)
			check("offsetsStopped", offsetsStopped(w, now), c.stopped)
			check("offsetsStalled", offsetsStalled(w), c.stalled)
			check("lagNotDecreasing", lagNotDecreasing(w), c.notDecreasing)
			check("recentLagZero", recentLagZero(w, c.brokerOffsets), c.recentLagZero)
			if got := Evaluate(w, c.brokerOffsets, c.currentLag, now); got != c.want {
				t.Errorf("Evaluate = %v, want %v", got, c.want)
			}
		})
	}
}

func TestLagStatusJSON(t *testing.T) {
	for s := StatusOK; s <= StatusRewind; s++ {
		b, err := s.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var back Status
		if err := back.UnmarshalJSON(b); err != nil || back != s {
			t.Errorf("%s: round trip gave %v, %v", b, back, err)
		}
	}
	var s Status
	if err := s.UnmarshalJSON([]byte(`"LATE"`)); err == nil {
		t.Error("an unknown status was accepted")
	}
	if Worst(StatusWarning, StatusRewind, StatusStalled) != StatusRewind || Worst() != StatusOK {
		t.Error("Worst does not follow Burrow's severity order")
	}
}
