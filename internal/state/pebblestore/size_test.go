package pebblestore

import (
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/internal/state"
)

// A disk store's size is an estimate that follows the writes within
// reason before and after a flush. (A memory store's, exact: package
// state's TestStoreSize.)
func TestStoreSize(t *testing.T) {
	p, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var changes []state.Change
	for i := range 1000 {
		changes = append(changes, state.Change{Key: fmt.Appendf(nil, "key-%04d", i), Value: make([]byte, 100)})
	}
	if err := p.Apply(changes, state.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	if got := p.Size(); got.Keys != 1000 || got.Bytes < 100_000 || !got.Estimated {
		t.Fatalf("disk store before a flush: %+v", got)
	}
	if err := p.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := p.Size(); got.Keys != 1000 || got.Bytes < 1000 || !got.Estimated {
		t.Fatalf("disk store after a flush: %+v", got)
	}
}
