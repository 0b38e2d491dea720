package pebblestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	"github.com/sluicehq/sluice/internal/state"
)

// Opt configures a Store. Options are validated in Open.
type Opt func(*config)

type config struct {
	memTableSize uint64
	cacheSize    int64
	maxAge       time.Duration
	logger       *slog.Logger
	now          func() time.Time
}

// MemTableSize sets the size of Pebble's memtable (default 16 MiB). Writes
// not yet flushed from it are lost in a crash and replayed from the
// changelog; a larger memtable flushes less often but uses more memory per
// task and leaves more to replay.
func MemTableSize(bytes uint64) Opt { return func(c *config) { c.memTableSize = bytes } }

// CacheSize sets the size of the store's block cache (default 8 MiB).
func CacheSize(bytes int64) Opt { return func(c *config) { c.cacheSize = bytes } }

// MaxCheckpointAge is how old a checkpoint found on open may be and still
// be trusted (default 12h). It must be shorter than the changelog topic's
// delete.retention.ms (Kafka's default is 24h): Kafka removes tombstones
// from a compacted topic that long after cleaning, and replaying from an
// older offset could then miss a delete.
func MaxCheckpointAge(d time.Duration) Opt { return func(c *config) { c.maxAge = d } }

// Logger receives Pebble's log lines (default: discard); Pebble's
// informational lines are logged at debug level.
func Logger(l *slog.Logger) Opt { return func(c *config) { c.logger = l } }

// clock sets the clock for checkpoint times (tests).
func clock(now func() time.Time) Opt { return func(c *config) { c.now = now } }

func (c *config) validate() error {
	var errs []error
	if c.memTableSize < 1<<20 || c.memTableSize >= 4<<30 {
		errs = append(errs, &state.OptionError{Option: "MemTableSize", Reason: fmt.Sprintf("%d bytes is not in [1 MiB, 4 GiB)", c.memTableSize)})
	}
	if c.cacheSize < 0 {
		errs = append(errs, &state.OptionError{Option: "CacheSize", Reason: fmt.Sprintf("%d bytes is negative", c.cacheSize)})
	}
	if c.maxAge <= 0 {
		errs = append(errs, &state.OptionError{Option: "MaxCheckpointAge", Reason: fmt.Sprintf("%v is not positive", c.maxAge)})
	}
	if c.logger == nil {
		errs = append(errs, &state.OptionError{Option: "Logger", Reason: "nil logger"})
	}
	return errors.Join(errs...)
}

// Keys in the Pebble database are prefixed so the checkpoint can live in
// the same database, and so be written in the same batch, as the data.
const (
	dataPrefix = 'd'
	metaPrefix = 'm'
)

var checkpointKey = []byte{metaPrefix, 'c', 'p'}

// Store is an on-disk state.Store and state.Committer on a Pebble v2
// database in a directory of its own. The package comment explains why it
// runs without a write-ahead log, and Open when it is wiped.
type Store struct {
	dir    string
	cfg    config
	db     *pebble.DB
	cache  interface{ Unref() }
	cp     state.Checkpoint
	wiped  string
	kbuf   []byte // scratch for prefixed keys
	closed bool
	// unflushed is the keys set less the keys deleted since the last
	// flush, for Size (flushes end on Pebble's goroutines).
	unflushed atomic.Int64
}

var _ state.Committer = (*Store)(nil)

