package changelog

import (
	"fmt"
	"testing"
)

// TestRestoreBatchKeepsLastPerKey checks the batch a restore applies
// against a map: one change per key, in the order the keys first came,
// with the last value read, across batches (the index is reset and
// reused) and while its table grows well past its first size.
func TestRestoreBatchKeepsLastPerKey(t *testing.T) {
	b := restoreBatch{index: newKeyIndex()}
	for round := range 3 {
		var order []string
		want := map[string]string{}
		keys := 20_000 << round
		for i := range 3 * keys {
			k := fmt.Sprintf("k%d", (i*7919)%keys)
			if _, ok := want[k]; !ok {
				order = append(order, k)
			}
			v := fmt.Sprintf("v%d-%d", round, i)
			want[k] = v
			b.add([]byte(k), []byte(v))
		}
		if b.read != 3*keys || len(b.changes) != len(order) {
			t.Fatalf("round %d: %d read, %d changes, want %d and %d", round, b.read, len(b.changes), 3*keys, len(order))
		}
		for i, c := range b.changes {
			if string(c.Key) != order[i] || string(c.Value) != want[order[i]] {
				t.Fatalf("round %d: change %d is %s=%s, want %s=%s", round, i, c.Key, c.Value, order[i], want[order[i]])
			}
		}
		b.reset()
	}
}
