package changelog

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/state"
)

// Opt configures a Restorer. Options are validated in NewRestorer.
type Opt func(*restoreConfig)

type restoreConfig struct {
	brokers       []string
	kafkaOpts     []kgo.Opt
	batchRecords  int
	batchBytes    int
	progressEvery time.Duration
	progressSpan  int64
	idleTimeout   time.Duration
	now           func() time.Time
}

// Brokers sets the seed brokers. Required.
func Brokers(addrs ...string) Opt { return func(c *restoreConfig) { c.brokers = addrs } }

// KafkaOptions adds client options (TLS, SASL, client ID) to the clients
// the Restorer makes. Consuming options are the Restorer's.
func KafkaOptions(opts ...kgo.Opt) Opt {
	return func(c *restoreConfig) { c.kafkaOpts = append(c.kafkaOpts, opts...) }
}

// BatchRecords is how many changelog records are read into one batch,
// applied to the store with one checkpoint (default 100,000, at most
// 2^30). Only the last record per key of a batch is written to the store,
// so larger batches save more writes; the batch holds on to the fetch
// buffers of its records until it is applied (about 11 MiB for 100,000
// records of 100 bytes), and so do the few fetches read while it is being
// applied. A restore interrupted part-way resumes from the last batch
// applied.
func BatchRecords(n int) Opt { return func(c *restoreConfig) { c.batchRecords = n } }

// BatchBytes bounds a batch by the keys and values it holds as well
// (default 16 MiB): a batch is applied when it reaches BatchRecords records
// or this many bytes, whichever comes first, so that large records do not
// make a restoring task hold BatchRecords of them (100 MB of 1 KB records).
func BatchBytes(n int) Opt { return func(c *restoreConfig) { c.batchBytes = n } }

// maxBatchRecords keeps a batch's positions in 32 bits (see keyIndex).
const maxBatchRecords = 1 << 30

// ProgressEvery bounds the time between progress reports (default 1s) and
// span the offsets between them (default 100,000): a report is made when
// either is reached, at a batch boundary.
func ProgressEvery(d time.Duration, span int64) Opt {
	return func(c *restoreConfig) { c.progressEvery, c.progressSpan = d, span }
}

// IdleTimeout is how long a restore waits for records it knows exist
// before failing with a *StalledError (default 30s).
func IdleTimeout(d time.Duration) Opt { return func(c *restoreConfig) { c.idleTimeout = d } }

