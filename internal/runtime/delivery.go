package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	defer sess.Close()
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
	for {
		fetches := sess.PollRecords(ru.ctx, ru.batch(cfg.commitInterval))
		if fetches.IsClientClosed() || ru.ctx.Err() != nil {
			return nil // nothing begun: leaving the group loses nothing
		}
		if err := fetchErr(fetches); err != nil {
			return err
		}
		if fetches.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			return err
		}
		deadline := time.Now().Add(cfg.commitInterval)
		procErr := ex.processFetches(fetches)
		for procErr == nil && ru.ctx.Err() == nil && time.Now().Before(deadline) {
			pctx, cancel := context.WithDeadline(ru.ctx, deadline)
			f := sess.PollRecords(pctx, ru.batch(time.Until(deadline)))
			cancel()
			if f.IsClientClosed() {
				break
			}
			if procErr = fetchErr(f); procErr == nil {
				procErr = ex.processFetches(f)
			}
		}
		prodErr := prod.take()
		try := kgo.TryCommit
		if procErr != nil || prodErr != nil {
			try = kgo.TryAbort
		}
		ectx, cancel := context.WithTimeout(context.Background(), endTimeout)
		start := time.Now()
		committed, endErr := sess.End(ectx, try)
		cancel()
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
		if err := errors.Join(procErr, prodErr, prod.take(), endErr); err != nil {
			return err
		}
		if ru.ctx.Err() != nil {
			return nil
		}
	}
}

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
		err := cl.CommitUncommittedOffsets(ctx)
		m.commitSecs.WithLabelValues(name).Observe(time.Since(start).Seconds())
		if err != nil {
			m.commits.WithLabelValues(name, "failed").Inc()
			return err
		}
		m.commits.WithLabelValues(name, "committed").Inc()
		return nil
	}
	var revokeErr error
	// abandoned is set when the attempt ends without getting through what
	// it polled (an operator failed or panicked, producing failed, or the
	// pipeline is stopping mid-batch). Closing the client then must not
	// commit: the polled offsets include records that were not processed,
	// and committing them would lose them.
	abandoned := false
	opts := append(ru.baseOpts(ru.inputs()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		// Before partitions move, commit what was processed so the next
		// owner does not repeat it. Close revokes too.
		kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, rev map[string][]int32) {
			ru.assign(rev, false)
			if abandoned {
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
	defer func() {
		if err != nil {
			abandoned = true
		}
		cl.Close()
	}()
	prod.produce = cl.Produce
	ru.setState(Running, nil)
	last := time.Now()
	dirty := false // records processed since the last commit
	for {
		// With records to commit, wait for more only until the commit is
		// due: the last records before the input goes quiet are committed
		// too, instead of waiting (and being repeated after a restart).
		pctx, cancel := ru.ctx, context.CancelFunc(func() {})
		if dirty {
			pctx, cancel = context.WithDeadline(ru.ctx, last.Add(cfg.commitInterval))
		}
		fetches := cl.PollRecords(pctx, ru.batch(cfg.commitInterval))
		cancel()
		if fetches.IsClientClosed() {
			return nil
		}
		if fetches.NumRecords() > 0 {
			dirty = true
		}
		procErr := fetchErr(fetches)
		if procErr == nil {
			procErr = ex.processFetches(fetches)
		}
		if errors.Is(procErr, errStopping) {
			abandoned = true
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
