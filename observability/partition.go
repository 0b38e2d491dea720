package observability

import (
	"fmt"
	"time"
)

// DefaultWindow is how many commits a partition's window holds (Burrow's
// default "intervals").
const DefaultWindow = 10

// Sample is what a runner read about one partition at one time.
type Sample struct {
	At time.Time
	// End is the high watermark (read_committed: last stable offset).
	End int64
	// Start is the log start offset, -1 when unknown.
	Start int64
	// Committed is the group's committed offset, -1 without one.
	Committed int64
	// Owned is true when a live member of the group holds the partition:
	// an unchanged committed offset then counts as a commit that did not
	// move (Burrow sees those in __consumer_offsets), where an unowned
	// partition's unchanged offset is no commit at all.
	Owned bool
	// Head is the timestamp of the first readable record at or after the
	// committed offset (or the log start, in a compacted gap); zero when
	// it was not read.
	Head time.Time
	// Drained is true when nothing readable lies between the committed
	// offset and End: only transaction markers or aborted records, which
	// a read_committed consumer skips. The lag is then 0.
	Drained bool
}

// Partition keeps one partition's window of commits and recent high
// watermarks, and turns samples into PartitionLag. It is not safe for
// concurrent use.
type Partition struct {
	size    int
	commits []Commit
	ends    []int64
	prev    Sample
	hasPrev bool
}

// NewPartition returns a partition whose window holds size commits
// (DefaultWindow when size < 2).
func NewPartition(size int) *Partition {
	if size < 2 {
		size = DefaultWindow
	}
	return &Partition{size: size}
}

// Observe adds a sample and returns the partition's lag and status.
func (p *Partition) Observe(s Sample) PartitionLag {
	out := PartitionLag{End: s.End, Committed: s.Committed, State: StateActive}
	switch {
	case s.Committed < 0:
		out.State = StateNoCommit
	case s.Start >= 0 && s.Committed < s.Start:
		out.State = StateCompactedGap
		out.Lag = max(s.End-s.Start, 0)
	case s.Drained:
		out.Lag = 0
	default:
		out.Lag = max(s.End-s.Committed, 0)
	}
	if out.Lag > 0 && !s.Head.IsZero() {
		out.TimeLagMs = max(s.At.Sub(s.Head).Milliseconds(), 0)
	}
	if p.hasPrev {
		if dt := s.At.Sub(p.prev.At).Seconds(); dt > 0 {
			if s.Committed >= 0 && p.prev.Committed >= 0 {
				out.ConsumeRate = max(float64(s.Committed-p.prev.Committed), 0) / dt
			}
			out.ProduceRate = max(float64(s.End-p.prev.End), 0) / dt
		}
		if out.State == StateActive && out.Lag == 0 && s.End == p.prev.End {
			out.State = StateIdle
		}
	}
	if s.Committed >= 0 {
		moved := len(p.commits) == 0 || p.commits[len(p.commits)-1].Offset != s.Committed
		if moved || s.Owned {
			p.commits = appendRing(p.commits, Commit{Offset: s.Committed, At: s.At, Lag: out.Lag, HasLag: true}, p.size)
		}
	}
	p.ends = appendRing(p.ends, s.End, p.size)
	if out.State == StateActive || out.State == StateIdle {
		out.Status = Evaluate(p.commits, p.ends, out.Lag, s.At)
	}
	out.Reason = p.reason(out, s.At)
	p.prev, p.hasPrev = s, true
	return out
}

func appendRing[T any](s []T, v T, size int) []T {
	if len(s) == size {
		copy(s, s[1:])
		s = s[:size-1]
	}
	return append(s, v)
}

// reason explains a status other than OK in a sentence.
func (p *Partition) reason(l PartitionLag, now time.Time) string {
	behind := fmt.Sprintf("%d records, %s behind", l.Lag, time.Duration(l.TimeLagMs)*time.Millisecond)
	switch l.Status {
	case StatusWarning:
		return "lag not decreasing over the window (" + behind + ")"
	case StatusStalled:
		return fmt.Sprintf("committed offset %d has not moved over the window (%s)", l.Committed, behind)
	case StatusStopped:
		last := p.commits[len(p.commits)-1].At
		return fmt.Sprintf("no commits for %s (%s)", now.Sub(last).Round(time.Second), behind)
	case StatusRewind:
		return "committed offset went backwards in the window (" + behind + ")"
	}
	switch l.State {
	case StateCompactedGap:
		return "the committed offset is below the log start: records were removed unread"
	case StateNoCommit:
		return "the group has committed no offset"
	}
	return ""
}

// SummarizeStage sums a stage's partitions and names its worst one.
func SummarizeStage(stage int, topic string, parts []PartitionLag) StageLag {
	st := StageLag{Stage: stage, Topic: topic, Partitions: parts}
	worst := -1
	for i, pl := range parts {
		st.Lag += pl.Lag
		st.ConsumeRate += pl.ConsumeRate
		st.ProduceRate += pl.ProduceRate
		st.MaxTimeLagMs = max(st.MaxTimeLagMs, pl.TimeLagMs)
		if worst < 0 || pl.Status > parts[worst].Status ||
			pl.Status == parts[worst].Status && pl.TimeLagMs > parts[worst].TimeLagMs {
			worst = i
		}
	}
	if worst >= 0 {
		w := parts[worst]
		st.Status = w.Status
		switch {
		case w.Status != StatusOK:
			st.Reason = fmt.Sprintf("%s on partition %d: %s", w.Status, w.Partition, w.Reason)
		case w.TimeLagMs > 0:
			st.Reason = fmt.Sprintf("partition %d is furthest behind: %d records, %s", w.Partition, w.Lag, time.Duration(w.TimeLagMs)*time.Millisecond)
		}
	}
	return st
}

// Rollup fills a pipeline's status, event age and slowest stage from its
// stages: the status is the worst stage's; the slowest stage is the one
// with the worst status, or, all OK, the one with the largest time lag
// (none when every stage is caught up).
func Rollup(l *PipelineLag) {
	l.Status, l.EventAgeMs, l.Slowest = StatusOK, 0, nil
	var slow *StageLag
	for i := range l.Stages {
		st := &l.Stages[i]
		l.Status = Worst(l.Status, st.Status)
		l.EventAgeMs = max(l.EventAgeMs, st.MaxTimeLagMs)
		if slow == nil || st.Status > slow.Status || st.Status == slow.Status && st.MaxTimeLagMs > slow.MaxTimeLagMs {
			slow = st
		}
	}
	if slow != nil && (slow.Status != StatusOK || slow.MaxTimeLagMs > 0) {
		l.Slowest = &Slowest{Stage: slow.Stage, Topic: slow.Topic, Status: slow.Status, Reason: slow.Reason}
	}
}
