package keyed

import (
	"math"
	"strconv"

	"github.com/sluicehq/sluice/internal/record"
)

// Number returns a decoded JSON value as a float64 when it is a finite
// number: an int, a float64, or an integer beyond int64 kept as its text
// (record.Number). The domain operators all read their measures this way,
// so they agree on what a number is.
func Number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, !math.IsNaN(n) && !math.IsInf(n, 0)
	case record.Number:
		f, err := strconv.ParseFloat(string(n), 64)
		return f, err == nil && !math.IsInf(f, 0)
	}
	return 0, false
}
