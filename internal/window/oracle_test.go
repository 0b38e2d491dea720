package window

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/sluicehq/sluice/internal/sketch"
)

// The oracle tests drive the operator with random records (several keys,
// out-of-order and late records, an idle partition that rejoins behind the
// watermark, wrongly typed values, a restart from the store half-way) and
// compare it with a deliberately simple reference that recomputes every
// window by brute force from the list of accepted records.

const (
	oracleGrace = 50
	oracleIdle  = 200
)

// event is one step of a generated input: a record from a partition, or
// only the processing clock moving (tick).
type event struct {
	tick  bool
	part  int32
	key   string
	t     int64
	value map[string]any
	now   int64
}

func genEvents(rng *rand.Rand, n int) []event {
	clocks := []int64{1000, 1000, 1000}
	var now int64
	var evs []event
	for i := range n {
		now += int64(1 + rng.IntN(15))
		if rng.IntN(20) == 0 {
			evs = append(evs, event{tick: true, now: now})
			continue
		}
		p := int32(rng.IntN(3))
		// Partition 2 is silent for a stretch (it goes idle), then rejoins
		// with its old clock, behind the watermark.
		if p == 2 && i > n/4 && i < n/2 {
			p = int32(rng.IntN(2))
		}
		clocks[p] += int64(rng.IntN(12))
		t := clocks[p] - int64(rng.IntN(20))
		if rng.IntN(10) == 0 {
			t -= int64(rng.IntN(250)) // well beyond grace, sometimes
		}
		v := map[string]any{"score": float64(rng.IntN(6))}
		switch r := rng.IntN(100); {
		case r < 8: // no v: nil input, skipped
		case r < 11:
			v["v"] = "oops" // wrong type for numeric aggregates
		default:
			v["v"] = float64(rng.IntN(101) - 50)
		}
		switch r := rng.IntN(10); {
		case r < 2:
			v["s"] = float64(rng.IntN(5))
		case r < 3: // nil
		default:
			v["s"] = fmt.Sprintf("s%d", rng.IntN(25))
		}
		key := string(rune('a' + rng.IntN(4)))
		if rng.IntN(6) == 0 {
			// Rare keys: their sessions close mid-run, so that late records
			// land next to closed sessions.
			key = fmt.Sprintf("rare%d", rng.IntN(2))
		}
		evs = append(evs, event{part: p, key: key, t: t, value: v, now: now})
	}
	return evs
}

func field(name string) func(any) (any, error) {
	return func(v any) (any, error) { return v.(map[string]any)[name], nil }
}

var oraclePercents = []float64{0, 50, 90, 99}

func oracleAggregates() []Aggregate {
	return []Aggregate{
		{Name: "n", Func: Count},
		{Name: "n_v", Func: Count, Input: field("v")},
		{Name: "sum", Func: Sum, Input: field("v")},
		{Name: "min", Func: Min, Input: field("v")},
		{Name: "max", Func: Max, Input: field("v")},
		{Name: "avg", Func: Avg, Input: field("v")},
		{Name: "distinct", Func: CountDistinct, Input: field("s")},
		{Name: "pct", Func: Percentiles, Input: field("v"), Percents: oraclePercents},
		{Name: "first", Func: First, Input: field("s")},
		{Name: "last", Func: Last, Input: field("s")},
		{Name: "head", Func: Collect, Input: field("s"), N: 3},
		{Name: "tail", Func: Collect, Input: field("s"), N: 3, Keep: KeepLast},
		{Name: "top", Func: TopN, By: field("score"), N: 3},
	}
}

// arrival is a record as the reference sees it: with the watermark in force
// when it arrived and its arrival index.
type arrival struct {
	key   string
	t     int64
	value map[string]any
	wm    int64
	hasWM bool
	idx   int
}

type winKey struct {
	key string
	w   Window
}

// ---- reference ----

type reference struct {
	kind               Kind
	size, advance, gap int64
	grace              int64
	accepted           map[string][]arrival
	perWindow          map[winKey][]arrival // tumbling, hopping
	outcomes           []string             // "ok", "late", "type"
}

