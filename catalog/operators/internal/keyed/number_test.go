package keyed

import (
	"math"
	"testing"

	"github.com/sluicehq/sluice/internal/record"
)

func TestNumber(t *testing.T) {
	for _, c := range []struct {
		in   any
		want float64
		ok   bool
	}{
		{4, 4, true}, {int64(-3), -3, true}, {1.5, 1.5, true},
		{record.Number("123456789012345678901"), 123456789012345678901, true},
		{math.NaN(), 0, false}, {math.Inf(1), 0, false}, {"4", 0, false}, {nil, 0, false}, {true, 0, false},
	} {
		got, ok := Number(c.in)
		if ok != c.ok || ok && got != c.want {
			t.Errorf("Number(%v %T) = %v %v, want %v %v", c.in, c.in, got, ok, c.want, c.ok)
		}
	}
}
