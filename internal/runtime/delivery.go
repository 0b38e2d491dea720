package runtime

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/engine"
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
func (ru *run) exactlyOnce(work context.Context, stages map[string]*engine.Stage, prod *producer) error {
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
	prod.produce = sess.Produce
	name := ru.p.Plan.Name
	m := ru.rt.metrics
	ru.setState(Running, nil)
	for {
		fetches := sess.PollRecords(ru.ctx, cfg.maxPoll)
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
		procErr := ru.processFetches(work, stages, fetches)
		for procErr == nil && ru.ctx.Err() == nil && time.Now().Before(deadline) {
			pctx, cancel := context.WithDeadline(ru.ctx, deadline)
			f := sess.PollRecords(pctx, cfg.maxPoll)
			cancel()
			if f.IsClientClosed() {
				break
			}
			if procErr = fetchErr(f); procErr == nil {
				procErr = ru.processFetches(work, stages, f)
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
func (ru *run) atLeastOnce(work context.Context, stages map[string]*engine.Stage, prod *producer) error {
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
	opts := append(ru.baseOpts(ru.inputs()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		// Before partitions move, commit what was processed so the next
		// owner does not repeat it.
		kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, rev map[string][]int32) {
			ru.assign(rev, false)
			if err := commit(ctx); err != nil && revokeErr == nil {
				revokeErr = err
			}
		}),
	)
	var err error
	cl, err = kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	prod.produce = cl.Produce
	ru.setState(Running, nil)
	last := time.Now()
	for {
		fetches := cl.PollRecords(ru.ctx, cfg.maxPoll)
		if fetches.IsClientClosed() {
			return nil
		}
		procErr := fetchErr(fetches)
		if procErr == nil {
			procErr = ru.processFetches(work, stages, fetches)
		}
		if procErr != nil {
			cl.AllowRebalance()
			return procErr // uncommitted records are processed again after the restart
		}
		if ru.ctx.Err() != nil || time.Since(last) >= cfg.commitInterval {
			ectx, cancel := context.WithTimeout(context.Background(), endTimeout)
			err := commit(ectx)
			cancel()
			if err != nil {
				cl.AllowRebalance()
				return err
			}
			last = time.Now()
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
