package window

import (
	"fmt"
	"math"
)

// Tracker computes a task's event-time watermark from its input partitions.
//
// Each partition reports the records it delivers (Observe). The watermark
// is the minimum, over active partitions, of the maximum event time each has
// seen; a partition is active until it has delivered no record for the idle
// timeout (processing time, passed in as now, in ms), and becomes active
// again with its next record. An active partition that has not delivered
// any record yet holds the watermark where it is. When every partition is
// idle, nothing holds the watermark back and it moves to the maximum event
// time seen. The watermark never goes backwards, so records from a
// partition that rejoins behind it may be late.
//
// Grace is not applied here; it belongs to each stateful step (see the
// package documentation). A Tracker is not safe for concurrent use: it
// belongs to one task.
type Tracker struct {
	idle  int64
	parts map[int32]*partition
	wm    int64
	has   bool
}

type partition struct {
	max    int64
	hasMax bool
	last   int64 // processing time of the last record (or of assignment)
}

// NewTracker returns a tracker whose partitions go idle after idleTimeout
// ms without records; 0 disables idleness (every partition always holds the
// watermark).
func NewTracker(idleTimeout int64) (*Tracker, error) {
	if idleTimeout < 0 {
		return nil, fmt.Errorf("window: idle timeout %d must not be negative", idleTimeout)
	}
	return &Tracker{idle: idleTimeout, parts: map[int32]*partition{}}, nil
}

// Assign adds a partition that holds the watermark until it delivers a
// record or goes idle. Assigning a known partition restarts its idle clock.
func (t *Tracker) Assign(p int32, now int64) {
	if st, ok := t.parts[p]; ok {
		st.last = now
		return
	}
	t.parts[p] = &partition{last: now}
}

// Revoke removes a partition; it no longer holds the watermark.
func (t *Tracker) Revoke(p int32) { delete(t.parts, p) }

// Observe records that partition p delivered a record with eventTime at
// processing time now. Unknown partitions are assigned.
func (t *Tracker) Observe(p int32, eventTime, now int64) {
	st, ok := t.parts[p]
	if !ok {
		st = &partition{}
		t.parts[p] = st
	}
	st.last = now
	if !st.hasMax || eventTime > st.max {
		st.max, st.hasMax = eventTime, true
	}
}

// Watermark returns the watermark at processing time now, and false while
// there is none yet (no record seen, or an active partition without
// records).
func (t *Tracker) Watermark(now int64) (int64, bool) {
	low, anyActive, blocked := int64(math.MaxInt64), false, false
	high, anyMax := int64(math.MinInt64), false
	for _, st := range t.parts {
		if st.hasMax {
			high, anyMax = max(high, st.max), true
		}
		if t.idle > 0 && now-st.last >= t.idle {
			continue
		}
		anyActive = true
		if !st.hasMax {
			blocked = true
			continue
		}
		low = min(low, st.max)
	}
	candidate, ok := low, anyActive && !blocked
	if !anyActive {
		candidate, ok = high, anyMax
	}
	if ok && (!t.has || candidate > t.wm) {
		t.wm, t.has = candidate, true
	}
	return t.wm, t.has
}
