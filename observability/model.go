package observability

import "time"

// The types below are the lag and skew view as runners report it and the
// control plane serves it. Their JSON is part of the agent protocol
// (internal/agentproto embeds PipelineLag): change it only by adding
// optional fields. Nothing in them is record content: offsets, counts,
// rates, timestamps, statuses, and keys as 64-bit hashes.

// State says whether a partition's numbers mean what they say.
type State string

// Partition states.
const (
	// StateActive: offsets and time lag are measured.
	StateActive State = "active"
	// StateIdle: nothing new arrived since the last sample and the group
	// has read everything: lag and time lag are zero, not "now minus the
	// last record's timestamp".
	StateIdle State = "idle"
	// StateNoCommit: the group has no committed offset for the partition,
	// so there is no lag to speak of; lag and time lag are zero.
	StateNoCommit State = "no-commit"
	// StateCompactedGap: the committed offset is below the log start
	// offset (retention or compaction removed records the group never
	// read); lag counts the records that remain, from the log start, and
	// time lag is read from the first of them.
	StateCompactedGap State = "compacted-gap"
)

// PartitionLag is one partition of one stage, as one runner sampled it.
type PartitionLag struct {
	Partition int32  `json:"partition"`
	State     State  `json:"state"`
	Status    Status `json:"status"`
	// End is the high watermark (read_committed: the last stable offset).
	End int64 `json:"end"`
	// Committed is the group's committed offset, -1 without one.
	Committed int64 `json:"committed"`
	// Lag is End - Committed in records (see State for when it is 0).
	Lag int64 `json:"lag"`
	// TimeLagMs is the sample time minus the timestamp of the record at the
	// committed offset (the oldest record not yet processed), read from
	// the topic, never interpolated; 0 when Lag is 0.
	TimeLagMs int64 `json:"time_lag_ms"`
	// ConsumeRate and ProduceRate are records per second over the last
	// sample interval: the committed offset's and the end's progress.
	ConsumeRate float64 `json:"consume_rate"`
	ProduceRate float64 `json:"produce_rate"`
	// Owned is true when the reporting runner holds the partition's task.
	Owned bool `json:"owned,omitempty"`
	// Reason explains a status other than OK.
	Reason string `json:"reason,omitempty"`
}

// StageLag is one stage: its input topic (the source, or a repartition
// topic) over all its partitions.
type StageLag struct {
	Stage int    `json:"stage"`
	Topic string `json:"topic"`
	// Status is the worst of the partitions' statuses.
	Status Status `json:"status"`
	// Lag is the sum of the partitions' lag; MaxTimeLagMs the largest
	// time lag; the rates are sums.
	Lag          int64   `json:"lag"`
	MaxTimeLagMs int64   `json:"max_time_lag_ms"`
	ConsumeRate  float64 `json:"consume_rate"`
	ProduceRate  float64 `json:"produce_rate"`
	// Reason names the partition that makes Status, or the one furthest
	// behind.
	Reason string `json:"reason,omitempty"`
	// Partitions may be left out of a report to keep it small; the
	// summary fields above still cover every partition.
	Partitions []PartitionLag `json:"partitions,omitempty"`
}

// Slowest names the stage that holds the pipeline back, and why.
type Slowest struct {
	Stage  int    `json:"stage"`
	Topic  string `json:"topic"`
	Status Status `json:"status"`
	Reason string `json:"reason"`
}

