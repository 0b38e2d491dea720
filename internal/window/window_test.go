package window

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestWindows(t *testing.T) {
	tum, _ := Tumbling(10)
	hop, _ := Hopping(10, 5)
	odd, _ := Hopping(10, 4)
	ses, _ := Session(7)
	for _, c := range []struct {
		spec Spec
		t    int64
		want []Window
	}{
		{tum, 0, []Window{{0, 10}}},
		{tum, 9, []Window{{0, 10}}},
		{tum, -1, []Window{{-10, 0}}}, // aligned before the epoch too
		{hop, 12, []Window{{5, 15}, {10, 20}}},
		{hop, -5, []Window{{-10, 0}, {-5, 5}}},
		{odd, 8, []Window{{0, 10}, {4, 14}, {8, 18}}},
		{odd, 10, []Window{{4, 14}, {8, 18}}},
		{ses, 3, []Window{{3, 10}}},
		{tum, math.MaxInt64, []Window{{math.MaxInt64 - 7, math.MaxInt64}}},
	} {
		if got := c.spec.Windows(c.t); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%v at %d: %v, want %v", c.spec.Kind(), c.t, got, c.want)
		}
	}
	for _, bad := range []func() (Spec, error){
		func() (Spec, error) { return Tumbling(0) },
		func() (Spec, error) { return Hopping(10, 11) },
		func() (Spec, error) { return Hopping(10, 0) },
		func() (Spec, error) { return Session(-1) },
	} {
		if _, err := bad(); err == nil {
			t.Error("invalid spec accepted")
		}
	}
}

// Keys must sort like the values they encode, which the close scan relies
// on.
func TestKeysSortAndParse(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	times := []int64{math.MinInt64, -1 << 40, -1, 0, 1, 1 << 40, math.MaxInt64}
	for range 50 {
		times = append(times, rng.Int64()-rng.Int64())
	}
	for _, a := range times {
		for _, b := range times[:10] {
			if (a < b) != (bytes.Compare(AppendTime(nil, a), AppendTime(nil, b)) < 0) {
				t.Fatalf("times %d and %d sort wrongly", a, b)
			}
		}
		back, err := ParseTime(AppendTime(nil, a))
		if err != nil || back != a {
			t.Fatalf("ParseTime round trip of %d: %d, %v", a, back, err)
		}
		w := Window{a, satAdd(a, 5)}
		k, start, err := ParseStateKey(StateKey([]byte("key"), a))
		if err != nil || string(k) != "key" || start != a {
			t.Fatalf("state key round trip: %q %d %v", k, start, err)
		}
		end, k, start, err := ParseCloseKey(CloseKey(w, []byte("k2")))
		if err != nil || string(k) != "k2" || start != w.Start || end != w.End {
			t.Fatalf("close key round trip: %d %q %d %v", end, k, start, err)
		}
		if !bytes.HasPrefix(StateKey([]byte("key"), a), keyPrefix(famState, []byte("key"))) {
			t.Fatal("state key lacks its prefix")
		}
	}
	// A key that is a prefix of another does not share its scan range.
	if bytes.HasPrefix(StateKey([]byte("ab"), 0), keyPrefix(famState, []byte("a"))) {
		t.Fatal("record key a's prefix covers key ab")
	}
	for _, bad := range [][]byte{nil, {famState, 0, 0, 0, 9}, append(StateKey([]byte("x"), 1), 0)} {
		if _, _, err := ParseStateKey(bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("ParseStateKey(%x): %v", bad, err)
		}
		if _, _, _, err := ParseCloseKey(bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("ParseCloseKey(%x): %v", bad, err)
		}
	}
	if got := PrefixEnd([]byte{1, 0xff}); !bytes.Equal(got, []byte{2}) {
		t.Errorf("PrefixEnd = %x", got)
	}
	if PrefixEnd([]byte{0xff}) != nil {
		t.Error("PrefixEnd of 0xff is not nil")
	}
}

