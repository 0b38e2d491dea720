package identity

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$") || strings.Contains(h, "correct horse") {
		t.Fatalf("hash %q is not an argon2id PHC string without the password", h)
	}
	h2, _ := HashPassword("correct horse battery")
	if h == h2 {
		t.Error("two hashes of one password are equal: salt not random")
	}
	for pw, want := range map[string]bool{"correct horse battery": true, "correct horse batterY": false, "": false} {
		ok, err := CheckPassword(h, pw)
		if err != nil || ok != want {
			t.Errorf("CheckPassword(%q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
	for _, bad := range []string{"", "$2a$10$abc", "$argon2id$v=19$m=1,t=1,p=1$!!$!!", "$argon2i$v=19$m=1,t=1,p=1$AA$AA"} {
		if _, err := CheckPassword(bad, "x"); err != ErrBadHash {
			t.Errorf("CheckPassword(%q) err = %v, want ErrBadHash", bad, err)
		}
	}
}

func TestToken(t *testing.T) {
	s1, h1, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	s2, h2, _ := NewToken()
	if s1 == s2 || bytes.Equal(h1, h2) {
		t.Fatal("tokens repeat")
	}
	if !strings.HasPrefix(s1, TokenPrefix) || len(s1) < 40 {
		t.Errorf("token %q: want prefix %s and >= 256 bits", s1, TokenPrefix)
	}
	if !bytes.Equal(HashSecret(s1), h1) {
		t.Error("HashSecret does not reproduce the stored hash")
	}
	if p := DisplayPrefix(s1); len(p) >= len(s1) || !strings.HasPrefix(s1, p) {
		t.Errorf("DisplayPrefix = %q", p)
	}
}

func TestRoles(t *testing.T) {
	cases := []struct {
		r, min Role
		want   bool
	}{
		{Owner, Developer, true}, {Developer, Developer, true}, {Viewer, Developer, false},
		{Viewer, Viewer, true}, {"", Viewer, false}, {"admin", Viewer, false}, {Owner, Owner, true}, {Developer, Owner, false},
	}
	for _, c := range cases {
		if got := c.r.AtLeast(c.min); got != c.want {
			t.Errorf("%q.AtLeast(%q) = %v", c.r, c.min, got)
		}
	}
}

// The Hasher runs at most its cap of hashes at once; past it, callers wait
// a bounded time (ErrBusy) or until their context ends.
func TestHasherCap(t *testing.T) {
	h := NewHasher(1, 20*time.Millisecond)
	release, err := h.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Hash(context.Background(), "correct horse battery"); !errors.Is(err, ErrBusy) {
		t.Errorf("Hash with the only slot taken: %v, want ErrBusy", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	long := NewHasher(1, time.Hour)
	r2, _ := long.acquire(context.Background())
	if _, err := long.Check(ctx, "x", "y"); !errors.Is(err, context.Canceled) {
		t.Errorf("Check with a cancelled context: %v, want context.Canceled", err)
	}
	r2()
	// A waiter gets the slot as soon as it is released.
	done := make(chan error)
	go func() {
		_, err := h.Hash(context.Background(), "correct horse battery")
		done <- err
	}()
	time.Sleep(5 * time.Millisecond)
	release()
	if err := <-done; err != nil {
		t.Errorf("Hash after release: %v", err)
	}
}