// refWindows lists the windows containing t by trying every aligned start
// near t.
func (r *reference) refWindows(t int64) []Window {
	var ws []Window
	first := int64(math.Floor(float64(t-r.size)/float64(r.advance)))*r.advance - r.advance
	for s := first; s <= t; s += r.advance {
		if s <= t && t < s+r.size {
			ws = append(ws, Window{s, s + r.size})
		}
	}
	return ws
}

// sessions splits records into sessions: sorted by time, a new session
// starts wherever two neighbours are gap or more apart.
func (r *reference) sessions(recs []arrival) map[Window][]arrival {
	sorted := slices.Clone(recs)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].t < sorted[j].t })
	out := map[Window][]arrival{}
	for i := 0; i < len(sorted); {
		j := i + 1
		for j < len(sorted) && sorted[j].t-sorted[j-1].t < r.gap {
			j++
		}
		out[Window{sorted[i].t, sorted[j-1].t + r.gap}] = sorted[i:j]
		i = j
	}
	return out
}

func isClosed(end int64, a arrival, grace int64) bool { return a.hasWM && end+grace <= a.wm }

func (r *reference) add(a arrival) {
	late := false
	var into []Window
	if r.kind == KindSession {
		proto := Window{a.t, a.t + r.gap}
		late = isClosed(proto.End, a, r.grace)
		for w := range r.sessions(r.accepted[a.key]) {
			if isClosed(w.End, a, r.grace) && proto.overlaps(w) {
				late = true
			}
		}
	} else {
		for _, w := range r.refWindows(a.t) {
			if !isClosed(w.End, a, r.grace) {
				into = append(into, w)
			}
		}
		late = len(into) == 0
	}
	switch {
	case late:
		r.outcomes = append(r.outcomes, ReasonLate)
	case isString(a.value["v"]):
		r.outcomes = append(r.outcomes, ReasonType)
	default:
		r.outcomes = append(r.outcomes, "ok")
		r.accepted[a.key] = append(r.accepted[a.key], a)
		for _, w := range into {
			k := winKey{a.key, w}
			r.perWindow[k] = append(r.perWindow[k], a)
		}
	}
}

func isString(v any) bool { _, ok := v.(string); return ok }

func (r *reference) results(t *testing.T) map[winKey]map[string]any {
	out := map[winKey]map[string]any{}
	if r.kind == KindSession {
		for key, recs := range r.accepted {
			for w, rs := range r.sessions(recs) {
				out[winKey{key, w}] = r.aggregate(t, rs)
			}
		}
		return out
	}
	for k, rs := range r.perWindow {
		out[k] = r.aggregate(t, rs)
	}
	return out
}

