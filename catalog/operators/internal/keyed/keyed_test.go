package keyed

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/state"
)

// counter counts a key's events and reports the count on a timer 10 ms
// after the key's first event; the report forgets the key.
type counter struct{}

func (counter) Event(key, st []byte, t int64, p []byte) (Result, error) {
	first, n := t, 0
	if st != nil {
		fmt.Sscanf(string(st), "%d %d", &first, &n)
	}
	return Result{State: fmt.Appendf(nil, "%d %d", first, n+1), Timer: first + 10, HasTimer: true}, nil
}

func (counter) Timer(key, st []byte, at int64) (Result, error) {
	return Result{Out: []Emit{{Time: at, Value: fmt.Sprintf("%s:%s", key, st)}}}, nil
}

func outs(es []Emit) string {
	var b []string
	for _, e := range es {
		b = append(b, fmt.Sprintf("%d=%v", e.Time, e.Value))
	}
	return strings.Join(b, " ")
}

func TestRunner(t *testing.T) {
	s := state.NewMemory()
	r := Runner{Grace: 5, Machine: counter{}}
	step := func(st int64, key string, at int64) string {
		t.Helper()
		es, err := r.Ingest(s, st, []byte(key), at, nil)
		if err != nil {
			t.Fatal(err)
		}
		return outs(es)
	}
	// Buffered until the frontier (stream time - 5) reaches them.
	if got := step(100, "a", 100); got != "" {
		t.Fatal(got)
	}
	if got := step(103, "b", 103); got != "" {
		t.Fatal(got)
	}
	if got := step(103, "a", 98); got != "" { // within grace: reordered
		t.Fatal(got)
	}
	// Frontier 111: a's first event is 98, its timer 108 fires (count 2);
	// b's timer is at 113.
	if got := step(116, "a", 116); got != "108=a:98 2" {
		t.Fatalf("got %q", got)
	}
	// Behind the frontier: late, and nothing changes.
	_, err := r.Ingest(s, 116, []byte("c"), 110, nil)
	var late *LateError
	if !errors.As(err, &late) || late.Frontier != 111 {
		t.Fatalf("got %v", err)
	}
	// The stream time is stored; a smaller one does not move it back.
	if st, ok, _ := StoredStreamTime(s); !ok || st != 116 {
		t.Fatalf("stored stream time %d %v", st, ok)
	}
	es, err := r.Advance(s, 90)
	if err != nil || len(es) != 0 {
		t.Fatal(es, err)
	}
	// The end of input fires everything, in time order, then key order.
	es, err = r.Advance(s, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	if got := outs(es); got != "113=b:103 1 126=a:116 1" {
		t.Fatalf("got %q", got)
	}
	// Nothing is left but the metadata.
	n := 0
	if err := s.Scan(nil, nil, func(k, _ []byte) error {
		if k[0] != famMeta {
			t.Errorf("left in the store: %q", k)
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d metadata keys", n)
	}
}

// At one time a timer fires before the events of that time.
func TestTimerBeforeEventOfItsTime(t *testing.T) {
	s := state.NewMemory()
	r := Runner{Machine: counter{}}
	if _, err := r.Ingest(s, 0, []byte("a"), 0, nil); err != nil {
		t.Fatal(err)
	}
	es, err := r.Ingest(s, 10, []byte("a"), 10, nil)
	if err != nil || outs(es) != "10=a:0 1" {
		t.Fatalf("got %q %v", outs(es), err)
	}
}
