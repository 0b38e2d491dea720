package state_test

import (
	"testing"

	"github.com/sluicehq/sluice/internal/state"
	"github.com/sluicehq/sluice/internal/state/statetest"
)

// TestMemoryConformance holds the memory store to the suite every store
// runs (the disk store: pebblestore's TestConformance).
func TestMemoryConformance(t *testing.T) {
	statetest.Run(t, func(*testing.T) state.Committer { return state.NewMemory() })
}

// TestBufferedConformance runs the suite on a memory store that does not
// show it is one, so that a Logged store over it buffers its writes until
// they are committed, as over a disk store, rather than writing through.
func TestBufferedConformance(t *testing.T) {
	statetest.Run(t, func(*testing.T) state.Committer { return opaque{state.NewMemory()} })
}

// opaque hides the type of its Committer.
type opaque struct{ state.Committer }
