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
