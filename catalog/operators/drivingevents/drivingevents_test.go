package drivingevents_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/drivingevents"
	"github.com/sluicehq/sluice/catalog/operators/internal/keyed/keyedtest"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
)

func TestConformance(t *testing.T) {
	operatortest.Conform(t, operatortest.Registry(t, drivingevents.Register), "driving_events")
}

func TestConfigErrors(t *testing.T) {
	reg := operatortest.Registry(t, drivingevents.Register)
	for step, want := range map[string]string{
		"speed: kmh\n":                            "grace",
		"grace: 0s\nmin_gap: 20s\n":               "shorter than max_gap",
		"grace: 0s\nmax_gap: 0s\n":                "max_gap",
		"grace: 0s\ndetect: [speeding, sleeping]": "schema",
		"grace: 0s\nlimit_kmh: 0\n":               "schema",
	} {
		if _, err := operatortest.Build(reg, "driving_events", step); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one mentioning %q", step, err, want)
		}
	}
}

// drives are random 1 Hz-ish speed traces of a few vehicles: steady
// driving with the odd hard stop or launch, jittery fixes close together and
// silences, each position with a random zone limit or none.
func drives(rng *rand.Rand, n int) []*record.Record {
	start := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
	at := start
	kmh := map[string]float64{}
	var in []*record.Record
	for range n {
		switch rng.IntN(20) {
		case 0:
			at = at.Add(time.Duration(5+rng.IntN(20)) * time.Second) // a silence, sometimes past max_gap
		case 1, 2:
			at = at.Add(time.Duration(100+rng.IntN(400)) * time.Millisecond) // a fix close to the last
		default:
			at = at.Add(time.Duration(300+rng.IntN(900)) * time.Millisecond)
		}
		v := fmt.Sprintf("v%d", rng.IntN(3))
		k := kmh[v] + float64(rng.IntN(41)-20)
		k = math.Max(0, math.Min(140, k))
		kmh[v] = k
		var limit any
		if rng.IntN(3) > 0 {
			limit = []int{30, 50, 80, 100}[rng.IntN(4)]
		}
		in = append(in, keyedtest.Record(nil, at, map[string]any{"vehicle": v, "kmh": k, "limit": limit,
			"lat": 52 + float64(rng.IntN(1000))/10000, "lon": 4.3}))
	}
	return in
}

const oracleStep = "by: vehicle\nspeed: kmh\nlimit: limit\nlimit_kmh: 90\ntolerance_kmh: 5\nmin_speeding: 2s\nmin_gap: 1s\nmax_gap: 10s\ngrace: 5s\n"

