// Package pipeline compiles pipeline files into immutable plans.
//
// Compile parses the YAML keeping the line and column of every node,
// validates it against JSON Schemas generated from the catalog, builds each
// step's operator (which compiles and type-checks its expressions once),
// inserts a repartition stage wherever a stateful step needs a key its input
// is not partitioned by, and fingerprints every stateful step's state so that
// two revisions can be checked for compatibility. Every error is reported as
// file:line:col with a hint where one is known.
package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"strings"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/diag"
	"github.com/sluicehq/sluice/internal/expression"
)

// Delivery guarantees.
const (
	ExactlyOnce = "exactly-once"
	AtLeastOnce = "at-least-once"
	FormatJSON  = "json"
	FormatRaw   = "raw"
	StoreMemory = "memory"
	StoreDisk   = "disk"
)

// Plan is a compiled pipeline: immutable, shared by every task that runs it.
type Plan struct {
	Name     string
	File     string
	Source   Source
	Steps    []*Step // every step in order, across stages
	Stages   []*Stage
	Sink     Sink
	DLQ      string
	Delivery string
	// StateStore is where stateful steps keep state: StoreMemory or
	// StoreDisk.
	StateStore string
	// Standbys is how many other runners keep a warm copy of each task's
	// state.
	Standbys int
}

// Source says where records come from and how to decode them.
type Source struct {
	Topic            string
	Format           string
	Key              *expression.Program // nil: the Kafka key as it is
	Timestamp        *expression.Program // nil: the Kafka timestamp
	PartitionedByKey bool
}

// Sink says where results go.
type Sink struct {
	Topic  string
	Format string
}

// Stage is a chain of operators over one input topic. The first stage reads
// the source topic; each later one reads a repartition topic that the stage
// before it writes.
type Stage struct {
	Index int
	Input string
	Steps []*Step
	// Repartition is set when the stage ends by writing to the next stage's
	// input topic instead of the sink.
	Repartition *Repartition
	// Tables are the side topics the stage's steps read besides Input (a
	// join's table or other stream), partition by partition with it.
	Tables []string
}

// Repartition describes the hand-over between two stages.
type Repartition struct {
	Topic string
	// Key computes the key records are partitioned by; nil keeps the
	// current key (it changed earlier, e.g. by rekey).
	Key *expression.Program
	// For names the stateful step that needs it.
	For string
}

// Step is one compiled step.
type Step struct {
	Name     string
	Op       string
	Pos      diag.Pos
	Operator catalog.Operator
	// KeyChange describes how the step changes the record key, if it does.
	KeyChange string
	// Topics are sink topics the step writes to directly (route).
	Topics []string
	// Stateful steps carry a fingerprint of their key and state shape.
	Stateful    bool
	Fingerprint string
	// GroupKey is the grouping key of a stateful step that sets one.
	GroupKey *expression.Program
	// Reset says the step may start from empty state when its key or state
	// shape changed since the previous revision (`reset: true`).
	Reset bool
}

