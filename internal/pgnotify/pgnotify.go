// Package pgnotify wakes waiters in every control-plane replica when a
// PostgreSQL NOTIFY names their key. Runners long-poll their fleet's desired
// state; whichever replica records a change notifies, and the replica that
// holds the runner's request answers it at once instead of at its next
// poll. One LISTEN connection per process serves every waiter.
//
// A notification is a hint, not the data: after waking, a waiter reads the
// database again. So a lost notification (the LISTEN connection dropped)
// costs latency only, and a reconnect wakes every waiter to re-check.
package pgnotify

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Listener fans notifications on one channel out to waiters by key (the
// payload). Create it with New and run it with Run.
type Listener struct {
	pool    *pgxpool.Pool
	channel string
	log     *slog.Logger

	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{}
}

// New returns a listener of channel (an SQL identifier of ours, never user
// input).
func New(pool *pgxpool.Pool, channel string, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listener{pool: pool, channel: channel, log: log, waiters: map[string]map[chan struct{}]struct{}{}}
}

// Notify sends key on channel when tx commits (NOTIFY is transactional).
func Notify(ctx context.Context, tx pgx.Tx, channel, key string) error {
	_, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", channel, key)
	return err
}

// Wait returns a channel closed at the next notification of key (or on a
// reconnect), and a function to stop waiting. Call Wait before reading the
// state it guards, so a change between the read and the wait is not missed.
func (l *Listener) Wait(key string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	l.mu.Lock()
	set := l.waiters[key]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		l.waiters[key] = set
	}
	set[ch] = struct{}{}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if set, ok := l.waiters[key]; ok {
			if _, ok := set[ch]; ok {
				delete(set, ch)
				if len(set) == 0 {
					delete(l.waiters, key)
				}
			}
		}
	}
}

// wake closes the channels of key's waiters, or of every waiter when all.
func (l *Listener) wake(key string, all bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, set := range l.waiters {
		if !all && k != key {
			continue
		}
		for ch := range set {
			close(ch)
		}
		delete(l.waiters, k)
	}
}

// Run listens until ctx ends, reconnecting with back-off.
func (l *Listener) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		err := l.listen(ctx)
		if ctx.Err() != nil {
			return nil
		}
		l.log.Warn("listening for notifications; reconnecting", "channel", l.channel, "err", err, "in", backoff)
		// Whatever was notified while we were away is lost: let every
		// waiter read again.
		l.wake("", true)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (l *Listener) listen(ctx context.Context) error {
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection will be LISTENing: never hand it back to the pool.
	pc := conn.Hijack()
	defer pc.Close(context.WithoutCancel(ctx))
	if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{l.channel}.Sanitize()); err != nil {
		return err
	}
	for {
		n, err := pc.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		l.wake(n.Payload, false)
	}
}