// Open opens the store in dir, creating it if needed. dir belongs to
// the store: everything in it is removed when the store is wiped. The store
// is wiped on open (see Wiped) when Pebble reports it corrupt, or its
// checkpoint is missing, does not decode or is older than
// MaxCheckpointAge; it then has no checkpoint, and is restored from the
// start of the changelog. Opening does not block on anything but the local
// disk, so it takes no context.
func Open(dir string, opts ...Opt) (*Store, error) {
	cfg := config{
		memTableSize: 16 << 20,
		cacheSize:    8 << 20,
		maxAge:       12 * time.Hour,
		logger:       slog.New(slog.DiscardHandler),
		now:          time.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Store{dir: dir, cfg: cfg}
	err := p.open()
	if err != nil && pebble.IsCorruptionError(err) {
		// Only corruption wipes: a lock held by another process or a
		// permission error must not destroy a store that may be valid.
		err = p.wipe(fmt.Sprintf("corrupt: %v", err))
	}
	if err != nil {
		return nil, err
	}
	if reason := p.loadCheckpoint(); reason != "" {
		if err := p.wipe(reason); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *Store) open() error {
	cache := pebble.NewCache(p.cfg.cacheSize)
	o := &pebble.Options{
		// The changelog is the source of truth; see the package comment.
		DisableWAL: true,
		// A new store needs no compatibility with older Pebble versions;
		// one that a newer format makes unreadable is wiped and restored.
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       p.cfg.memTableSize,
		Cache:              cache,
		Logger:             pebbleLogger{p.cfg.logger},
		EventListener: &pebble.EventListener{FlushEnd: func(pebble.FlushInfo) {
			p.unflushed.Store(0)
		}},
	}
	// A state store is read-modify-write: most Puts follow a Get of the
	// same key, often a missing one, which a bloom filter answers without
	// reading a block.
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(p.dir, o)
	if err != nil {
		cache.Unref()
		return fmt.Errorf("pebblestore: opening %s: %w", p.dir, err)
	}
	p.db, p.cache = db, cache
	return nil
}

// loadCheckpoint reads the checkpoint, and returns why the store must be
// wiped, or "".
func (p *Store) loadCheckpoint() string {
	v, closer, err := p.db.Get(checkpointKey)
	if errors.Is(err, pebble.ErrNotFound) {
		it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte{dataPrefix}, UpperBound: []byte{dataPrefix + 1}})
		if err != nil {
			return fmt.Sprintf("no checkpoint, and cannot check for data: %v", err)
		}
		empty := !it.First()
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return fmt.Sprintf("no checkpoint, and cannot check for data: %v", err)
		}
		if empty {
			return "" // a new store
		}
		return "data without a checkpoint"
	}
	if err != nil {
		return fmt.Sprintf("reading the checkpoint: %v", err)
	}
	cp, derr := decodeCheckpoint(v)
	_ = closer.Close()
	if derr != nil {
		return fmt.Sprintf("checkpoint: %v", derr)
	}
	if age := p.cfg.now().Sub(cp.Written); age > p.cfg.maxAge {
		return fmt.Sprintf("checkpoint written %v ago, more than MaxCheckpointAge %v", age.Round(time.Second), p.cfg.maxAge)
	}
	p.cp = cp
	return ""
}

// wipe removes the database and opens an empty one. Removing the directory
// is faster than deleting every key, whatever the store's size.
func (p *Store) wipe(reason string) error {
	p.cfg.logger.Warn("wiping state store", "dir", p.dir, "reason", reason)
	if p.db != nil {
		_ = p.db.Close() // being wiped: nothing in it is needed
		p.cache.Unref()
		p.db = nil
	}
	if err := os.RemoveAll(p.dir); err != nil {
		return fmt.Errorf("pebblestore: wiping %s: %w", p.dir, err)
	}
	p.cp, p.wiped = state.Checkpoint{}, reason
	p.unflushed.Store(0)
	return p.open()
}

// Wiped returns why the store was wiped when it was opened or reset, or ""
// if it was not.
func (p *Store) Wiped() string { return p.wiped }

func (p *Store) key(k []byte) []byte {
	p.kbuf = append(append(p.kbuf[:0], dataPrefix), k...)
	return p.kbuf
}

// Get implements state.Store. The value is a copy.
func (p *Store) Get(key []byte) ([]byte, bool, error) {
	if p.closed {
		return nil, false, state.ErrClosed
	}
	v, closer, err := p.db.Get(p.key(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := make([]byte, len(v))
	copy(out, v)
	return out, true, closer.Close()
}

// Put implements state.Store. Writes outside Apply do not move the checkpoint;
// a task writes through state.Logged.
func (p *Store) Put(key, value []byte) error {
	if p.closed {
		return state.ErrClosed
	}
	p.unflushed.Add(1)
	return p.db.Set(p.key(key), value, pebble.NoSync)
}

// Delete implements state.Store.
func (p *Store) Delete(key []byte) error {
	if p.closed {
		return state.ErrClosed
	}
	p.unflushed.Add(-1)
	return p.db.Delete(p.key(key), pebble.NoSync)
}

// Scan implements state.Store.
func (p *Store) Scan(lo, hi []byte, fn func(k, v []byte) error) error {
	if p.closed {
		return state.ErrClosed
	}
	o := &pebble.IterOptions{LowerBound: append([]byte{dataPrefix}, lo...), UpperBound: []byte{dataPrefix + 1}}
	if hi != nil {
		o.UpperBound = append([]byte{dataPrefix}, hi...)
	}
	it, err := p.db.NewIter(o)
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return errors.Join(err, it.Close())
		}
		if err := fn(it.Key()[1:], v); err != nil {
			return errors.Join(err, it.Close())
		}
	}
	return errors.Join(it.Error(), it.Close())
}

