package runtime

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// endTimeout bounds ending one transaction or committing offsets, also when
// the pipeline is stopping.
const endTimeout = 30 * time.Second

// exactlyOnce consumes, processes and produces in transactions: each one
// starts when records arrive and ends one commit interval later, committing
// the outputs, the DLQ records and the consumed offsets together. A
// rebalance during a transaction aborts it; the session rewinds to the
// committed offsets and the records are processed again, here or on the
// runner that now owns them, so nothing is lost or duplicated.
func (ru *run) exactlyOnce(ex *executor, prod *producer) error {
	cfg := ru.rt.cfg
	opts := append(ru.baseOpts(ru.inputs()),
		kgo.TransactionalID(ru.p.group()+"/"+cfg.instanceID),
		kgo.TransactionTimeout(cfg.txnTimeout),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return err
	}
	// A stop that finds a record stuck closes the session from another
	// goroutine (run.stop): it leaves the group, and the transaction,
	// never ended here, is aborted by the broker or fenced by the next
	// revision's producer.
	var closeOnce sync.Once
	closeSess := func() { closeOnce.Do(sess.Close) }
	defer closeSess()
	ru.setAbandon(func() { go closeSess() })
	// Load the producer ID before consuming: with the same instance ID as
	// a runner that died, this fences it and aborts the transaction it
	// left open. Otherwise that transaction's pending offset commit makes
	// the group's offset fetch fail as unstable until it times out, and
	// the producer ID (loaded lazily, by the first produce) never comes.
	ictx, cancel := context.WithTimeout(ru.ctx, endTimeout)
	_, _, err = sess.Client().ProducerID(ictx)
	cancel()
	if ru.ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("initializing the transactional producer: %w", err)
	}
	prod.produce = sess.Produce
	name := ru.p.Plan.Name
	m := ru.rt.metrics
	ru.setState(Running, nil)
	// process restores the stores of the tasks f has records for (a
	// stateful pipeline), then processes f.
	process := func(f kgo.Fetches) error {
		if ru.st != nil {
			if err := ru.st.prepare(ru.ctx, ex, f); err != nil {
				return err
			}
		}
		return ex.processFetches(f)
	}
	retried := false // the last transaction was aborted on abortableProduce errors
	for {
		// A stateful pipeline wakes up now and then to move on the
		// stream time of idle tasks.
		pctx, cancel := ru.ctx, context.CancelFunc(func() {})
		if ru.st != nil {
			pctx, cancel = context.WithTimeout(ru.ctx, min(cfg.idleTimeout, time.Second))
		}
		fetches := sess.PollRecords(pctx, ru.batch(cfg.commitInterval))
		cancel()
		if fetches.IsClientClosed() || ru.ctx.Err() != nil {
			return nil // nothing begun: leaving the group loses nothing
		}
		if err := ru.fetchErr(fetches); err != nil {
			return err
		}
		if err := ru.polled(ru.ctx, sess.Client(), fetches); err != nil {
			return err
		}
		var procErr error
		if fetches.NumRecords() == 0 {
			if ru.st == nil {
				continue
			}
			ru.st.dropRevoked(ex) // no transaction open: nothing pending
			if err := ru.st.wake(ru.ctx, ex); err != nil {
				if errors.Is(err, errStopping) {
					return nil
				}
				return err
			}
			if err := ru.st.keepWarm(ru.ctx, sess.Client()); err != nil {
				return err
			}
			began := false
			_, procErr = ru.st.idle(ex.work, ex, time.Now(), func() error { began = true; return sess.Begin() })
			if !began {
				if procErr != nil {
					return procErr
				}
				continue
			}
		} else {
			if ru.st != nil {
				// Restore before the transaction begins, so that a long
				// restore does not run into the transaction timeout.
				if err := ru.st.prepare(ru.ctx, ex, fetches); err != nil {
					if errors.Is(err, errStopping) {
						return nil // nothing begun
					}
					return err
				}
			}
			if err := sess.Begin(); err != nil {
				return err
			}
			deadline := time.Now().Add(cfg.commitInterval)
			procErr = ex.processFetches(fetches)
			for procErr == nil && ru.ctx.Err() == nil && time.Now().Before(deadline) {
				pctx, cancel := context.WithDeadline(ru.ctx, deadline)
				f := sess.PollRecords(pctx, ru.batch(time.Until(deadline)))
				cancel()
				if f.IsClientClosed() {
					break
				}
				if procErr = ru.fetchErr(f); procErr == nil {
					procErr = ru.polled(ru.ctx, sess.Client(), f)
				}
				if procErr == nil {
					procErr = process(f)
				}
			}
			if procErr == nil && ru.st != nil {
				// Quiet partitions of a busy pipeline move on too.
				_, procErr = ru.st.idle(ex.work, ex, time.Now(), func() error { return nil })
			}
		}
		prodErr := prod.take()
		ectx, cancel := context.WithTimeout(context.Background(), endTimeout)
		var stateErr error
		if ru.st != nil && procErr == nil && prodErr == nil {
			// The stores' writes go to their changelogs in this
			// transaction; they are applied to the stores only once it
			// has committed (see ended).
			stateErr = ru.st.drain(ectx, sess.Produce, sess.Client().Flush)
		}
		try := kgo.TryCommit
		if procErr != nil || prodErr != nil || stateErr != nil {
			try = kgo.TryAbort
		}
		start := time.Now()
		committed, endErr := sess.End(ectx, try)
		cancel()
		if ru.st != nil {
			// A failed End may have committed or not: the stores
			// discard their writes and are restored (caught up from the
			// changelog) before their next record.
			if err := ru.st.ended(ex, committed && endErr == nil); err != nil {
				stateErr = errors.Join(stateErr, err)
			}
		}
		m.commitSecs.WithLabelValues(name).Observe(time.Since(start).Seconds())
		switch {
		case endErr != nil:
			m.commits.WithLabelValues(name, "failed").Inc()
		case committed:
			m.commits.WithLabelValues(name, "committed").Inc()
		default:
			m.commits.WithLabelValues(name, "aborted").Inc()
		}
		if errors.Is(procErr, errStopping) {
			procErr = nil // aborted on purpose; the records are processed again
		}
		lateErr := prod.take()
		err := errors.Join(procErr, prodErr, lateErr, stateErr, endErr)
		if err != nil && procErr == nil && stateErr == nil && !committed && !retried &&
			abortableOrNil(prodErr) && abortableOrNil(lateErr) && abortableOrNil(endErr) {
			// The transaction is aborted and the session has gone back to
			// the committed offsets: processing the records again in a
			// new transaction is all a restart would do. Once in a row
			// only, so an error that does not pass fails the pipeline.
			retried = true
			ru.rt.cfg.logger.Warn("transaction aborted on a producer error; processing its records again", "pipeline", name, "err", err)
			continue
		}
		if err != nil {
			return err
		}
		retried = false
		if ru.ctx.Err() != nil {
			return nil
		}
		if ru.st != nil {
			// Between transactions: standby copies catch up.
			if err := ru.st.keepWarm(ru.ctx, sess.Client()); err != nil {
				return err
			}
		}
	}
}

