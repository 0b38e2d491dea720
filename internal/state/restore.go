package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// RestoreOpt configures a Restorer. Options are validated in NewRestorer.
type RestoreOpt func(*restoreConfig)

type restoreConfig struct {
	brokers       []string
	kafkaOpts     []kgo.Opt
	batchRecords  int
	progressEvery time.Duration
	progressSpan  int64
	idleTimeout   time.Duration
	now           func() time.Time
}

// Brokers sets the seed brokers. Required.
func Brokers(addrs ...string) RestoreOpt { return func(c *restoreConfig) { c.brokers = addrs } }

// KafkaOptions adds client options (TLS, SASL, client ID) to the clients
// the Restorer makes. Consuming options are the Restorer's.
func KafkaOptions(opts ...kgo.Opt) RestoreOpt {
	return func(c *restoreConfig) { c.kafkaOpts = append(c.kafkaOpts, opts...) }
}

// BatchRecords is how many changelog records are read into one batch,
// applied to the store with one checkpoint (default 50,000). Only the last
// record per key of a batch is written to the store, so larger batches
// save more writes; the batch holds on to the fetch buffers of its
// records until it is applied. A restore interrupted part-way resumes from
// the last batch applied.
func BatchRecords(n int) RestoreOpt { return func(c *restoreConfig) { c.batchRecords = n } }

// ProgressEvery bounds the time between progress reports (default 1s) and
// span the offsets between them (default 100,000): a report is made when
// either is reached, at a batch boundary.
func ProgressEvery(d time.Duration, span int64) RestoreOpt {
	return func(c *restoreConfig) { c.progressEvery, c.progressSpan = d, span }
}

// IdleTimeout is how long a restore waits for records it knows exist
// before failing with a *StalledError (default 30s).
func IdleTimeout(d time.Duration) RestoreOpt { return func(c *restoreConfig) { c.idleTimeout = d } }

func (c *restoreConfig) validate() error {
	var errs []error
	if len(c.brokers) == 0 {
		errs = append(errs, &OptionError{"Brokers", "no brokers"})
	}
	if c.batchRecords <= 0 {
		errs = append(errs, &OptionError{"BatchRecords", fmt.Sprintf("%d is not positive", c.batchRecords)})
	}
	if c.progressEvery <= 0 || c.progressSpan <= 0 {
		errs = append(errs, &OptionError{"ProgressEvery", fmt.Sprintf("%v, %d: both must be positive", c.progressEvery, c.progressSpan)})
	}
	if c.idleTimeout <= 0 {
		errs = append(errs, &OptionError{"IdleTimeout", fmt.Sprintf("%v is not positive", c.idleTimeout)})
	}
	return errors.Join(errs...)
}

// Restorer restores stores from their changelog partitions. It is safe for
// concurrent use; each Restore reads with a client of its own, so restores
// of different tasks do not share a fetch session or a buffer.
type Restorer struct {
	cfg   restoreConfig
	admin *kgo.Client
	adm   *kadm.Client
}

// NewRestorer validates the options and makes the admin client used to
// look up changelog offsets.
func NewRestorer(opts ...RestoreOpt) (*Restorer, error) {
	cfg := restoreConfig{
		batchRecords:  50_000,
		progressEvery: time.Second,
		progressSpan:  100_000,
		idleTimeout:   30 * time.Second,
		now:           time.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.brokers...)}, cfg.kafkaOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("state: restore client: %w", err)
	}
	return &Restorer{cfg: cfg, admin: cl, adm: kadm.NewClient(cl)}, nil
}

// Close closes the admin client.
func (r *Restorer) Close() { r.admin.Close() }

// Progress is where a restore is. Its unit is changelog offsets, not
// records: the range to restore includes transaction markers and the
// records of aborted transactions, which are skipped, so counting offsets
// is what lets Done reach Total exactly.
type Progress struct {
	Done    int64         // offsets restored
	Total   int64         // offsets to restore
	Applied int64         // changelog records (puts and deletes) read and applied
	Rate    float64       // offsets per second since the start
	ETA     time.Duration // at Rate, until Done == Total
	Elapsed time.Duration
	// Finished is set on the last report of a restore, complete
	// (Done == Total) or failed.
	Finished bool
}

