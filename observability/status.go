package observability

import (
	"encoding/json"
	"fmt"
	"time"
)

// Status is the evaluation of a partition, stage or pipeline by Burrow's
// rules (see Evaluate). The zero value is OK.
type Status uint8

// Statuses, in increasing severity: a stage or pipeline has the worst
// status of its partitions. The order is Burrow's (OK, WARN, STOP, STALL,
// REWIND), so a consumer that rewinds outranks one that stalled.
const (
	StatusOK      Status = iota
	StatusWarning        // offsets move, but lag did not decrease once in the window
	StatusStopped        // no commits for longer than the window spans, with lag
	StatusStalled        // commits that do not move the offset, with lag
	StatusRewind         // the committed offset went backwards in the window
)

var statusNames = [...]string{"OK", "WARNING", "STOPPED", "STALLED", "REWIND"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(%d)", s)
}

// MarshalJSON writes the status's name.
func (s Status) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads a status's name; an unknown name is an error.
func (s *Status) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return err
	}
	st, err := ParseStatus(name)
	if err != nil {
		return err
	}
	*s = st
	return nil
}

// ParseStatus is the inverse of Status.String.
func ParseStatus(name string) (Status, error) {
	for i, n := range statusNames {
		if n == name {
			return Status(i), nil
		}
	}
	return StatusOK, fmt.Errorf("unknown lag status %q", name)
}

// Commit is one entry of a partition's commit window: the consumer group
// committed Offset at At, when the partition's lag was Lag (HasLag false:
// the lag was not known then, which Burrow stores as a nil lag).
type Commit struct {
	Offset int64
	At     time.Time
	Lag    int64
	HasLag bool
}

// Evaluate applies Burrow's partition rules (linkedin/Burrow,
// core/internal/evaluator/caching.go, calculatePartitionStatus) to a
// window of commits, oldest first, the recent high watermarks of the
// partition (any order) and its current lag. In order:
//
//  1. A partition with no current lag (or no commits) is OK.
//  2. STOPPED: the time since the last commit is longer than the window
//     spans (now - last > last - first), unless a recent high watermark is
//     at or below the last committed offset (the group was caught up a
//     moment ago: no alarm yet).
//  3. If the lag was zero at any commit of the window, the partition is OK.
//  4. REWIND: a committed offset is lower than the one before it.
//  5. STALLED: every commit of the window has the same offset.
//  6. WARNING: the lag never decreased from one commit to the next (commits
//     without a known lag are skipped).
//  7. Otherwise OK.
func Evaluate(window []Commit, highWatermarks []int64, currentLag int64, now time.Time) Status {
	if currentLag <= 0 || len(window) == 0 {
		return StatusOK
	}
	if offsetsStopped(window, now) && !recentLagZero(window, highWatermarks) {
		return StatusStopped
	}
	if !lagAlwaysNotZero(window) {
		return StatusOK
	}
	switch {
	case offsetsRewind(window):
		return StatusRewind
	case offsetsStalled(window):
		return StatusStalled
	case lagNotDecreasing(window):
		return StatusWarning
	}
	return StatusOK
}

// lagAlwaysNotZero is Burrow's rule 1: a window in which the lag was ever
// zero is OK.
func lagAlwaysNotZero(w []Commit) bool {
	for _, c := range w {
		if c.HasLag && c.Lag == 0 {
			return false
		}
	}
	return true
}

// offsetsRewind is rule 2: the committed offset decreased.
func offsetsRewind(w []Commit) bool {
	for i := 1; i < len(w); i++ {
		if w[i].Offset < w[i-1].Offset {
			return true
		}
	}
	return false
}

// offsetsStopped is rule 3: the last commit is older than the window is
// long. Burrow compares in milliseconds, with now in whole seconds; so do we.
func offsetsStopped(w []Commit, now time.Time) bool {
	first, last := w[0].At.UnixMilli(), w[len(w)-1].At.UnixMilli()
	return now.Unix()*1000-last > last-first
}

// offsetsStalled is rule 4: commits that do not move.
func offsetsStalled(w []Commit) bool {
	for i := 1; i < len(w); i++ {
		if w[i].Offset != w[i-1].Offset {
			return false
		}
	}
	return true
}

// lagNotDecreasing is rule 5: the consumer moves but never gains.
func lagNotDecreasing(w []Commit) bool {
	var last *Commit
	for i := range w {
		if !w[i].HasLag {
			continue
		}
		if last != nil && w[i].Lag < last.Lag {
			return false
		}
		last = &w[i]
	}
	return true
}

// recentLagZero is Burrow's checkIfRecentLagZero: a recent high watermark
// at or below the last committed offset means the group was caught up
// within the stored broker history.
func recentLagZero(w []Commit, highWatermarks []int64) bool {
	lastOffset := w[len(w)-1].Offset
	for _, hw := range highWatermarks {
		if hw <= lastOffset {
			return true
		}
	}
	return false
}

// Worst returns the most severe of statuses (OK for none).
func Worst(statuses ...Status) Status {
	w := StatusOK
	for _, s := range statuses {
		if s > w {
			w = s
		}
	}
	return w
}
