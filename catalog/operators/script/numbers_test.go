package script

import (
	"math"
	"testing"
)

// A JavaScript number comes out as JSON.stringify would write it: whole
// numbers without a fraction (an int), others as floats, so a script that
// returns {n: 13} writes 13, not 13.0.
func TestNumbersKeepJavaScriptsForm(t *testing.T) {
	for _, c := range []struct {
		in   any
		want any
	}{
		{int64(13), 13}, {float64(13), 13}, {math.Copysign(0, -1), 0}, {1.5, 1.5},
		{float64(1 << 53), 1 << 53}, {float64(1 << 60), float64(1 << 60)},
	} {
		got, err := primitive(c.in, "value")
		if err != nil || got != c.want {
			t.Errorf("primitive(%v %T) = %v %T (%v), want %v %T", c.in, c.in, got, got, err, c.want, c.want)
		}
	}
}