func (c *restoreConfig) validate() error {
	var errs []error
	if len(c.brokers) == 0 {
		errs = append(errs, &state.OptionError{Option: "Brokers", Reason: "no brokers"})
	}
	if c.batchRecords <= 0 || c.batchRecords > maxBatchRecords {
		errs = append(errs, &state.OptionError{Option: "BatchRecords", Reason: fmt.Sprintf("%d is not in [1, 2^30]", c.batchRecords)})
	}
	if c.batchBytes <= 0 {
		errs = append(errs, &state.OptionError{Option: "BatchBytes", Reason: fmt.Sprintf("%d is not positive", c.batchBytes)})
	}
	if c.progressEvery <= 0 || c.progressSpan <= 0 {
		errs = append(errs, &state.OptionError{Option: "ProgressEvery", Reason: fmt.Sprintf("%v, %d: both must be positive", c.progressEvery, c.progressSpan)})
	}
	if c.idleTimeout <= 0 {
		errs = append(errs, &state.OptionError{Option: "IdleTimeout", Reason: fmt.Sprintf("%v is not positive", c.idleTimeout)})
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
func NewRestorer(opts ...Opt) (*Restorer, error) {
	cfg := restoreConfig{
		batchRecords:  100_000,
		batchBytes:    16 << 20,
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
		return nil, fmt.Errorf("changelog: restore client: %w", err)
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
	return fmt.Sprintf("changelog: restoring %s/%d: no record for %v at offset %d, end %d", e.Topic, e.Partition, e.Waited, e.Next, e.End)
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
func (r *Restorer) Restore(ctx context.Context, topic string, partition int32, from int64, dst state.Committer, progress func(Progress)) (res Result, err error) {
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
		if err := dst.Apply(nil, dst.Checkpoint().With(partition, end, r.cfg.now())); err != nil {
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
			return 0, fmt.Errorf("changelog: listing %s offsets of %s: %w", what, topic, err)
		}
		o, ok := offs.Lookup(topic, partition)
		if !ok {
			return 0, fmt.Errorf("changelog: %s has no partition %d", topic, partition)
		}
		if o.Err != nil {
			return 0, fmt.Errorf("changelog: listing %s offsets of %s/%d: %w", what, topic, partition, o.Err)
		}
		return o.Offset, nil
	}
	if first, err = lookup("start", r.adm.ListStartOffsets); err != nil {
		return 0, 0, err
	}
	end, err = lookup("last stable", r.adm.ListCommittedOffsets)
	return first, end, err
}

func (r *Restorer) read(ctx context.Context, topic string, partition int32, dst state.Committer, res *Result, start time.Time, report func(Progress)) (err error) {
	opts := append([]kgo.Opt{kgo.SeedBrokers(r.cfg.brokers...)}, r.cfg.kafkaOpts...)
	opts = append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(res.From)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers come through as control records, so the
		// restore sees the offset of the marker that ends the changelog
		// and knows it is done; otherwise a changelog ending in a
		// transaction's marker would look unfinished.
		kgo.KeepControlRecords(),
		// A fetch session saves resending the partitions of a fetch; a
		// restore fetches one, and closing the session would cost the
		// restore a round trip at its end.
		kgo.DisableFetchSessions(),
		// Records are recycled once applied (see applier.add), so the
		// record slices of fetches are reused rather than allocated.
		kgo.WithPools(new(recordPool)),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("changelog: restore client: %w", err)
	}
	closeClient := sync.OnceFunc(cl.Close)
	defer closeClient()

	a := startApplier(dst, partition, res.End, r.cfg.batchRecords, r.cfg.batchBytes, r.cfg.now)
	a.recycleCompressed = !decompressPooled(cl)
	defer func() {
		if err != nil {
			// Failing: applying what is still queued would only delay
			// the error.
			a.abandon.Store(true)
		}
		if aerr := a.close(); err == nil {
			err = aerr
		}
		res.Applied = a.applied.Load()
	}()
	next := res.From
	lastReport, lastDone := start, int64(0)
	// Progress counts offsets read: with large batches, waiting for them
	// to be applied would make reports lumpy.
	maybeReport := func(now time.Time) {
		done := next - res.From
		if done >= res.Total || (now.Sub(lastReport) < r.cfg.progressEvery && done-lastDone < r.cfg.progressSpan) {
			return
		}
		res.Done = done
		res.Applied = a.applied.Load()
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
			return fmt.Errorf("changelog: reading %s/%d: %w", topic, partition, ferr)
		}
		if fs.NumRecords() == 0 {
			return &StalledError{Topic: topic, Partition: partition, Next: next, End: res.End, Waited: r.cfg.idleTimeout}
		}
		var serr error
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			rs := p.Records
			if serr != nil || len(rs) == 0 || next >= res.End {
				return
			}
			// A report at each record that completes a span of
			// offsets, as if the records were read one by one.
			for {
				i := firstFrom(rs, res.From+lastDone+r.cfg.progressSpan-1)
				if i == len(rs) || rs[i].Offset+1 >= res.End {
					break
				}
				next = rs[i].Offset + 1
				if maybeReport(r.cfg.now()); lastDone != next-res.From {
					break // not reported (cannot happen: the span is reached)
				}
			}
			// Records written after the restore started are not
			// restored: the task's own processing starts from the end.
			next = min(rs[len(rs)-1].Offset+1, res.End)
			serr = a.send(ctx, restoreChunk{records: rs, last: next >= res.End})
		})
		if serr != nil {
			return serr
		}
		maybeReport(r.cfg.now())
	}
	// Reading is over: the client closes while the last batch is
	// applied rather than after.
	closeClient()
	if err := a.close(); err != nil {
		return err
	}
	res.Done = next - res.From
	return nil
}

// firstFrom returns the index of the first of rs, in offset order, at or
// past offset o, or len(rs).
func firstFrom(rs []*kgo.Record, o int64) int {
	i, _ := slices.BinarySearchFunc(rs, o, func(r *kgo.Record, o int64) int { return cmp.Compare(r.Offset, o) })
	return i
}

