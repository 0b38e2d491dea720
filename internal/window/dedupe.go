package window

import (
	"fmt"
	"math"
	"slices"
)

// Dedupe is the in-memory model of the dedupe step for one task: records
// are identified by the bytes of their dedupe expression value (the caller
// encodes it, for example as JSON), and a repeat within the horizon of the
// last passing occurrence is dropped.
//
// Precisely: the state for an id is the event time t0 of its latest passing
// occurrence, kept until t0 + horizon <= watermark. A record (id, t) is a
// duplicate when that state exists and |t - t0| < horizon; otherwise it
// passes and, when t > t0 (or there is no state) and t + horizon is still
// ahead of the watermark, becomes the state. Expiry follows the event-time
// watermark, not the wall clock, so replays dedupe the same way.
//
// All state is in the Store ('d' id -> t0, and an expiry index 'e' expiry
// id). Expired ids are dropped from the store in batches: Advance scans the
// expiry index only when the watermark enters a new bucket of an eighth
// of the horizon, and until then Process ignores an id whose state has
// expired (t0 + horizon <= watermark), so a record costs no scan and the
// store holds at most a bucket's worth of expired ids. A Dedupe is not
// safe for concurrent use.
type Dedupe struct {
	horizon int64
	bucket  int64 // ms of watermark between two scans of the expiry index
	store   Store
	wm      int64
	hasWM   bool
	// hold: the watermark is written on FlushState, not on every Advance
	// (HoldWatermark); wmDirty: it moved since.
	hold, wmDirty bool
	// Buffers for keys and values, which the store copies.
	kbuf, xbuf, vbuf []byte
}

var metaDedupeWM = metaKey("dedupe-wm")

// NewDedupe returns a dedupe model with a horizon of horizon ms (> 0) over
// store, resuming from whatever state store holds.
func NewDedupe(horizon int64, store Store) (*Dedupe, error) {
	if horizon <= 0 {
		return nil, fmt.Errorf("window: dedupe horizon %d must be positive", horizon)
	}
	d := &Dedupe{horizon: horizon, bucket: max(1, horizon/8), store: store}
	b, ok, err := store.Get(metaDedupeWM)
	if err != nil {
		return nil, err
	}
	if ok {
		if d.wm, err = ParseTime(b); err != nil {
			return nil, err
		}
		d.hasWM = true
	}
	return d, nil
}

// HoldWatermark has the model write its watermark, which moves with nearly
// every record, only on FlushState: for a model kept with its task between
// records, which the caller flushes before the store's writes are
// committed and drops, unflushed, when they are not (see WriteBack).
func (d *Dedupe) HoldWatermark() { d.hold = true }

// FlushState writes the watermark held back since the last FlushState.
func (d *Dedupe) FlushState() error {
	if !d.wmDirty {
		return nil
	}
	d.wmDirty = false
	d.vbuf = AppendTime(d.vbuf[:0], d.wm)
	return d.store.Put(metaDedupeWM, d.vbuf)
}

func dedupeKey(id []byte) []byte { return appendDedupeKey(nil, id) }

func appendDedupeKey(dst, id []byte) []byte { return append(append(dst, famDedupe), id...) }

func dedupeExpiryKey(expiry int64, id []byte) []byte { return appendDedupeExpiryKey(nil, expiry, id) }

func appendDedupeExpiryKey(dst []byte, expiry int64, id []byte) []byte {
	return append(AppendTime(append(dst, famDedupeExpiry), expiry), id...)
}

// expired reports whether the state of an id last passing at t0 has
// expired, although Advance may not have dropped it yet.
func (d *Dedupe) expired(t0 int64) bool { return d.hasWM && satAdd(t0, d.horizon) <= d.wm }

// Process reports whether the record with dedupe value id at event time t
// passes (true) or is a duplicate (false).
func (d *Dedupe) Process(id []byte, t int64) (bool, error) {
	d.kbuf = appendDedupeKey(d.kbuf[:0], id)
	k := d.kbuf
	v, stored, err := d.store.Get(k)
	if err != nil {
		return false, err
	}
	var t0 int64
	if stored {
		if t0, err = ParseTime(v); err != nil {
			return false, err
		}
	}
	if stored && !d.expired(t0) {
		if diff := satSub(t, t0); diff < d.horizon && diff > -d.horizon {
			return false, nil
		}
		if t <= t0 {
			return true, nil
		}
	}
	expiry := satAdd(t, d.horizon)
	if d.hasWM && expiry <= d.wm {
		// Already expired: nothing to remember. An expired state left in
		// the store goes with its expiry entry.
		return true, nil
	}
	if stored {
		// The state is replaced, so its expiry entry must not drop it.
		d.xbuf = appendDedupeExpiryKey(d.xbuf[:0], satAdd(t0, d.horizon), id)
		if err := d.store.Delete(d.xbuf); err != nil {
			return false, err
		}
	}
	d.vbuf = AppendTime(d.vbuf[:0], t)
	if err := d.store.Put(k, d.vbuf); err != nil {
		return false, err
	}
	d.xbuf = appendDedupeExpiryKey(d.xbuf[:0], expiry, id)
	return true, d.store.Put(d.xbuf, nil)
}

// Advance moves the watermark to wm (ignored unless ahead); ids whose
// t0 + horizon <= wm are forgotten, and dropped from the store when wm
// enters a new bucket (always at math.MaxInt64, the end of input).
func (d *Dedupe) Advance(wm int64) error {
	if d.hasWM && wm <= d.wm {
		return nil
	}
	scan := !d.hasWM || wm == math.MaxInt64 || floorDiv(wm, d.bucket) != floorDiv(d.wm, d.bucket)
	d.wm, d.hasWM = wm, true
	d.wmDirty = true
	if !d.hold {
		if err := d.FlushState(); err != nil {
			return err
		}
	}
	if !scan {
		return nil
	}
	var due [][]byte
	lo, hi := closeRange(famDedupeExpiry, wm)
	if err := d.store.Scan(lo, hi, func(k, _ []byte) error {
		due = append(due, slices.Clone(k))
		return nil
	}); err != nil {
		return err
	}
	for _, xk := range due {
		d.kbuf = appendDedupeKey(d.kbuf[:0], xk[1+timeLen:])
		if err := d.store.Delete(d.kbuf); err != nil {
			return err
		}
		if err := d.store.Delete(xk); err != nil {
			return err
		}
	}
	return nil
}