// Topics returns every topic the pipeline produces to: the sink, route
// targets, repartition topics and the DLQ.
func (p *Plan) Topics() []string {
	seen := map[string]bool{}
	var out []string
	add := func(t string) {
		if t != "" && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	add(p.Sink.Topic)
	for _, s := range p.Steps {
		for _, t := range s.Topics {
			add(t)
		}
	}
	for _, st := range p.Stages {
		if st.Repartition != nil {
			add(st.Repartition.Topic)
		}
	}
	add(p.DLQ)
	return out
}

// Describe renders the plan for people: stages, steps, key changes and
// repartitions, the way `runner plan` prints it.
func (p *Plan) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pipeline %s (%s, %s)\n", p.Name, p.Delivery, p.File)
	for _, st := range p.Stages {
		fmt.Fprintf(&b, "  stage %d: read %s\n", st.Index, st.Input)
		for _, t := range st.Tables {
			fmt.Fprintf(&b, "    side input %s (partition by partition with %s)\n", t, st.Input)
		}
		if st.Index == 0 && p.Source.Key != nil {
			part := "repartition needed before stateful steps"
			if p.Source.PartitionedByKey {
				part = "topic already partitioned by it"
			}
			fmt.Fprintf(&b, "    key := %s (%s)\n", p.Source.Key.Source(), part)
		}
		for _, s := range st.Steps {
			fmt.Fprintf(&b, "    %s (%s)", s.Name, s.Op)
			if s.KeyChange != "" {
				fmt.Fprintf(&b, " changes key: %s", s.KeyChange)
			}
			if s.Stateful {
				fmt.Fprintf(&b, " stateful, state %s", s.Fingerprint[:12])
			}
			for _, t := range s.Topics {
				fmt.Fprintf(&b, " -> %s", t)
			}
			b.WriteByte('\n')
		}
		if r := st.Repartition; r != nil {
			key := "current key"
			if r.Key != nil {
				key = r.Key.Source()
			}
			fmt.Fprintf(&b, "    repartition by %s -> %s (for %s)\n", key, r.Topic, r.For)
		} else {
			fmt.Fprintf(&b, "    write %s\n", p.Sink.Topic)
		}
	}
	fmt.Fprintf(&b, "  errors -> %s\n", p.DLQ)
	return b.String()
}

// StateChange is a stateful step whose existing state the new revision could
// not read.
type StateChange struct {
	Step   string
	Reason string
}

// StateChanges compares the state of two revisions of a pipeline: a
// stateful step whose fingerprint changed or that was removed loses its
// state when the new revision rolls out.
func StateChanges(prev, next *Plan) []StateChange {
	nextSteps := map[string]*Step{}
	for _, s := range next.Steps {
		if s.Stateful {
			nextSteps[s.Name] = s
		}
	}
	var out []StateChange
	for _, s := range prev.Steps {
		if !s.Stateful {
			continue
		}
		n, ok := nextSteps[s.Name]
		switch {
		case !ok:
			out = append(out, StateChange{Step: s.Name, Reason: "step removed; its state would be dropped"})
		case n.Op != s.Op:
			out = append(out, StateChange{Step: s.Name, Reason: fmt.Sprintf("operator changed from %s to %s", s.Op, n.Op)})
		case n.Fingerprint != s.Fingerprint:
			out = append(out, StateChange{Step: s.Name, Reason: "key or state shape changed"})
		}
	}
	return out
}

// CheckState checks that next can take over prev's state. A stateful step
// whose key or state shape changed (or whose operator changed) is an error
// at that step unless it says `reset: true`: its state would silently be
// unreadable. The result lists the stores the rollout resets: those of
// steps with reset, and of stateful steps that next removes.
func CheckState(prev, next *Plan) ([]StateChange, error) {
	steps := map[string]*Step{}
	for _, s := range next.Steps {
		steps[s.Name] = s
	}
	var resets []StateChange
	var errs diag.List
	for _, c := range StateChanges(prev, next) {
		s, ok := steps[c.Step]
		switch {
		case !ok || s.Reset:
			resets = append(resets, c)
		default:
			errs.Add(s.Pos, diag.Errorf(s.Pos,
				"step %s: %s since the running revision, so its state cannot be read by this one; add `reset: true` to the step to start it from empty state, or undo the change",
				c.Step, c.Reason))
		}
	}
	return resets, errs.Err()
}

// Compiler compiles pipeline files against one catalog.
type Compiler struct {
	Registry *catalog.Registry
	// Files holds the side files steps may reference, rooted at the
	// directory that holds the pipeline file.
	Files fs.FS
}

func fingerprint(op, key string, shape map[string]any) string {
	h := sha256.New()
	fmt.Fprintf(h, "op=%s\nkey=%s\n", op, key)
	b, _ := jsonCanonical(shape)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}