// Result is what a restore did.
type Result struct {
	Progress
	From, End int64 // the offsets restored: [From, End)
	// Reset is set when the starting offset was not usable (past the
	// changelog's end, or before its start) and the store was emptied and
	// restored from the changelog's start instead.
	Reset bool
}

// StalledError is returned when a restore waited IdleTimeout without a
// record although its end offset was not reached.
type StalledError struct {
	Topic     string
	Partition int32
	Next, End int64
	Waited    time.Duration
}

func (e *StalledError) Error() string {
	return fmt.Sprintf("state: restoring %s/%d: no record for %v at offset %d, end %d", e.Topic, e.Partition, e.Waited, e.Next, e.End)
}

// Restore brings dst up to date with partition of the changelog topic: it
// reads from offset from (the store's checkpoint for the partition, or 0)
// to the partition's last stable offset as it is when the restore starts,
// read_committed, so records of aborted transactions are skipped, and
// applies the records in batches (a nil value deletes), each with the
// checkpoint after it. progress (which may be nil) gets a report at the
// start, at least every ProgressEvery, and a last one with Finished set.
//
// The end is the last stable offset (kadm's ListCommittedOffsets) rather
// than the high watermark: records of a transaction still open cannot be
// read with read_committed, and the restore would otherwise wait for it.
// In the runtime a new owner fences the previous one first, which aborts
// its open transaction, so the two are normally equal.
func (r *Restorer) Restore(ctx context.Context, topic string, partition int32, from int64, dst Committer, progress func(Progress)) (res Result, err error) {
	start := r.cfg.now()
	report := func(p Progress) {
		if progress != nil {
			progress(p)
		}
	}
	defer func() {
		if err != nil {
			res.Finished = true
			res.Elapsed = r.cfg.now().Sub(start)
			report(res.Progress)
		}
	}()

	first, end, err := r.bounds(ctx, topic, partition)
	if err != nil {
		return res, err
	}
	if from > end || (from > 0 && from < first) {
		// A checkpoint past the end belongs to an earlier incarnation of
		// the topic; one before the start has lost records to deletion.
		// Either way the store cannot be caught up from it.
		if err := dst.Reset(); err != nil {
			return res, err
		}
		from, res.Reset = 0, true
	}
	from = max(from, first)
	res.From, res.End = from, end
	res.Total = end - from

	report(res.Progress)
	if from < end {
		if err := r.read(ctx, topic, partition, dst, &res, start, report); err != nil {
			return res, err
		}
	} else if dst.Checkpoint().Offset(partition) != end {
		// Nothing to read, but the store's checkpoint should say so (a
		// reset store, or an empty changelog).
		if err := dst.Apply(nil, dst.Checkpoint().with(partition, end, r.cfg.now())); err != nil {
			return res, err
		}
	}
	res.Elapsed = r.cfg.now().Sub(start)
	res.Rate = rate(res.Done, res.Elapsed)
	res.ETA, res.Finished = 0, true
	report(res.Progress)
	return res, nil
}

// bounds returns the partition's log start offset and last stable offset.
func (r *Restorer) bounds(ctx context.Context, topic string, partition int32) (first, end int64, err error) {
	lookup := func(what string, list func(context.Context, ...string) (kadm.ListedOffsets, error)) (int64, error) {
		offs, err := list(ctx, topic)
		if err != nil {
			return 0, fmt.Errorf("state: listing %s offsets of %s: %w", what, topic, err)
		}
		o, ok := offs.Lookup(topic, partition)
		if !ok {
			return 0, fmt.Errorf("state: changelog %s has no partition %d", topic, partition)
		}
		if o.Err != nil {
			return 0, fmt.Errorf("state: listing %s offsets of %s/%d: %w", what, topic, partition, o.Err)
		}
		return o.Offset, nil
	}
	if first, err = lookup("start", r.adm.ListStartOffsets); err != nil {
		return 0, 0, err
	}
	end, err = lookup("last stable", r.adm.ListCommittedOffsets)
	return first, end, err
}