// aggregate computes every oracle aggregate over recs directly.
func (r *reference) aggregate(t *testing.T, recs []arrival) map[string]any {
	var nums []float64
	var strs []arrival // records with a non-nil s
	for _, a := range recs {
		if v, ok := a.value["v"].(float64); ok {
			nums = append(nums, v)
		}
		if a.value["s"] != nil {
			strs = append(strs, a)
		}
	}
	res := map[string]any{"n": int64(len(recs)), "n_v": int64(len(nums))}
	sum := 0.0
	for _, v := range nums {
		sum += v
	}
	res["sum"] = sum
	if len(nums) == 0 {
		res["sum"] = 0 // the sum of no numbers is the integer 0
	}
	res["min"], res["max"], res["avg"] = nil, nil, nil
	if len(nums) > 0 {
		res["min"], res["max"], res["avg"] = slices.Min(nums), slices.Max(nums), sum/float64(len(nums))
	}

	// count_distinct: the sketch of the same values (exact below 2048
	// distinct values, which the test also checks against a set).
	h, _ := sketch.NewHLL(0)
	set := map[string]bool{}
	for _, a := range strs {
		b, _ := json.Marshal(a.value["s"])
		h.AddBytes(b)
		set[string(b)] = true
	}
	if h.Estimate() != uint64(len(set)) {
		t.Errorf("reference HLL estimate %d, exact %d", h.Estimate(), len(set))
	}
	res["distinct"] = int64(len(set))

	// percentiles: the sketch of the same values, which must also be within
	// the relative accuracy of the exact rank-floor(q*(n-1)) value.
	q, _ := sketch.NewQuantiles(0, 0)
	for _, v := range nums {
		_ = q.Add(v)
	}
	sortedNums := slices.Clone(nums)
	slices.Sort(sortedNums)
	pct := map[string]any{}
	for _, p := range oraclePercents {
		if len(nums) == 0 {
			pct[PercentName(p)] = nil
			continue
		}
		est, _ := q.Quantile(p / 100)
		exact := sortedNums[int(p/100*float64(len(nums)-1))]
		if math.Abs(est-exact) > 0.01*math.Abs(exact)+1e-9 {
			t.Errorf("p%v: sketch %v, exact %v", p, est, exact)
		}
		pct[PercentName(p)] = est
	}
	res["pct"] = pct

	byTime := slices.Clone(strs)
	sort.SliceStable(byTime, func(i, j int) bool {
		if byTime[i].t != byTime[j].t {
			return byTime[i].t < byTime[j].t
		}
		return byTime[i].idx < byTime[j].idx
	})
	res["first"], res["last"] = nil, nil
	head, tail := []any{}, []any{}
	if len(byTime) > 0 {
		res["first"], res["last"] = byTime[0].value["s"], byTime[len(byTime)-1].value["s"]
	}
	for i, a := range byTime {
		if i < 3 {
			head = append(head, a.value["s"])
		}
		if i >= len(byTime)-3 {
			tail = append(tail, a.value["s"])
		}
	}
	res["head"], res["tail"] = head, tail

	// Ties keep arrival order (session records come sorted by time).
	ranked := slices.Clone(recs)
	sort.SliceStable(ranked, func(i, j int) bool {
		si, sj := ranked[i].value["score"].(float64), ranked[j].value["score"].(float64)
		if si != sj {
			return si > sj
		}
		return ranked[i].idx < ranked[j].idx
	})
	top := []any{}
	for _, a := range ranked[:min(3, len(ranked))] {
		top = append(top, jsonRoundTrip(a.value))
	}
	res["top"] = top
	return res
}

func jsonRoundTrip(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

// ---- driver ----

type oracleCase struct {
	name string
	spec Spec
}

func oracleCases(t *testing.T) []oracleCase {
	tum, err1 := Tumbling(100)
	hop, err2 := Hopping(100, 25)
	hopOdd, err3 := Hopping(100, 30)
	ses, err4 := Session(40)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		t.Fatal(err)
	}
	return []oracleCase{{"tumbling", tum}, {"hopping", hop}, {"hopping-uneven", hopOdd}, {"session", ses}}
}