// HotKey is a key that takes a large share of one task's records, from
// the task's Space-Saving sketch.
type HotKey struct {
	// Hash is the key's 64-bit hash (internal/sketch.Hash64 of the record
	// key bytes) in hex: the same key has the same hash on every runner.
	Hash      string `json:"hash"`
	Stage     int    `json:"stage"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Runner is the runner whose task saw it (filled by the control plane).
	Runner string `json:"runner,omitempty"`
	// Count over-estimates the key's sampled records in the window by at most
	// Error (Space-Saving's guarantee); Records is the task's sampled total
	// (runners sample every 4th offset).
	Count   uint64 `json:"count"`
	Error   uint64 `json:"error"`
	Records uint64 `json:"records"`
	// Share is Count / Records.
	Share float64 `json:"share"`
}

// PipelineLag is a pipeline's lag and skew as one runner sees it: every
// stage over every partition (any runner can read the group's offsets),
// and hot keys of the tasks this runner holds.
type PipelineLag struct {
	SampledAt time.Time `json:"sampled_at"`
	Status    Status    `json:"status"`
	// EventAgeMs is the age of the oldest record not yet through the
	// pipeline: the largest time lag of any stage. Records keep their
	// event timestamp through repartition topics, so a later stage's time
	// lag is measured from the same clock as the source's.
	EventAgeMs int64      `json:"event_age_ms"`
	Slowest    *Slowest   `json:"slowest,omitempty"`
	Stages     []StageLag `json:"stages"`
	HotKeys    []HotKey   `json:"hot_keys,omitempty"`
	// Restores is the progress of the last restore of each state store of
	// the tasks this runner holds (stateful pipelines only).
	Restores []Restore `json:"restores,omitempty"`
	// Stores is the size of each state store of the tasks this runner
	// holds (stateful pipelines only).
	Stores []StoreSize `json:"stores,omitempty"`
	// Source says where the view comes from: empty (or SourceRunner) for a
	// runner of the pipeline, SourceMonitor when no live runner reported
	// it and the fleet's monitor runner sampled its consumer group
	// instead (no hot keys, restores or store sizes then: those need the
	// tasks).
	Source string `json:"source,omitempty"`
}

// Sources of a view.
const (
	SourceRunner  = "runner"
	SourceMonitor = "monitor"
)

// StoreSize is the size of one task's state store.
type StoreSize struct {
	// Runner is the runner holding the task (filled by the control plane).
	Runner    string `json:"runner,omitempty"`
	Step      string `json:"step"`
	Partition int32  `json:"partition"`
	// Kind is "memory" or "disk".
	Kind string `json:"kind"`
	// Keys and Bytes are the store's live keys and their size: exact for
	// a memory store (key and value bytes); for a disk store, Bytes is
	// the space it takes on disk plus its memtables and Keys is estimated
	// from its tables' entry counts (overwritten keys not yet compacted
	// count more than once), and Estimated is true.
	Keys      int64 `json:"keys"`
	Bytes     int64 `json:"bytes"`
	Estimated bool  `json:"estimated,omitempty"`
}

// Restore is the progress of restoring one task's state store from its
// changelog.
type Restore struct {
	// Runner is the runner holding the task (filled by the control plane).
	Runner    string `json:"runner,omitempty"`
	Step      string `json:"step"`
	Partition int32  `json:"partition"`
	Restoring bool   `json:"restoring"`
	// Done and Total count changelog offsets; Rate is offsets per second
	// and ETASeconds the time left at that rate.
	Done       int64   `json:"done"`
	Total      int64   `json:"total"`
	Rate       float64 `json:"rate"`
	ETASeconds float64 `json:"eta_seconds"`
}

// MaxReportPartitions bounds the partitions a stage carries in a report.
const MaxReportPartitions = 256

// ForReport returns a copy of l to send to the control plane: each stage
// keeps its summary, and the partitions this runner holds plus those
// that are not fine (status other than OK, no commit, compacted gap),
// which the runner holding them may not be alive to report; at most
// MaxReportPartitions per stage. Every runner samples every partition,
// so the rest are in the reports of the runners that hold them.
func (l *PipelineLag) ForReport() *PipelineLag {
	if l == nil {
		return nil
	}
	out := *l
	out.Stages = make([]StageLag, len(l.Stages))
	for i, st := range l.Stages {
		var keep []PartitionLag
		for _, p := range st.Partitions {
			if len(keep) < MaxReportPartitions && (p.Owned || p.Status != StatusOK || p.State == StateNoCommit || p.State == StateCompactedGap) {
				keep = append(keep, p)
			}
		}
		st.Partitions = keep
		out.Stages[i] = st
	}
	return &out
}

// WithoutPartitions returns a copy of l with only the stage summaries.
func (l *PipelineLag) WithoutPartitions() *PipelineLag {
	if l == nil {
		return nil
	}
	out := *l
	out.Stages = make([]StageLag, len(l.Stages))
	for i, st := range l.Stages {
		st.Partitions = nil
		out.Stages[i] = st
	}
	return &out
}
