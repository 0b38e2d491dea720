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

// exactlyOnce runs the pipeline with one transaction per batch (see
// transactions).
func (ru *run) exactlyOnce(ex *executor, prod *producer) error {
	t, err := ru.newTransactions(ex, prod)
	if t == nil {
		return err // nil: stopped before it began
	}
	defer t.close()
	return ru.deliver(ex, t, t.st)
}

// atLeastOnce runs the pipeline committing offsets after each batch (see
// offsetCommits).
func (ru *run) atLeastOnce(ex *executor, prod *producer) (err error) {
	a, err := ru.newOffsetCommits(ex, prod)
	if err != nil {
		return err
	}
	defer func() { a.close(err) }()
	return ru.deliver(ex, a, a.st)
}

// deliveryMode is what a delivery mode does at the points of deliver's loop where
// the modes differ.
type deliveryMode interface {
	client() *kgo.Client
	// poll polls up to max records, or fails the attempt.
	poll(ctx context.Context, max int) (kgo.Fetches, error)
	// begin opens a batch, before the first of its records is processed
	// and after their stores are restored.
	begin() error
	// due is when a batch opened by records at now is to end.
	due(now time.Time) time.Time
	// end ends the open batch. With a nil cause it commits the batch
	// (everything it produced and the offsets of everything it
	// processed), otherwise it gives the batch up; either way, the stores
	// learn which (taskState.ended). err is what the attempt fails with
	// (errStopping is no failure); again says that the batch was given up
	// on a producer error that processing its records again, at once and
	// in place, gets past, as a restart would.
	end(cause error) (again bool, err error)
	// abandon gives up the records polled while no batch is open: none
	// of them may be committed.
	abandon()
}

// deliver is the consume-process-produce loop of both delivery modes.
//
// Records are processed in batches, one poll after another. A batch opens
// with the first records polled, or when an idle task of a stateful step is
// moved on, and ends when it is due (commit interval), when the pipeline
// stops, or at the first error. The mode says what opening and ending a
// batch means: one transaction (exactly once) or an offset commit (at least
// once). st keeps a stateful pipeline's stores in step with the batches;
// for a stateless pipeline its hooks do nothing.
//
// Invariants, in both modes:
//   - a batch commits only records that were processed, and only with
//     everything they produced (outputs, DLQ and changelog records);
//     records polled but not processed are never committed: they are
//     processed again, here or by the partition's next owner;
//   - a task's stores are restored (st.prepare) before any of its records
//     is processed, and before the batch opens, so that a long restore
//     does not run into the transaction timeout;
//   - the stores apply a batch's writes only once it has committed, and
//     discard them otherwise (deliveryMode.end calls st.ended);
//   - between batches, with nothing pending, revoked stores are dropped,
//     idle ones woken and standby copies caught up;
//   - stopping ends the attempt with nil: an open batch whose records
//     were all processed is committed, one interrupted mid-batch
//     (errStopping) is not.
func (ru *run) deliver(ex *executor, d deliveryMode, st taskState) error {
	cfg := ru.rt.cfg
	var (
		open bool      // a batch is open
		due  time.Time // when the open batch ends
	)
	// Whatever ends the attempt, no worker is left processing its records.
	defer func() { _ = ex.wait() }()
	// fail ends the attempt on err, giving up the open batch, if any,
	// once the workers have stopped on it.
	fail := func(err error) error {
		if werr := ex.wait(); werr != nil && errors.Is(err, errStopping) {
			err = werr // a worker's failure says more than the stop
		}
		if !open {
			d.abandon()
			if errors.Is(err, errStopping) {
				return nil // nothing open: the records are processed again
			}
			return err
		}
		again, err := d.end(err)
		if again {
			return nil // stopping: the batch was given up and is processed again
		}
		return err
	}
	for {
		// Wait for records; with a batch open only until it is due. A
		// stateful pipeline also wakes up now and then to move on the
		// stream time of idle tasks.
		wake, budget := time.Time{}, cfg.commitInterval
		if open {
			wake, budget = due, time.Until(due)
		}
		if every := st.wakeEvery(); every > 0 {
			if w := time.Now().Add(every); wake.IsZero() || w.Before(wake) {
				wake = w
			}
		}
		pctx, cancel := ru.ctx, context.CancelFunc(func() {})
		if !wake.IsZero() {
			pctx, cancel = context.WithDeadline(ru.ctx, wake)
		}
		fetches, err := d.poll(pctx, ru.batch(budget))
		cancel()
		if err != nil {
			return fail(err)
		}
		if fetches.IsClientClosed() {
			// Closed by a stop that found a record stuck (run.stop): the
			// open batch, if any, is given up with the client.
			return nil
		}
		if !open && ru.ctx.Err() != nil {
			d.abandon()
			return nil // nothing open: leaving the group loses nothing
		}
		if err = ru.fetchErr(fetches); err == nil {
			err = ru.polled(ru.ctx, d.client(), fetches)
		}
		if err == nil && fetches.NumRecords() > 0 {
			if err = st.prepare(ru.ctx, fetches); err == nil && !open {
				if err = d.begin(); err == nil {
					open, due = true, d.due(time.Now())
				}
			}
			if err == nil {
				err = ex.processFetches(fetches)
			}
		} else if err == nil && !open {
			err = st.between(ru.ctx, d.client())
		}
		if err == nil && ru.ctx.Err() == nil {
			// Tasks idle for the idle timeout move on, quiet partitions
			// of a busy pipeline too. Without an open batch, the first
			// one opens one, which ends at once: nothing else waits in it.
			_, err = st.idle(time.Now(), func() error {
				if open {
					return nil
				}
				if err := d.begin(); err != nil {
					return err
				}
				open, due = true, time.Now()
				return nil
			})
		}
		if err != nil {
			return fail(err)
		}
		if !open || ru.ctx.Err() == nil && time.Now().Before(due) {
			continue
		}
		if err := ex.wait(); err != nil {
			return fail(err)
		}
		again, err := d.end(nil)
		open = false
		if again {
			continue
		}
		if err != nil {
			return err
		}
		if ru.ctx.Err() != nil {
			return nil
		}
		// Between batches: standby copies catch up.
		if err := st.keepWarm(ru.ctx, d.client()); err != nil {
			return err
		}
	}
}