func TestAggregateTypesAndRoundTrip(t *testing.T) {
	for _, a := range oracleAggregates() {
		acc, err := a.New()
		if err != nil {
			t.Fatal(err)
		}
		// nil is skipped by everything except count() of records.
		in, _ := a.Extract(map[string]any{"score": 1.0}, 5, 1)
		if err := acc.Add(in); err != nil {
			t.Fatalf("%s: nil input: %v", a.Name, err)
		}
		for i, v := range []any{3.0, 1, int64(-2), "str", true, map[string]any{"x": []any{1.0}}} {
			in, _ := a.Extract(map[string]any{"v": v, "s": v, "score": float64(i)}, int64(10-i), uint64(i+2))
			err := acc.Add(in)
			numeric := a.Func == Sum || a.Func == Min || a.Func == Max || a.Func == Avg || a.Func == Percentiles
			_, isNum := v.(float64)
			isNum = isNum || v == 1 || v == int64(-2)
			if numeric && !isNum {
				if !errors.Is(err, ErrType) {
					t.Errorf("%s(%T): err = %v, want ErrType", a.Name, v, err)
				}
			} else if err != nil {
				t.Errorf("%s(%T): %v", a.Name, v, err)
			}
		}
		b, err := acc.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		back, err := a.Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
		if !reflect.DeepEqual(back.Result(), acc.Result()) {
			t.Errorf("%s: %v after round trip, %v before", a.Name, back.Result(), acc.Result())
		}
		for i := range b {
			if _, err := a.Decode(b[:i]); err == nil {
				t.Errorf("%s: truncated accumulator (%d of %d bytes) decoded", a.Name, i, len(b))
			}
		}
	}
	for _, v := range []any{math.NaN(), math.Inf(1)} {
		acc, _ := (&Aggregate{Name: "s", Func: Sum}).New()
		if err := acc.Add(Input{Value: v}); !errors.Is(err, ErrType) {
			t.Errorf("sum(%v): %v, want ErrType", v, err)
		}
	}
	// A stored accumulator of another function is refused.
	c, _ := (&Aggregate{Name: "c", Func: Count}).New()
	b, _ := c.AppendBinary(nil)
	if _, err := (&Aggregate{Name: "s", Func: Sum}).Decode(b); err == nil {
		t.Error("sum decoded a count accumulator")
	}
}