// oracle computes the events from each vehicle's positions in time order,
// written from the documented rules without the package's state machine:
// it splits a vehicle's trace at silences of max_gap, and in each piece
// walks the positions with an explicit reference for rates.
func oracle(in []*record.Record) []string {
	const minGap, maxGap = time.Second, 10 * time.Second
	type event struct {
		at    time.Time
		harsh bool
		key   string
		out   string
	}
	f := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	num := func(r *record.Record, k string) float64 {
		x, _ := r.Value.(map[string]any)[k].(float64)
		if i, ok := r.Value.(map[string]any)[k].(int); ok {
			x = float64(i)
		}
		return x
	}
	js := func(v map[string]any) string {
		b, _ := record.EncodeJSON(record.Plain(v))
		return string(b)
	}
	var evs []event
	byV := map[string][]*record.Record{}
	for _, r := range in {
		v := r.Value.(map[string]any)["vehicle"].(string)
		byV[v] = append(byV[v], r)
	}
	for v, rs := range byV {
		var pieces [][]*record.Record
		for i, r := range rs {
			if i == 0 || r.Timestamp.Sub(rs[i-1].Timestamp) >= maxGap {
				pieces = append(pieces, nil)
			}
			pieces[len(pieces)-1] = append(pieces[len(pieces)-1], r)
		}
		for _, p := range pieces {
			// Rates.
			type rate struct {
				from, to *record.Record
				r        float64
			}
			var rates []rate
			ref := p[0]
			for _, r := range p[1:] {
				if r.Timestamp.Sub(ref.Timestamp) < minGap {
					continue
				}
				rates = append(rates, rate{ref, r, (num(r, "kmh") - num(ref, "kmh")) / r.Timestamp.Sub(ref.Timestamp).Seconds()})
				ref = r
			}
			kind := func(x float64) int {
				switch {
				case x <= -14:
					return -1
				case x >= 11:
					return 1
				}
				return 0
			}
			for i := 0; i < len(rates); i++ {
				k := kind(rates[i].r)
				if k == 0 {
					continue
				}
				j, peak := i, math.Abs(rates[i].r)
				for j+1 < len(rates) && kind(rates[j+1].r) == k {
					j++
					peak = math.Max(peak, math.Abs(rates[j].r))
				}
				name := map[int]string{-1: "harsh_braking", 1: "harsh_acceleration"}[k]
				s, e := rates[i].from.Timestamp, rates[j].to.Timestamp
				evs = append(evs, event{e, true, v, fmt.Sprintf("%s@%s %s", v, f(e), js(map[string]any{
					"event": name, "key": v, "start": f(s), "end": f(e), "duration_ms": e.Sub(s).Milliseconds(),
					"from_kmh": num(rates[i].from, "kmh"), "to_kmh": num(rates[j].to, "kmh"),
					"peak_kmh_s": math.Round(peak*100) / 100, "peak_ms2": math.Round(peak/3.6*100) / 100,
					"lat": num(rates[j].to, "lat"), "lon": 4.3}))})
				i = j
			}
			// Speeding.
			over := func(r *record.Record) (bool, float64) {
				l := 90.0
				if x := num(r, "limit"); x > 0 {
					l = x
				}
				return num(r, "kmh") > l+5, l
			}
			for i := 0; i < len(p); i++ {
				o, l := over(p[i])
				if !o {
					continue
				}
				mx, lim, j := num(p[i], "kmh"), l, i
				for j+1 < len(p) {
					if oj, lj := over(p[j+1]); oj {
						j++
						if num(p[j], "kmh") > mx {
							mx, lim = num(p[j], "kmh"), lj
						}
						continue
					}
					break
				}
				end := p[j].Timestamp
				if j+1 < len(p) {
					end = p[j+1].Timestamp
				}
				if end.Sub(p[i].Timestamp) >= 2*time.Second {
					evs = append(evs, event{end, false, v, fmt.Sprintf("%s@%s %s", v, f(end), js(map[string]any{
						"event": "speeding", "key": v, "start": f(p[i].Timestamp), "end": f(end),
						"duration_ms": end.Sub(p[i].Timestamp).Milliseconds(), "max_kmh": mx, "limit_kmh": lim,
						"lat": num(p[i], "lat"), "lon": 4.3}))})
				}
				i = j
			}
		}
	}
	// Compare as multisets: the oracle does not reproduce the order in which
	// the frontier interleaves vehicles.
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.out
	}
	slices.Sort(out)
	return out
}

// The operator agrees with the oracle whatever the arrival order within
// grace and wherever the task is restored.
func TestOracle(t *testing.T) {
	reg := operatortest.Registry(t, drivingevents.Register)
	build := func() catalog.Operator {
		op, err := operatortest.Build(reg, "driving_events", oracleStep)
		if err != nil {
			t.Fatal(err)
		}
		return op
	}
	total := 0
	for seed := range 200 {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		in := drives(rng, 10+rng.IntN(150))
		want := oracle(in)
		ordered, _ := keyedtest.Run(t, build, in, -1)
		got, dlq := keyedtest.Run(t, build, keyedtest.Disorder(rng, in, 5*time.Second), rng.IntN(len(in)))
		if len(dlq) != 0 {
			t.Fatalf("seed %d: DLQ %v within grace", seed, dlq)
		}
		if !slices.Equal(got, ordered) {
			t.Fatalf("seed %d: disorder or restore changed the output\n got %s\nwant %s", seed, strings.Join(got, "\n     "), strings.Join(ordered, "\n     "))
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d:\n got %s\nwant %s", seed, strings.Join(got, "\n     "), strings.Join(want, "\n     "))
		}
		total += len(got)
	}
	if total < 200 {
		t.Fatalf("only %d events in 200 traces: the traces do not exercise the operator", total)
	}
}