func (r *Restorer) read(ctx context.Context, topic string, partition int32, dst Committer, res *Result, start time.Time, report func(Progress)) error {
	opts := append([]kgo.Opt{kgo.SeedBrokers(r.cfg.brokers...)}, r.cfg.kafkaOpts...)
	opts = append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(res.From)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers come through as control records, so the
		// restore sees the offset of the marker that ends the changelog
		// and knows it is done; otherwise a changelog ending in a
		// transaction's marker would look unfinished.
		kgo.KeepControlRecords(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("state: restore client: %w", err)
	}
	defer cl.Close()

	// A batch keeps only the last record per key: the batch is applied
	// atomically with its checkpoint, so the values before it in the batch
	// would never be seen, and with a changelog that repeats keys (one
	// record per key per commit) this saves most of the store's writes.
	// Values point into the fetches' buffers until the batch is applied.
	batch := make([]Change, 0, min(int64(r.cfg.batchRecords), res.Total))
	index := make(map[string]int, min(int64(r.cfg.batchRecords), res.Total))
	read := 0 // records read into the batch
	next := res.From
	lastReport, lastDone := start, int64(0)
	flush := func() error {
		if err := dst.Apply(batch, dst.Checkpoint().with(partition, next, r.cfg.now())); err != nil {
			return fmt.Errorf("state: applying restored records: %w", err)
		}
		res.Applied += int64(read)
		res.Done = next - res.From
		clear(batch) // drop the references to fetch buffers
		batch, read = batch[:0], 0
		clear(index)
		return nil
	}
	// Progress counts offsets read: with large batches, waiting for them
	// to be applied would make reports lumpy.
	maybeReport := func(now time.Time) {
		done := next - res.From
		if done >= res.Total || (now.Sub(lastReport) < r.cfg.progressEvery && done-lastDone < r.cfg.progressSpan) {
			return
		}
		res.Done = done
		res.Elapsed = now.Sub(start)
		res.Rate = rate(res.Done, res.Elapsed)
		res.ETA = 0
		if res.Rate > 0 {
			res.ETA = time.Duration(float64(res.Total-res.Done) / res.Rate * float64(time.Second))
		}
		report(res.Progress)
		lastReport, lastDone = now, done
	}
	for next < res.End {
		pctx, cancel := context.WithTimeout(ctx, r.cfg.idleTimeout)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if ferr == nil && !errors.Is(err, context.DeadlineExceeded) {
				ferr = err
			}
		})
		if ferr != nil {
			return fmt.Errorf("state: reading %s/%d: %w", topic, partition, ferr)
		}
		if fs.NumRecords() == 0 {
			return &StalledError{Topic: topic, Partition: partition, Next: next, End: res.End, Waited: r.cfg.idleTimeout}
		}
		for it := fs.RecordIter(); !it.Done() && next < res.End; {
			rec := it.Next()
			if rec.Offset >= res.End {
				// Written after the restore started: the task's own
				// processing starts from here.
				next = res.End
				break
			}
			next = rec.Offset + 1
			if rec.Attrs.IsControl() {
				continue
			}
			read++
			if i, ok := index[string(rec.Key)]; ok {
				batch[i].Value = rec.Value
			} else {
				index[string(rec.Key)] = len(batch)
				batch = append(batch, Change{Key: rec.Key, Value: rec.Value})
			}
			if read >= r.cfg.batchRecords {
				if err := flush(); err != nil {
					return err
				}
			}
			if next-lastDone >= r.cfg.progressSpan {
				maybeReport(r.cfg.now())
			}
		}
		// Apply at a batch boundary or at the end; between, a batch
		// spans polls, keeping their buffers alive (at most BatchRecords
		// records' worth).
		if next >= res.End {
			if err := flush(); err != nil {
				return err
			}
		}
		maybeReport(r.cfg.now())
	}
	return nil
}

func rate(done int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(done) / d.Seconds()
}