// applier applies the records a restore reads to the store, on a
// goroutine of its own: the reading goroutine hands it the records of each
// fetch as they come and goes back to reading, while the applier collects
// them into batches and writes the batches to the store. Everything done
// per record happens on the applier, so the reading goroutine polls as
// often as a plain consumer would as long as the applier keeps up.
type applier struct {
	dst          state.Committer
	partition    int32
	end          int64 // offsets from here are not restored
	batchRecords int
	batchBytes   int
	now          func() time.Time

	in      chan restoreChunk
	failed  chan struct{} // closed when applying fails; err says why
	stopped chan struct{} // closed when the goroutine returns
	err     error
	closed  bool        // in is closed (used by the reading goroutine only)
	abandon atomic.Bool // set to drop what is not applied yet
	applied atomic.Int64

	b  restoreBatch // the batch being collected
	at int64        // the checkpoint of the last batch applied; -1 before

	// recycleCompressed is whether records of compressed batches may be
	// recycled before the batch holding their values is applied.
	recycleCompressed bool
}

// restoreChunk is the records of a fetch of the changelog partition, in
// offset order, including control records. last is set on the chunk that
// reaches the end of the restore: the batch is applied with it.
type restoreChunk struct {
	records []*kgo.Record
	last    bool
}

// restoreQueue bounds how far reading runs ahead of applying, in fetches
// waiting while a batch is written to the store: enough to keep reading
// through the write of a batch of the default size to Pebble. The fetches
// hold their buffers until applied.
const restoreQueue = 8

func startApplier(dst state.Committer, partition int32, end int64, batchRecords, batchBytes int, now func() time.Time) *applier {
	a := &applier{
		dst: dst, partition: partition, end: end, batchRecords: batchRecords, batchBytes: batchBytes, now: now,
		in:      make(chan restoreChunk, restoreQueue),
		failed:  make(chan struct{}),
		stopped: make(chan struct{}),
		b:       restoreBatch{index: newKeyIndex()},
		at:      -1,
	}
	go a.run()
	return a
}

