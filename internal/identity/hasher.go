package identity

import (
	"context"
	"errors"
	"time"
)

// ErrBusy is returned when no hashing slot freed up within the Hasher's
// wait: the caller should answer "try again shortly" (503 with
// Retry-After), not fail.
var ErrBusy = errors.New("identity: too many password hashes in progress")

// Hasher runs argon2id hashes and checks with a cap on how many run at
// once. Each takes argonMemory and argonThreads, so an unbounded burst of
// logins (or an attacker's parallel guesses) would exhaust memory and
// starve every other request of CPU; past the cap, callers queue for a
// bounded time instead.
type Hasher struct {
	slots chan struct{}
	wait  time.Duration
}

// NewHasher returns a Hasher running at most concurrency hashes at once
// (at least one), whose callers wait up to wait for a slot before ErrBusy.
func NewHasher(concurrency int, wait time.Duration) *Hasher {
	return &Hasher{slots: make(chan struct{}, max(concurrency, 1)), wait: max(wait, 0)}
}

// acquire takes a slot, waiting up to h.wait or until ctx ends: a caller
// whose client went away stops queueing.
func (h *Hasher) acquire(ctx context.Context) (release func(), err error) {
	release = func() { <-h.slots }
	select {
	case h.slots <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(h.wait)
	defer t.Stop()
	select {
	case h.slots <- struct{}{}:
		return release, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, ErrBusy
	}
}

// Hash is HashPassword within the cap.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	release, err := h.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return HashPassword(password)
}

// Check is CheckPassword within the cap. Once a slot is taken the check
// runs to the end: an argon2 pass cannot be interrupted.
func (h *Hasher) Check(ctx context.Context, hash, password string) (bool, error) {
	release, err := h.acquire(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	return CheckPassword(hash, password)
}

// Burn is BurnPasswordCheck within the cap, so a login for an unknown
// account costs the same time, and the same slot, as one for a real one.
func (h *Hasher) Burn(ctx context.Context, password string) error {
	release, err := h.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	BurnPasswordCheck(password)
	return nil
}
