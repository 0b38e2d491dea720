package identity

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

// The written-out dummy hash must cost what a real check costs, or a login
// naming no user would answer faster than one naming a user.
func TestDummyHashMatchesParameters(t *testing.T) {
	want := fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$", argon2.Version, argonMemory, argonTime, argonThreads)
	if !strings.HasPrefix(dummyHash, want) {
		t.Fatalf("dummyHash %q does not start with the current parameters %q: regenerate it with HashPassword", dummyHash, want)
	}
	if ok, err := CheckPassword(dummyHash, "sluice-no-such-user"); err != nil || !ok {
		t.Fatalf("dummyHash does not verify its own password: %v %v", ok, err)
	}
}