// countCommit counts the end of a batch: committed, aborted or failed.
func (ru *run) countCommit(outcome string) {
	ru.rt.metrics.commits.WithLabelValues(ru.p.Plan.Name, outcome).Inc()
}

// transactions is exactly-once delivery: a batch is one transaction, which
// starts when records arrive and ends one commit interval later,
// committing the outputs, the DLQ records, the changelog records and the
// consumed offsets together. A rebalance during a transaction aborts it;
// the session rewinds to the committed offsets and the records are
// processed again, here or on the runner that now owns them, so nothing
// is lost or duplicated.
type transactions struct {
	ru        *run
	st        taskState
	prod      *producer
	sess      *kgo.GroupTransactSession
	closeOnce sync.Once
	retried   bool // the last transaction was aborted on abortableProduce errors
	// ending is when the last transaction began to end: the next one is
	// due one commit interval after it (see due).
	ending time.Time
}

// newTransactions opens the transactional session and loads its producer
// ID. It returns nil and no error when the pipeline stopped meanwhile.
func (ru *run) newTransactions(ex *executor, prod *producer) (*transactions, error) {
	cfg := ru.rt.cfg
	opts := append(ru.baseOpts(ru.inputs()),
		kgo.TransactionalID(ru.p.group()+"/"+cfg.instanceID),
		kgo.TransactionTimeout(cfg.txnTimeout),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, err
	}
	t := &transactions{ru: ru, st: taskState{ru.st, ex}, prod: prod, sess: sess}
	// A stop that finds a record stuck closes the session from another
	// goroutine (run.stop): it leaves the group, and the transaction,
	// never ended here, is aborted by the broker or fenced by the next
	// revision's producer.
	ru.setAbandon(func() { go t.close() })
	// Load the producer ID before consuming: with the same instance ID as
	// a runner that died, this fences it and aborts the transaction it
	// left open. Otherwise that transaction's pending offset commit makes
	// the group's offset fetch fail as unstable until it times out, and
	// the producer ID (loaded lazily, by the first produce) never comes.
	ictx, cancel := context.WithTimeout(ru.ctx, endTimeout)
	_, _, err = sess.Client().ProducerID(ictx)
	cancel()
	if ru.ctx.Err() != nil {
		t.close()
		return nil, nil
	}
	if err != nil {
		t.close()
		return nil, fmt.Errorf("initializing the transactional producer: %w", err)
	}
	prod.produce = sess.Produce
	ru.setState(Running, nil)
	return t, nil
}