func TestOperatorRejectsTypeWithoutChangingState(t *testing.T) {
	tum, _ := Tumbling(10)
	store := NewMemStore()
	op, err := NewOperator(Config{Window: tum, Grace: 0, Emit: EmitUpdate, Aggregates: []Aggregate{
		{Name: "n", Func: Count}, {Name: "sum", Func: Sum, Input: field("v")},
	}}, store)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.Process([]byte("k"), 1, map[string]any{"v": 2.0}); err != nil {
		t.Fatal(err)
	}
	before := slices.Clone(store.entries)
	_, err = op.Process([]byte("k"), 2, map[string]any{"v": "x"})
	var re *RecordError
	if !errors.As(err, &re) || re.Reason != ReasonType || re.Aggregate != "sum" || !errors.Is(err, ErrType) {
		t.Fatalf("err = %v, want a type RecordError for sum", err)
	}
	if !reflect.DeepEqual(store.entries, before) {
		t.Fatal("a rejected record changed the state")
	}
	if _, err := op.Advance(10); err != nil {
		t.Fatal(err)
	}
	_, err = op.Process([]byte("k"), 9, map[string]any{"v": 1.0})
	if !errors.As(err, &re) || re.Reason != ReasonLate || !errors.Is(err, ErrLate) {
		t.Fatalf("err = %v, want late", err)
	}
	// Times as people read them, not epoch milliseconds.
	if want := "event time 1970-01-01T00:00:00.009Z, and the stream time 1970-01-01T00:00:00.01Z"; !strings.Contains(err.Error(), want) {
		t.Errorf("late error %q does not say %q", err, want)
	}
	for _, cfg := range []Config{
		{Window: tum, Grace: -1, Emit: EmitFinal, Aggregates: []Aggregate{{Name: "n", Func: Count}}},
		{Window: tum, Emit: 0, Aggregates: []Aggregate{{Name: "n", Func: Count}}},
		{Emit: EmitFinal, Aggregates: []Aggregate{{Name: "n", Func: Count}}},
		{Window: tum, Emit: EmitFinal},
		{Window: tum, Emit: EmitFinal, Aggregates: []Aggregate{{Name: "n", Func: Count}, {Name: "n", Func: Sum}}},
		{Window: tum, Emit: EmitFinal, Aggregates: []Aggregate{{Name: "t", Func: TopN, N: 1}}},
	} {
		if _, err := NewOperator(cfg, NewMemStore()); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

func TestTracker(t *testing.T) {
	tr, _ := NewTracker(100)
	tr.Assign(0, 0)
	tr.Assign(1, 0)
	check := func(now, want int64, wantOK bool) {
		t.Helper()
		if got, ok := tr.Watermark(now); got != want || ok != wantOK {
			t.Fatalf("at %d: watermark %d %v, want %d %v", now, got, ok, want, wantOK)
		}
	}
	tr.Observe(0, 500, 10)
	check(10, 0, false) // partition 1 has no record yet and is not idle
	tr.Observe(1, 300, 20)
	check(20, 300, true)
	tr.Observe(0, 900, 50)
	check(50, 300, true)
	check(119, 300, true) // partition 1 still active (99 ms since its record)
	check(120, 900, true) // partition 1 idle: no longer holds the watermark
	tr.Observe(1, 400, 130)
	check(130, 900, true) // rejoined behind: the watermark does not go back
	tr.Observe(1, 1000, 140)
	tr.Observe(0, 1200, 140)
	check(140, 1000, true)
	check(1000, 1200, true) // everything idle: the maximum seen
	tr.Revoke(0)
	tr.Observe(1, 1100, 1001)
	check(1001, 1200, true)
	if _, err := NewTracker(-1); err == nil {
		t.Error("negative idle timeout accepted")
	}
}

// TestTrackerOracle compares the tracker with a direct evaluation of its
// definition on random input.
func TestTrackerOracle(t *testing.T) {
	for seed := range uint64(5) {
		rng := rand.New(rand.NewPCG(seed, 7))
		tr, _ := NewTracker(50)
		type part struct {
			max, last int64
			has       bool
		}
		parts := map[int32]*part{}
		var now, wm int64
		hasWM := false
		for range 2000 {
			now += int64(rng.IntN(20))
			if rng.IntN(3) > 0 {
				p := int32(rng.IntN(4))
				if p == 3 && rng.IntN(5) > 0 {
					p = 0 // partition 3 is mostly quiet
				}
				et := int64(rng.IntN(1000)) + now
				tr.Observe(p, et, now)
				if parts[p] == nil {
					parts[p] = &part{}
				}
				parts[p].last = now
				if !parts[p].has || et > parts[p].max {
					parts[p].max, parts[p].has = et, true
				}
			}
			var active []*part
			var all []int64
			for _, st := range parts {
				all = append(all, st.max)
				if now-st.last < 50 {
					active = append(active, st)
				}
			}
			cand, ok := int64(0), false
			if len(active) == 0 && len(all) > 0 {
				cand, ok = slices.Max(all), true
			} else if len(active) > 0 {
				cand, ok = active[0].max, true
				for _, st := range active {
					cand = min(cand, st.max)
				}
			}
			if ok && (!hasWM || cand > wm) {
				wm, hasWM = cand, true
			}
			if got, gotOK := tr.Watermark(now); got != wm || gotOK != hasWM {
				t.Fatalf("seed %d at %d: %d %v, want %d %v", seed, now, got, gotOK, wm, hasWM)
			}
		}
	}
}

// TestDedupeOracle checks the dedupe model against a brute-force reading
// of its definition: a record is a duplicate when the latest earlier passing
// occurrence of its id that has not expired (t0 + horizon > watermark) is
// within the horizon of it.
func TestDedupeOracle(t *testing.T) {
	const horizon = 100
	for seed := range uint64(6) {
		rng := rand.New(rand.NewPCG(seed, 11))
		store := NewMemStore()
		d, err := NewDedupe(horizon, store)
		if err != nil {
			t.Fatal(err)
		}
		type passed struct{ t int64 }
		passes := map[string][]passed{}
		var clock, maxT, wm int64
		var drops, passCount int
		for i := range 1500 {
			if i == 700 {
				if d, err = NewDedupe(horizon, store); err != nil { // restart
					t.Fatal(err)
				}
			}
			clock += int64(rng.IntN(6))
			ts := clock - int64(rng.IntN(40))
			if rng.IntN(10) == 0 {
				ts -= int64(rng.IntN(300))
			}
			maxT = max(maxT, ts)
			if i%7 == 0 && maxT-30 > wm {
				wm = maxT - 30
				if err := d.Advance(wm); err != nil {
					t.Fatal(err)
				}
			}
			id := string(rune('a' + rng.IntN(12)))
			var latest *passed
			for j, p := range passes[id] {
				if p.t+horizon > wm && (latest == nil || p.t > latest.t) {
					latest = &passes[id][j]
				}
			}
			wantPass := latest == nil || ts-latest.t >= horizon || latest.t-ts >= horizon
			got, err := d.Process([]byte(id), ts)
			if err != nil {
				t.Fatal(err)
			}
			if got != wantPass {
				t.Fatalf("seed %d record %d (id %s, t %d, wm %d): pass=%v, want %v", seed, i, id, ts, wm, got, wantPass)
			}
			if got {
				passes[id] = append(passes[id], passed{ts})
				passCount++
			} else {
				drops++
			}
		}
		if drops == 0 || passCount == 0 {
			t.Fatalf("seed %d: %d drops, %d passes: the input does not exercise dedupe", seed, drops, passCount)
		}
		if err := d.Advance(math.MaxInt64); err != nil {
			t.Fatal(err)
		}
		if store.Len() != 1 {
			t.Fatalf("%d keys left after expiring everything, want the watermark only", store.Len())
		}
	}
	if _, err := NewDedupe(0, NewMemStore()); err == nil {
		t.Error("zero horizon accepted")
	}
}

func TestMemStoreScan(t *testing.T) {
	s := NewMemStore()
	for _, k := range []string{"b", "a", "d", "c"} {
		_ = s.Put([]byte(k), []byte(k+k))
	}
	_ = s.Delete([]byte("c"))
	var got []string
	_ = s.Scan([]byte("a"), []byte("d"), func(k, v []byte) error {
		got = append(got, string(k)+"="+string(v))
		return s.Delete(k) // allowed: Scan iterates over a snapshot
	})
	if !reflect.DeepEqual(got, []string{"a=aa", "b=bb"}) || s.Len() != 1 {
		t.Fatalf("scan %v, %d left", got, s.Len())
	}
	stop := errors.New("stop")
	if err := s.Scan(nil, nil, func(k, v []byte) error { return stop }); err != stop {
		t.Fatalf("scan error %v", err)
	}
}

// Sums of integers are integers, min and max keep their input's kind, and
// avg is a float64; all of it survives the accumulator's encoding.
func TestNumberKinds(t *testing.T) {
	run := func(f Func, inputs ...any) any {
		a := &Aggregate{Name: "x", Func: f}
		acc, err := a.New()
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range inputs {
			if err := acc.Add(Input{Value: v}); err != nil {
				t.Fatal(err)
			}
		}
		b, err := acc.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		back, err := a.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fmt.Sprintf("%T %v", back.Result(), back.Result()), fmt.Sprintf("%T %v", acc.Result(), acc.Result()); got != want {
			t.Errorf("%s%v: %s after a round trip, %s before", f, inputs, got, want)
		}
		return acc.Result()
	}
	for _, tt := range []struct {
		f      Func
		inputs []any
		want   any
	}{
		{Sum, []any{1, 2, 3}, 6},
		{Sum, nil, 0},
		{Sum, []any{1, 2.5}, 3.5},
		{Sum, []any{1, 2.0}, 3.0},
		{Sum, []any{math.MaxInt64, 1}, 9223372036854775808.0}, // past int64: a float64
		{Sum, []any{9007199254740993, 1}, 9007199254740994},   // exact beyond 2^53
		{Avg, []any{1, 2, 3}, 2.0},
		{Min, []any{3, 1.5, 2}, 1.5},
		{Min, []any{3, 1, 2.0}, 1},
		{Max, []any{3, 1.5, 2}, 3},
		{Max, []any{9007199254740993, 9007199254740992}, 9007199254740993},
		{Max, []any{2.0, 2}, 2.0}, // a tie keeps the first
	} {
		if got := run(tt.f, tt.inputs...); fmt.Sprintf("%T %v", got, got) != fmt.Sprintf("%T %v", tt.want, tt.want) {
			t.Errorf("%s%v = %T %v, want %T %v", tt.f, tt.inputs, got, got, tt.want, tt.want)
		}
	}
}

// State written before ints existed (tag without kindsTag, no kind byte)
// still decodes, as float64s.
func TestLegacyAccumulators(t *testing.T) {
	legacy := func(f Func, rest ...byte) []byte {
		return append([]byte{funcTag(f)}, rest...)
	}
	six := []byte{0x40, 0x18, 0, 0, 0, 0, 0, 0} // 6.0
	for _, tt := range []struct {
		f    Func
		b    []byte
		want any
	}{
		{Sum, legacy(Sum, append(six, 3)...), 6.0},
		{Sum, legacy(Sum, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0},
		{Avg, legacy(Avg, append(six, 3)...), 2.0},
		{Max, legacy(Max, append([]byte{1}, six...)...), 6.0},
		{Min, legacy(Min, 0), nil},
	} {
		acc, err := (&Aggregate{Name: "x", Func: tt.f}).Decode(tt.b)
		if err != nil {
			t.Errorf("%s: %v", tt.f, err)
			continue
		}
		if got := acc.Result(); fmt.Sprintf("%T %v", got, got) != fmt.Sprintf("%T %v", tt.want, tt.want) {
			t.Errorf("%s = %T %v, want %T %v", tt.f, got, got, tt.want, tt.want)
		}
	}
}