// Apply implements state.Committer: one Pebble batch holds the changes and the
// checkpoint. It does not sync: there is no WAL to sync, and the batch
// becomes durable when its memtable is flushed, in order with the others.
func (p *Store) Apply(changes []state.Change, cp state.Checkpoint) error {
	if p.closed {
		return state.ErrClosed
	}
	enc := encodeCheckpoint(cp)
	// The batch is sized up front: growing it would copy what it holds
	// each time, and a restore applies batches of megabytes.
	size := batchHeaderLen + batchEntryLen + len(checkpointKey) + len(enc)
	for _, c := range changes {
		size += batchEntryLen + 1 + len(c.Key) + len(c.Value)
	}
	b := p.db.NewBatchWithSize(size)
	defer b.Close()
	for _, c := range changes {
		// The prefixed key is written into the batch directly.
		var op *pebble.DeferredBatchOp
		if c.Value == nil {
			op = b.DeleteDeferred(1 + len(c.Key))
		} else {
			op = b.SetDeferred(1+len(c.Key), len(c.Value))
			copy(op.Value, c.Value)
		}
		op.Key[0] = dataPrefix
		copy(op.Key[1:], c.Key)
		if err := op.Finish(); err != nil {
			return err
		}
	}
	if err := b.Set(checkpointKey, enc, nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	var n int64
	for _, c := range changes {
		if c.Value == nil {
			n--
		} else {
			n++
		}
	}
	p.unflushed.Add(n)
	p.cp = cp
	return nil
}

// The sizes of a Pebble batch's header and, at most, of an entry's kind
// and two length varints (pebble/batchrepr).
const (
	batchHeaderLen = 12
	batchEntryLen  = 1 + 2*binary.MaxVarintLen32
)

// Checkpoint implements state.Committer.
func (p *Store) Checkpoint() state.Checkpoint { return p.cp }

// Reset implements state.Committer: the store is wiped.
func (p *Store) Reset() error {
	if p.closed {
		return state.ErrClosed
	}
	return p.wipe("reset for a full restore")
}

// Close flushes the memtable, so a clean shutdown leaves nothing to
// replay (Pebble does not flush on close without a WAL), and closes the
// database.
func (p *Store) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	err := errors.Join(p.db.Flush(), p.db.Close())
	p.cache.Unref()
	return err
}

// Checkpoint encoding: version byte, write time (Unix ns, varint), count,
// then (partition, offset) varint pairs in partition order, then a CRC-32C
// of everything before it, so a torn or foreign value is detected rather
// than trusted.
const checkpointVersion = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func encodeCheckpoint(cp state.Checkpoint) []byte {
	b := []byte{checkpointVersion}
	b = binary.AppendVarint(b, cp.Written.UnixNano())
	b = binary.AppendUvarint(b, uint64(len(cp.Offsets)))
	parts := make([]int32, 0, len(cp.Offsets))
	for p := range cp.Offsets {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		b = binary.AppendVarint(b, int64(p))
		b = binary.AppendVarint(b, cp.Offsets[p])
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var errBadCheckpoint = errors.New("does not decode")

func decodeCheckpoint(b []byte) (state.Checkpoint, error) {
	if len(b) < 5 || b[0] != checkpointVersion {
		return state.Checkpoint{}, errBadCheckpoint
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return state.Checkpoint{}, fmt.Errorf("%w (checksum)", errBadCheckpoint)
	}
	r := body[1:]
	next := func() (int64, bool) {
		v, n := binary.Varint(r)
		if n <= 0 {
			return 0, false
		}
		r = r[n:]
		return v, true
	}
	ns, ok := next()
	if !ok {
		return state.Checkpoint{}, errBadCheckpoint
	}
	count, n := binary.Uvarint(r)
	if n <= 0 || count > uint64(len(r)) {
		return state.Checkpoint{}, errBadCheckpoint
	}
	r = r[n:]
	cp := state.Checkpoint{Offsets: make(map[int32]int64, count), Written: time.Unix(0, ns)}
	for range count {
		p, ok1 := next()
		o, ok2 := next()
		if !ok1 || !ok2 || o < 0 {
			return state.Checkpoint{}, errBadCheckpoint
		}
		cp.Offsets[int32(p)] = o
	}
	if len(r) != 0 {
		return state.Checkpoint{}, errBadCheckpoint
	}
	return cp, nil
}

// pebbleLogger sends Pebble's log lines to slog. Fatalf must not return,
// so it goes to Pebble's default logger, which exits, after logging.
type pebbleLogger struct{ l *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any)  { l.l.Debug(fmt.Sprintf(format, args...)) }
func (l pebbleLogger) Errorf(format string, args ...any) { l.l.Error(fmt.Sprintf(format, args...)) }
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.l.Error(fmt.Sprintf(format, args...))
	pebble.DefaultLogger.Fatalf(format, args...)
}