func (t *transactions) close() { t.closeOnce.Do(t.sess.Close) }

func (t *transactions) client() *kgo.Client { return t.sess.Client() }

func (t *transactions) poll(ctx context.Context, max int) (kgo.Fetches, error) {
	return t.sess.PollRecords(ctx, max), nil
}

func (t *transactions) begin() error { return t.sess.Begin() }

// due is one commit interval after the last transaction began to end, as
// Kafka Streams commits every commit interval, rather than an interval
// after this one began: records that came while the last one ended have
// waited through that end already, and waiting a full interval more put
// them in the latency tail. A transaction still lasts at least half an
// interval, so that long ends (a large drain) do not make commits more
// frequent, and the changelog less coalesced, under load.
func (t *transactions) due(now time.Time) time.Time {
	interval := t.ru.rt.cfg.commitInterval
	return latest(now.Add(interval/2), t.ending.Add(interval))
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// abandon does nothing: outside a transaction nothing is committed.
func (t *transactions) abandon() {}

// end ends the transaction: it commits when nothing failed, including the
// changelog records of the stores' writes, and aborts otherwise.
func (t *transactions) end(cause error) (again bool, err error) {
	ru := t.ru
	t.ending = time.Now()
	prodErr := t.prod.take()
	ctx, cancel := context.WithTimeout(context.Background(), endTimeout)
	var stateErr error
	if cause == nil && prodErr == nil {
		// The stores' writes go to their changelogs in this transaction;
		// they are applied to the stores only once it has committed.
		stateErr = t.st.drain(ctx, t.sess.Produce, t.sess.Client().Flush)
		// Every record of the transaction is acknowledged or failed once
		// flushed. End flushes too but commits whatever failed meanwhile:
		// an output the broker refused (too large, not authorised) would
		// be lost with its input's offset committed.
		if err := t.sess.Client().Flush(ctx); err != nil {
			stateErr = errors.Join(stateErr, err)
		}
		prodErr = t.prod.take()
	}
	try := kgo.TryCommit
	if cause != nil || prodErr != nil || stateErr != nil {
		try = kgo.TryAbort
	}
	start := time.Now()
	committed, endErr := t.sess.End(ctx, try)
	cancel()
	// A failed End may have committed or not: the stores discard their
	// writes and are restored (caught up from the changelog) before their
	// next record.
	if err := t.st.ended(committed && endErr == nil); err != nil {
		stateErr = errors.Join(stateErr, err)
	}
	ru.rt.metrics.commitSecs.WithLabelValues(ru.p.Plan.Name).Observe(time.Since(start).Seconds())
	switch {
	case endErr != nil:
		ru.countCommit("failed")
	case committed:
		ru.countCommit("committed")
	default:
		ru.countCommit("aborted")
	}
	if errors.Is(cause, errStopping) {
		cause = nil // aborted on purpose; the records are processed again
	}
	lateErr := t.prod.take()
	if try == kgo.TryAbort && errors.Is(lateErr, kgo.ErrAborting) {
		// Records the abort itself failed, given up on purpose: a
		// stop mid-batch is no error, and an abort on a producer
		// error may still be retried in place (below).
		lateErr = nil
	}
	err = errors.Join(cause, prodErr, lateErr, stateErr, endErr)
	if err != nil && cause == nil && stateErr == nil && !committed && !t.retried &&
		abortableOrNil(prodErr) && abortableOrNil(lateErr) && abortableOrNil(endErr) {
		// The transaction is aborted and the session has gone back to
		// the committed offsets: processing the records again in a
		// new transaction is all a restart would do. Once in a row
		// only, so an error that does not pass fails the pipeline.
		t.retried = true
		ru.rt.cfg.logger.Warn("transaction aborted on a producer error; processing its records again", "pipeline", ru.p.Plan.Name, "err", err)
		return true, nil
	}
	if err == nil {
		t.retried = false
	}
	return false, err
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

// offsetCommits is at-least-once delivery: records are consumed and
// outputs produced without transactions, and a batch ends by committing
// the consumed offsets once everything produced before them is
// acknowledged. A batch is due one commit interval after the last commit,
// so the last records before the input goes quiet are committed too. A
// crash repeats at most the records since the last commit.
type offsetCommits struct {
	ru   *run
	st   taskState
	prod *producer
	cl   *kgo.Client
	last time.Time // the loop's last commit

	// abandoned is set when the attempt ends without getting through what
	// it polled (an operator failed or panicked, producing failed, or the
	// pipeline is stopping mid-batch). Closing the client then must not
	// commit: the polled offsets include records that were not processed,
	// and committing them would lose them.
	// It is also set by a stop that finds a record stuck (run.stop),
	// which closes the client from another goroutine.
	abandoned atomic.Bool
	closeOnce sync.Once

	revokeMu  sync.Mutex
	revokeErr error // the first commit on revoke that failed
}

func (ru *run) newOffsetCommits(ex *executor, prod *producer) (*offsetCommits, error) {
	a := &offsetCommits{ru: ru, st: taskState{ru.st, ex}, prod: prod, last: time.Now()}
	opts := append(ru.baseOpts(ru.inputs()),
		kgo.DisableAutoCommit(),
		// Rebalances, and so the commit on revoke, happen only while
		// poll allows them, never while a batch is being processed.
		kgo.BlockRebalanceOnPoll(),
		// Before partitions move, commit what was processed so the next
		// owner does not repeat it. Close revokes too.
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, rev map[string][]int32) {
			ru.assign(cl, rev, false)
			if a.abandoned.Load() {
				return
			}
			if err := a.commit(ctx); err != nil {
				a.revokeMu.Lock()
				if a.revokeErr == nil {
					a.revokeErr = err
				}
				a.revokeMu.Unlock()
			}
		}),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	a.cl = cl
	ru.setAbandon(func() {
		a.abandoned.Store(true)
		go a.closeOnce.Do(cl.CloseAllowingRebalance)
	})
	prod.produce = cl.Produce
	ru.setState(Running, nil)
	return a, nil
}

// close closes the client after the attempt ended with err. Closing
// revokes the partitions, which commits what was processed, unless the
// attempt failed or gave up polled records (abandoned).
func (a *offsetCommits) close(err error) {
	if err != nil {
		a.abandoned.Store(true)
	}
	a.closeOnce.Do(a.cl.CloseAllowingRebalance)
}

func (a *offsetCommits) client() *kgo.Client { return a.cl }

// poll allows the rebalance that the last poll blocked, then polls. A
// commit on revoke that failed meanwhile fails the attempt.
func (a *offsetCommits) poll(ctx context.Context, max int) (kgo.Fetches, error) {
	a.cl.AllowRebalance()
	a.revokeMu.Lock()
	err := a.revokeErr
	a.revokeMu.Unlock()
	if err != nil {
		return nil, err
	}
	return a.cl.PollRecords(ctx, max), nil
}

func (a *offsetCommits) begin() error { return nil }

func (a *offsetCommits) due(time.Time) time.Time { return a.last.Add(a.ru.rt.cfg.commitInterval) }

func (a *offsetCommits) abandon() { a.abandoned.Store(true) }

// end commits the batch, or, given a cause, leaves it uncommitted: its
// records are processed again after the restart.
func (a *offsetCommits) end(cause error) (bool, error) {
	if cause != nil {
		a.abandoned.Store(true)
		if errors.Is(cause, errStopping) {
			return false, nil
		}
		return false, cause
	}
	ctx, cancel := context.WithTimeout(context.Background(), endTimeout)
	defer cancel()
	if err := a.commit(ctx); err != nil {
		return false, err
	}
	a.last = time.Now()
	return false, nil
}

// commit commits the consumed offsets once everything produced before them
// is acknowledged: outputs, DLQ records, then the changelog records of the
// stores' writes.
func (a *offsetCommits) commit(ctx context.Context) error {
	ru := a.ru
	start := time.Now()
	if err := a.cl.Flush(ctx); err != nil {
		ru.countCommit("failed")
		return err
	}
	if err := a.prod.take(); err != nil {
		// Something was not produced: committing would lose it.
		ru.countCommit("failed")
		return err
	}
	// The changelog records are acknowledged before the offsets are
	// committed, and applied to the stores after: a failure in between
	// leaves them in the changelog with their records uncommitted, so
	// those records count again (at least once).
	if err := a.st.drain(ctx, a.cl.Produce, a.cl.Flush); err != nil {
		ru.countCommit("failed")
		return errors.Join(err, a.st.ended(false))
	}
	err := a.cl.CommitUncommittedOffsets(ctx)
	ru.rt.metrics.commitSecs.WithLabelValues(ru.p.Plan.Name).Observe(time.Since(start).Seconds())
	if err != nil {
		ru.countCommit("failed")
		if removedFromGroup(err) {
			// The coordinator removed this member (see fetchErr): the
			// batch stays uncommitted and its records are processed again
			// by their next owner, which is what at least once allows.
			// The client rejoins by itself; nothing has failed.
			ru.outOfGroup(err)
			return a.st.ended(false)
		}
		return errors.Join(err, a.st.ended(false))
	}
	ru.countCommit("committed")
	return a.st.ended(true)
}

// taskState is what a stateful pipeline's stores do at the points of the
// delivery loop. A stateless pipeline has no stores (s is nil), and every
// hook does nothing.
type taskState struct {
	s  *stores
	ex *executor
}

// wakeEvery is how often a stateful pipeline wakes up, records or not, to
// move on idle tasks; 0 means never.
func (t taskState) wakeEvery() time.Duration {
	if t.s == nil {
		return 0
	}
	return min(t.s.ru.rt.cfg.idleTimeout, time.Second)
}

// prepare restores the stores of the tasks f has records for.
func (t taskState) prepare(ctx context.Context, f kgo.Fetches) error {
	if t.s == nil {
		return nil
	}
	return t.s.prepare(ctx, t.ex, f)
}

// between runs between batches, when a poll brought nothing: no batch is
// open, so nothing is pending. It drops the stores of revoked partitions,
// wakes assigned tasks that have none yet, and catches standby copies up.
func (t taskState) between(ctx context.Context, cl *kgo.Client) error {
	if t.s == nil {
		return nil
	}
	t.s.dropRevoked(t.ex)
	if err := t.s.wake(ctx, t.ex); err != nil {
		return err
	}
	return t.s.keepWarm(ctx, cl)
}

// idle moves on the stream time of idle tasks, calling begin before the
// first (see stores.idle).
func (t taskState) idle(now time.Time, begin func() error) (bool, error) {
	if t.s == nil {
		return false, nil
	}
	return t.s.idle(t.ex.work, t.ex, now, begin)
}

// keepWarm catches standby copies up (see stores.keepWarm).
func (t taskState) keepWarm(ctx context.Context, cl *kgo.Client) error {
	if t.s == nil {
		return nil
	}
	return t.s.keepWarm(ctx, cl)
}

// drain produces the changelog records of the batch's writes and waits for
// their acknowledgement (see stores.drain).
func (t taskState) drain(ctx context.Context, produce func(context.Context, *kgo.Record, func(*kgo.Record, error)), flush func(context.Context) error) error {
	if t.s == nil {
		return nil
	}
	if err := t.s.flush(t.ex); err != nil {
		return err
	}
	return t.s.drain(ctx, produce, flush)
}

// ended applies the batch's writes if it committed, and discards them
// otherwise (see stores.ended).
func (t taskState) ended(committed bool) error {
	if t.s == nil {
		return nil
	}
	return t.s.ended(t.ex, committed)
}