// abortableProduce reports whether err is one of the producer errors after
// which the transaction can be aborted and the producer go on, its
// sequence numbers reset by the abort: a broker that lost track of the
// producer's sequence (OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID)
// or asks for an abort (TRANSACTION_ABORTABLE).
func abortableProduce(err error) bool {
	return errors.Is(err, kerr.OutOfOrderSequenceNumber) || errors.Is(err, kerr.UnknownProducerID) ||
		errors.Is(err, kerr.TransactionAbortable)
}

// abortableOrNil is abortableProduce, or no error at all: a transaction is
// redone in place only when every error it had is abortable.
func abortableOrNil(err error) bool { return err == nil || abortableProduce(err) }

// atLeastOnce consumes and produces without transactions and commits the
// consumed offsets once everything produced before them is acknowledged.
// A crash repeats at most the records since the last commit.
func (ru *run) atLeastOnce(ex *executor, prod *producer) (err error) {
	cfg := ru.rt.cfg
	name := ru.p.Plan.Name
	m := ru.rt.metrics
	var cl *kgo.Client
	commit := func(ctx context.Context) error {
		start := time.Now()
		if err := cl.Flush(ctx); err != nil {
			m.commits.WithLabelValues(name, "failed").Inc()
			return err
		}
		if err := prod.take(); err != nil {
			// Something was not produced: committing would lose it.
			m.commits.WithLabelValues(name, "failed").Inc()
			return err
		}
		if ru.st != nil {
			// The changelog records are acknowledged before the offsets
			// are committed, and applied to the stores after: a failure
			// in between leaves them in the changelog with their records
			// uncommitted, so those records count again (at least once).
			if err := ru.st.drain(ctx, cl.Produce, cl.Flush); err != nil {
				m.commits.WithLabelValues(name, "failed").Inc()
				return errors.Join(err, ru.st.ended(ex, false))
			}
		}
		err := cl.CommitUncommittedOffsets(ctx)
		m.commitSecs.WithLabelValues(name).Observe(time.Since(start).Seconds())
		if err != nil {
			m.commits.WithLabelValues(name, "failed").Inc()
			if ru.st != nil {
				err = errors.Join(err, ru.st.ended(ex, false))
			}
			return err
		}
		m.commits.WithLabelValues(name, "committed").Inc()
		if ru.st != nil {
			return ru.st.ended(ex, true)
		}
		return nil
	}
	var revokeErr error
	// abandoned is set when the attempt ends without getting through what
	// it polled (an operator failed or panicked, producing failed, or the
	// pipeline is stopping mid-batch). Closing the client then must not
	// commit: the polled offsets include records that were not processed,
	// and committing them would lose them.
	// It is also set by a stop that finds a record stuck (run.stop),
	// which closes the client from another goroutine.
	var abandoned atomic.Bool
	opts := append(ru.baseOpts(ru.inputs()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		// Before partitions move, commit what was processed so the next
		// owner does not repeat it. Close revokes too.
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, rev map[string][]int32) {
			ru.assign(cl, rev, false)
			if abandoned.Load() {
				return
			}
			if err := commit(ctx); err != nil && revokeErr == nil {
				revokeErr = err
			}
		}),
	)
	cl, err = kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	var closeOnce sync.Once
	defer func() {
		if err != nil {
			abandoned.Store(true)
		}
		closeOnce.Do(cl.Close)
	}()
	ru.setAbandon(func() {
		abandoned.Store(true)
		go closeOnce.Do(cl.CloseAllowingRebalance)
	})
	prod.produce = cl.Produce
	ru.setState(Running, nil)
	last := time.Now()
	dirty := false // records processed since the last commit
	for {
		// With records to commit, wait for more only until the commit is
		// due: the last records before the input goes quiet are committed
		// too, instead of waiting (and being repeated after a restart).
		pctx, cancel := ru.ctx, context.CancelFunc(func() {})
		wake := time.Time{}
		if dirty {
			wake = last.Add(cfg.commitInterval)
		}
		if ru.st != nil {
			// A stateful pipeline wakes up now and then to move on the
			// stream time of idle tasks.
			if w := time.Now().Add(min(cfg.idleTimeout, time.Second)); wake.IsZero() || w.Before(wake) {
				wake = w
			}
		}
		if !wake.IsZero() {
			pctx, cancel = context.WithDeadline(ru.ctx, wake)
		}
		fetches := cl.PollRecords(pctx, ru.batch(cfg.commitInterval))
		cancel()
		if fetches.IsClientClosed() {
			return nil
		}
		if fetches.NumRecords() > 0 {
			dirty = true
		}
		procErr := ru.fetchErr(fetches)
		if procErr == nil {
			procErr = ru.polled(ru.ctx, cl, fetches)
		}
		if procErr == nil && ru.st != nil && fetches.NumRecords() > 0 {
			procErr = ru.st.prepare(ru.ctx, ex, fetches)
		} else if procErr == nil && ru.st != nil && !dirty {
			// Nothing polled and nothing to commit: between commits.
			if procErr = ru.st.wake(ru.ctx, ex); procErr == nil {
				procErr = ru.st.keepWarm(ru.ctx, cl)
			}
		}
		if procErr == nil {
			procErr = ex.processFetches(fetches)
		}
		if procErr == nil && ru.st != nil && ru.ctx.Err() == nil {
			var advanced bool
			advanced, procErr = ru.st.idle(ex.work, ex, time.Now(), func() error { return nil })
			dirty = dirty || advanced
		}
		if errors.Is(procErr, errStopping) {
			abandoned.Store(true)
			cl.AllowRebalance()
			return nil // not committed: the batch is processed again after the restart
		}
		if procErr != nil {
			cl.AllowRebalance()
			return procErr // uncommitted records are processed again after the restart
		}
		if ru.ctx.Err() != nil || dirty && time.Since(last) >= cfg.commitInterval {
			ectx, cancel := context.WithTimeout(context.Background(), endTimeout)
			err := commit(ectx)
			cancel()
			if err != nil {
				cl.AllowRebalance()
				return err
			}
			last, dirty = time.Now(), false
			if ru.st != nil {
				// Just committed: standby copies catch up.
				if err := ru.st.keepWarm(ru.ctx, cl); err != nil {
					cl.AllowRebalance()
					return err
				}
			}
		}
		cl.AllowRebalance()
		if revokeErr != nil {
			return revokeErr
		}
		if ru.ctx.Err() != nil {
			return nil
		}
	}
}
