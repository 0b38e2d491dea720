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
// The state is in the Store ('d' id -> t0, and the watermark). Expired ids
// are dropped from the store in batches: Advance looks for them only when
// the watermark enters a new bucket of an eighth of the horizon, and until
// then Process ignores an id whose state has expired (t0 + horizon <=
// watermark), so a record costs no search and the store holds at most a
// bucket's worth of expired ids. Which ids may expire in which bucket is
// kept in memory, not in the store: it follows from the stored t0s, so a
// model rebuilds it from the store when it first needs it, and the
// changelog carries one record per id and commit instead of two. A Dedupe
// is not safe for concurrent use.
type Dedupe struct {
	horizon int64
	bucket  int64 // ms of watermark between two looks for expired ids
	store   Store
	wm      int64
	hasWM   bool
	// hold: the watermark is written on FlushState, not on every Advance
	// (HoldWatermark); wmDirty: it moved since.
	hold, wmDirty bool
	// due lists the ids to look at by the bucket of their expiry; nil
	// until the first look builds it from the store. An entry may be
	// stale (its id passed again later, or was dropped): the stored t0
	// decides.
	due map[int64][]pending
	// Buffers for keys and values, which the store copies.
	kbuf, vbuf []byte
}

// pending is an id that expires at expiry unless it passed again since.
type pending struct {
	expiry int64
	id     string
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
		// the store goes when its entry in due comes up.
		return true, nil
	}
	// A replaced state's entry in due goes stale: the new t0 decides.
	d.vbuf = AppendTime(d.vbuf[:0], t)
	if err := d.store.Put(k, d.vbuf); err != nil {
		return false, err
	}
	d.remember(expiry, id)
	return true, nil
}

// remember notes that id may expire at expiry. Before due is built there
// is nothing to do: building it finds the id in the store.
func (d *Dedupe) remember(expiry int64, id []byte) {
	if d.due == nil {
		return
	}
	b := floorDiv(expiry, d.bucket)
	d.due[b] = append(d.due[b], pending{expiry, string(id)})
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
	if d.due == nil {
		if err := d.build(); err != nil {
			return err
		}
	}
	// The buckets that can hold expired ids, in order, and each in the
	// order its ids came: the changelog gets the deletes in the same
	// order in every run over the same input.
	last := floorDiv(wm, d.bucket)
	var buckets []int64
	for b := range d.due {
		if b <= last {
			buckets = append(buckets, b)
		}
	}
	slices.Sort(buckets)
	for _, b := range buckets {
		ps, keep := d.due[b], d.due[b][:0]
		for _, p := range ps {
			if p.expiry > wm {
				keep = append(keep, p)
			} else if err := d.drop(p.id); err != nil {
				d.due = nil // half done: built again from the store
				return err
			}
		}
		clear(ps[len(keep):])
		if len(keep) == 0 {
			delete(d.due, b)
		} else {
			d.due[b] = keep
		}
	}
	return nil
}

// drop deletes id from the store if its state has expired; a state that
// passed again since expires later, through its own entry in due.
func (d *Dedupe) drop(id string) error {
	d.kbuf = append(append(d.kbuf[:0], famDedupe), id...)
	v, ok, err := d.store.Get(d.kbuf)
	if err != nil || !ok {
		return err
	}
	t0, err := ParseTime(v)
	if err != nil {
		return err
	}
	if !d.expired(t0) {
		return nil
	}
	return d.store.Delete(d.kbuf)
}

// build lists every stored id in due. Stores written by earlier versions
// also hold an expiry index ('e' id keys), which is dropped here.
func (d *Dedupe) build() error {
	d.due = map[int64][]pending{}
	err := d.store.Scan([]byte{famDedupe}, []byte{famDedupe + 1}, func(k, v []byte) error {
		t0, err := ParseTime(v)
		if err != nil {
			return err
		}
		d.remember(satAdd(t0, d.horizon), k[1:])
		return nil
	})
	if err != nil {
		d.due = nil
		return err
	}
	return deleteFamily(d.store, famDedupeExpiry)
}