// send queues c, waiting while the queue is full.
func (a *applier) send(ctx context.Context, c restoreChunk) error {
	select {
	case a.in <- c:
		return nil
	case <-a.failed:
		return a.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close waits for what was sent to be applied (or dropped, after abandon)
// and returns the error applying it, if any.
func (a *applier) close() error {
	if !a.closed {
		close(a.in)
		a.closed = true
	}
	<-a.stopped
	return a.err
}

func (a *applier) run() {
	defer close(a.stopped)
	for c := range a.in {
		if a.err != nil || a.abandon.Load() {
			continue // drained until the reading goroutine closes in
		}
		if err := a.add(c); err != nil {
			a.err = fmt.Errorf("changelog: applying restored records: %w", err)
			close(a.failed)
		}
	}
}

// add adds the data records of c to the batch, applying the batch each
// time it has BatchRecords records or BatchBytes bytes, with the checkpoint after its last
// record, and at the end.
//
// The records themselves are recycled as soon as they are added: the
// batch keeps their keys and values, which point into the fetch's buffer
// (or, for a compressed batch, the buffer it was decompressed into), not
// into the record. Reusing the record slices, which are as large as the
// fetch again, saves the restore much of its allocation and garbage
// collection, and the slices are reused while still in the CPU's cache.
// A decompression pool (kgo.PoolDecompressBytes) would reuse the buffer of
// a compressed batch once its records are recycled; the records of such
// batches are then left to the garbage collector.
func (a *applier) add(c restoreChunk) error {
	for i, rec := range c.records {
		offset := rec.Offset
		if offset >= a.end {
			recycle(c.records[i:], a.recycleCompressed)
			break
		}
		if !rec.Attrs.IsControl() {
			a.b.add(rec.Key, rec.Value)
		}
		recycle(c.records[i:i+1], a.recycleCompressed) // rec is not to be used after
		if a.b.read >= a.batchRecords || a.b.bytes >= a.batchBytes {
			if err := a.apply(offset + 1); err != nil {
				return err
			}
		}
	}
	if c.last && (a.b.read > 0 || a.at != a.end) {
		return a.apply(a.end)
	}
	return nil
}

func (a *applier) apply(next int64) error {
	if err := a.dst.Apply(a.b.changes, a.dst.Checkpoint().With(a.partition, next, a.now())); err != nil {
		return err
	}
	a.applied.Add(int64(a.b.read))
	a.b.reset()
	a.at = next
	return nil
}

// recycle recycles rs, those of compressed batches only if compressedToo.
func recycle(rs []*kgo.Record, compressedToo bool) {
	for _, rec := range rs {
		if compressedToo || rec.Attrs.CompressionType() == 0 {
			rec.Recycle()
		}
	}
}

// recordPool is a kgo.PoolRecords for one restore client.
type recordPool struct{ p sync.Pool }

func (rp *recordPool) GetRecords(n int) []kgo.Record {
	if rs, ok := rp.p.Get().(*[]kgo.Record); ok {
		return *rs // kgo lengthens it if short
	}
	return make([]kgo.Record, n)
}

func (rp *recordPool) PutRecords(rs []kgo.Record) { rp.p.Put(&rs) }

// decompressPooled reports whether cl decompresses into pooled buffers
// (a kgo.PoolDecompressBytes among the pools of KafkaOptions), or whether
// that cannot be told.
func decompressPooled(cl *kgo.Client) bool {
	pools := reflect.ValueOf(cl.OptValue(kgo.WithPools))
	if pools.Kind() != reflect.Slice {
		return true
	}
	for i := range pools.Len() {
		if _, ok := pools.Index(i).Interface().(kgo.PoolDecompressBytes); ok {
			return true
		}
	}
	return false
}

// restoreBatch is the changelog records read since the last batch was
// applied, keeping only the last record per key: the batch is applied
// atomically with its checkpoint, so the values before it in the batch
// would never be seen, and with a changelog that repeats keys (one record
// per key per commit) this saves most of the store's writes. Keys and
// values point into the fetches' buffers until the batch is applied.
type restoreBatch struct {
	changes []state.Change
	index   keyIndex // key to its position in changes
	read    int      // records read into the batch, repeats included
	bytes   int      // their keys and values, repeats included
}

func (b *restoreBatch) add(key, value []byte) {
	b.read++
	b.bytes += len(key) + len(value)
	if i := b.index.lookup(key, b.changes); i >= 0 {
		b.changes[i].Value = value
		return
	}
	b.changes = append(b.changes, state.Change{Key: key, Value: value})
}

// reset empties the batch for reuse, dropping its references to fetch
// buffers.
func (b *restoreBatch) reset() {
	clear(b.changes)
	b.index.reset()
	b.changes, b.read, b.bytes = b.changes[:0], 0, 0
}

// keyIndex finds a key among the changes of a batch. It is an
// open-addressing hash table of positions in changes rather than a
// map[string]int: a map copies every new key into a string of its own, and
// its lookups were most of the CPU time a restore adds to reading the
// changelog. A slot holds the high 32 bits of the key's hash, which also
// pick the slot, and the key's position plus one (0 is empty): the hash
// bits rule out almost every other key without reading it, and growing
// the table needs no hashing.
type keyIndex struct {
	seed  maphash.Seed
	slots []uint64 // a power of two of them, at most half used
	shift uint     // 64 - log2(len(slots)): h>>shift picks the slot
	n     int      // keys in the table
}

const keyIndexMinBits = 12 // 4,096 slots, 32 KiB

func newKeyIndex() keyIndex {
	return keyIndex{seed: maphash.MakeSeed(), slots: make([]uint64, 1<<keyIndexMinBits), shift: 64 - keyIndexMinBits}
}

// lookup returns the position of key in changes, or, when it is not
// there, records it at position len(changes), for the caller to append,
// and returns -1.
func (x *keyIndex) lookup(key []byte, changes []state.Change) int {
	h := maphash.Bytes(x.seed, key)
	mask := uint64(len(x.slots) - 1)
	for i := h >> x.shift; ; i = (i + 1) & mask {
		s := x.slots[i]
		if s == 0 {
			x.slots[i] = h&^(1<<32-1) | uint64(len(changes)+1)
			if x.n++; 2*x.n > len(x.slots) {
				x.grow()
			}
			return -1
		}
		if s>>32 == h>>32 {
			if pos := int(uint32(s)) - 1; bytes.Equal(changes[pos].Key, key) {
				return pos
			}
		}
	}
}

// grow doubles the table. A slot's new place comes from the hash bits it
// holds, so the keys are not read again.
func (x *keyIndex) grow() {
	old := x.slots
	x.slots, x.shift = make([]uint64, 2*len(old)), x.shift-1
	mask := uint64(len(x.slots) - 1)
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := s >> x.shift
		for x.slots[i] != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = s
	}
}

func (x *keyIndex) reset() {
	clear(x.slots)
	x.n = 0
}

func rate(done int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(done) / d.Seconds()
}