// run feeds events to an operator and returns its per-record outcomes and
// the results it emitted (final mode: one per window; update mode: the last
// update of every window not retracted).
func run(t *testing.T, spec Spec, emit Emit, evs []event) ([]string, map[winKey]map[string]any, []arrival) {
	t.Helper()
	store := NewMemStore()
	cfg := Config{Window: spec, Grace: oracleGrace, Emit: emit, Aggregates: oracleAggregates()}
	op, err := NewOperator(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTracker(oracleIdle)
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(3) {
		tr.Assign(p, 0)
	}
	results := map[winKey]map[string]any{}
	collect := func(rs []Result, wm int64, closing bool) {
		for _, r := range rs {
			k := winKey{string(r.Key), r.Window}
			switch {
			case emit == EmitFinal:
				if !closing {
					t.Fatalf("final mode emitted %v outside Advance", k)
				}
				if r.Window.End+oracleGrace > wm {
					t.Fatalf("%v emitted at watermark %d before it closed", k, wm)
				}
				if _, dup := results[k]; dup {
					t.Fatalf("%v emitted twice", k)
				}
				results[k] = r.Values
			case closing:
				t.Fatalf("update mode emitted %v on close", k)
			case r.Retract:
				delete(results, k)
			default:
				results[k] = r.Values
			}
		}
	}
	var outcomes []string
	var arrivals []arrival
	for i, e := range evs {
		if i == len(evs)/2 {
			// A restart: a new operator over the same state.
			if op, err = NewOperator(cfg, store); err != nil {
				t.Fatal(err)
			}
		}
		if !e.tick {
			tr.Observe(e.part, e.t, e.now)
		}
		if wm, ok := tr.Watermark(e.now); ok {
			rs, err := op.Advance(wm)
			if err != nil {
				t.Fatal(err)
			}
			collect(rs, wm, true)
		}
		if e.tick {
			continue
		}
		wm, hasWM := op.Watermark()
		arrivals = append(arrivals, arrival{key: e.key, t: e.t, value: e.value, wm: wm, hasWM: hasWM, idx: len(arrivals)})
		rs, err := op.Process([]byte(e.key), e.t, e.value)
		var re *RecordError
		switch {
		case err == nil:
			outcomes = append(outcomes, "ok")
			if emit == EmitUpdate && len(rs) == 0 {
				t.Fatal("update mode emitted nothing for an accepted record")
			}
		case errors.As(err, &re):
			outcomes = append(outcomes, re.Reason)
		default:
			t.Fatal(err)
		}
		collect(rs, wm, false)
	}
	rs, err := op.Flush()
	if err != nil {
		t.Fatal(err)
	}
	collect(rs, math.MaxInt64, true)
	// Everything closed: only the metadata keys (sequence, watermark, low
	// marks) remain.
	for _, e := range store.entries {
		if e.k[0] != famMeta {
			t.Errorf("key %q left in the store after flushing", e.k)
		}
	}
	return outcomes, results, arrivals
}

func TestOracle(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4, 5} {
		evs := genEvents(rand.New(rand.NewPCG(seed, 99)), 400)
		for _, c := range oracleCases(t) {
			t.Run(fmt.Sprintf("%s/seed%d", c.name, seed), func(t *testing.T) {
				for _, emit := range []Emit{EmitFinal, EmitUpdate} {
					outcomes, got, arrivals := run(t, c.spec, emit, evs)
					ref := &reference{
						kind: c.spec.Kind(), size: c.spec.Size(), advance: c.spec.Advance(), gap: c.spec.Gap(),
						grace: oracleGrace, accepted: map[string][]arrival{}, perWindow: map[winKey][]arrival{},
					}
					for _, a := range arrivals {
						ref.add(a)
					}
					counts := map[string]int{}
					for i := range arrivals {
						counts[ref.outcomes[i]]++
						if outcomes[i] != ref.outcomes[i] {
							a := arrivals[i]
							t.Fatalf("emit %d: record %d (key %s, t %d, wm %d): operator says %s, reference %s",
								emit, i, a.key, a.t, a.wm, outcomes[i], ref.outcomes[i])
						}
					}
					// The inputs must exercise every path.
					if counts["late"] == 0 || counts["type"] == 0 || counts["ok"] < len(arrivals)/2 {
						t.Fatalf("generated outcomes %v do not cover late and type rejections", counts)
					}
					want := ref.results(t)
					if len(got) != len(want) {
						t.Errorf("emit %d: %d windows, reference %d", emit, len(got), len(want))
					}
					for k, w := range want {
						g, ok := got[k]
						if !ok {
							t.Errorf("emit %d: window %s %v missing", emit, k.key, k.w)
							continue
						}
						for name, wv := range w {
							if !reflect.DeepEqual(g[name], wv) {
								t.Errorf("emit %d: window %s %v: %s = %#v, reference %#v", emit, k.key, k.w, name, g[name], wv)
							}
						}
						if len(g) != len(w) {
							t.Errorf("emit %d: window %s %v has %d values, want %d", emit, k.key, k.w, len(g), len(w))
						}
					}
				}
			})
		}
	}
}
