package engine

import (
	"cmp"
	"context"
	"slices"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/record"
)

// Predicate is implemented by operators that pass a record on unchanged
// when their program is true and drop it otherwise, a nil result counting
// as false (filter). With Projection, it lets the engine run a stage of
// such steps compiled (see compiledStage).
type Predicate interface {
	Predicate() *expression.Program
}

// Projection is implemented by operators that replace an object value by
// a new object whose fields are the results of programs over the old one,
// none nested (map): names[i] is the value of progs[i]. ok is false when
// the operator's mapping is not of that shape.
type Projection interface {
	Projection() (names []string, progs []*expression.Program, ok bool)
}

// compiledStage runs a stage whose steps are all predicates and flat
// projections with expressions that compile to slot functions
// (expression.Program.Slots), on a JSON object input, to a JSON sink: the
// fields the steps read are decoded into numbered slots, the steps are
// evaluated in plain Go, and the output object is written directly from
// the last projection's results. No map, record or VM is involved.
//
// It answers only when it is sure to give the general path's output byte
// for byte: on any value a slot function does not answer for, an input
// that is not a JSON object, a filter result that is not a bool or nil, an
// output over the size limit or one encoding leaves to the library, it
// gives up on the message, and Process runs the general path, which then
// produces the output or the dead letter and its reason. Nothing is
// emitted before it answers.
type compiledStage struct {
	in    *record.FieldSet
	steps []compiledStep
	// out are the members of the output object, sorted by key; nil when
	// no step projects, so the input's bytes are the output.
	out []compiledMember
	// vals holds the slots: vals[0] the input's fields, vals[k] the
	// results of the k-th projection. Reused from message to message
	// (under Stage.scratchBusy), as is sc.
	vals [][]any
	sc   record.Scratch
	// size is the last output's size, to allocate the next one at once.
	size int
}

type compiledStep struct {
	pred expression.SlotFunc   // a predicate, or
	proj []expression.SlotFunc // a projection's fields, into vals[to]
	from int                   // the slots the step reads
	to   int
}

type compiledMember struct {
	key  []byte // `"name":`
	slot int    // in the last projection's results
}

// compileStage returns the compiled form of the stage, or nil when it
// cannot run compiled.
func (s *Stage) compileStage() *compiledStage {
	p, st := s.plan, s.stage
	if s.fullDecode || st.Index != 0 || st.Repartition != nil || len(st.Steps) == 0 ||
		p.Source.Format != pipeline.FormatJSON || p.Sink.Format != pipeline.FormatJSON ||
		p.Source.Key != nil || p.Source.Timestamp != nil {
		return nil
	}
	// Every step must be a predicate or a flat projection; the input's
	// fields are everything read up to the first projection.
	var inNames []string
	projected := false
	for _, step := range st.Steps {
		progs, proj := stepPrograms(step.Operator)
		if progs == nil {
			return nil
		}
		for _, prog := range progs {
			names, all := prog.Fields()
			if all {
				return nil
			}
			if !projected {
				inNames = append(inNames, names...)
			}
		}
		projected = projected || proj
	}
	c := &compiledStage{in: record.NewFieldSet(inNames...)}
	c.vals = [][]any{make([]any, c.in.Len())}
	slot := c.in.Index
	var last []string // the last projection's names
	for _, step := range st.Steps {
		from := len(c.vals) - 1
		pj, projects := step.Operator.(Projection)
		if !projects {
			f := step.Operator.(Predicate).Predicate().Slots(slot)
			if f == nil {
				return nil
			}
			c.steps = append(c.steps, compiledStep{pred: f, from: from})
			continue
		}
		names, progs, ok := pj.Projection()
		if !ok {
			return nil // checked above; kept so that this loop stands alone
		}
		cs := compiledStep{from: from, to: from + 1}
		for _, prog := range progs {
			f := prog.Slots(slot)
			if f == nil {
				return nil
			}
			cs.proj = append(cs.proj, f)
		}
		if len(slices.Compact(slices.Sorted(slices.Values(names)))) != len(names) {
			return nil // a later field of the same name would win
		}
		c.steps = append(c.steps, cs)
		c.vals = append(c.vals, make([]any, len(names)))
		last = names
		slot = func(name string) int { return slices.Index(names, name) }
	}
	if last != nil {
		for i, n := range last {
			c.out = append(c.out, compiledMember{key: record.AppendObjectKey(nil, n), slot: i})
		}
		slices.SortFunc(c.out, func(a, b compiledMember) int {
			// By name, as EncodeJSON orders an object's members.
			return cmp.Compare(last[a.slot], last[b.slot])
		})
	}
	return c
}

// stepPrograms returns the programs a step of a compilable stage reads,
// and whether it projects; nil when the step is neither a predicate nor a
// flat projection.
func stepPrograms(op catalog.Operator) (progs []*expression.Program, projects bool) {
	if _, stateful := op.(catalog.StatefulOperator); stateful {
		return nil, false
	}
	if pj, ok := op.(Projection); ok {
		_, progs, ok := pj.Projection()
		if !ok || len(progs) == 0 {
			return nil, false
		}
		return progs, true
	}
	if pr, ok := op.(Predicate); ok {
		return []*expression.Program{pr.Predicate()}, false
	}
	return nil, false
}

// run processes m compiled. handled is false when it gave up on m, having
// emitted nothing; err is an Emit failure.
func (c *compiledStage) run(ctx context.Context, s *Stage, m Message) (handled bool, err error) {
	in := c.vals[0]
	defer func() {
		// Keep nothing of this message alive: its strings are views of
		// m.Value, which the Kafka client reuses.
		for _, v := range c.vals {
			clear(v)
		}
		c.sc.Reset()
	}()
	if m.Value == nil || !record.DecodeFieldsSlots(m.Value, c.in, in, &c.sc) {
		return false, nil
	}
	for _, st := range c.steps {
		cur := c.vals[st.from]
		if st.pred != nil {
			v, ok := st.pred(cur)
			if !ok {
				return false, nil
			}
			switch keep := v.(type) {
			case bool:
				if !keep {
					return true, nil
				}
			case nil:
				return true, nil // a missing field: false, as Program.Bool says
			default:
				return false, nil // the general path says what is wrong
			}
			continue
		}
		out := c.vals[st.to]
		for i, f := range st.proj {
			v, ok := f(cur)
			if !ok {
				return false, nil
			}
			out[i] = v
		}
	}
	value := m.Value // no projection: the input's bytes, as a keeper stage writes
	if c.out != nil {
		res := c.vals[len(c.vals)-1]
		b := make([]byte, 0, c.size+c.size/8)
		b = append(b, '{')
		for i, mem := range c.out {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, mem.key...)
			var ok bool
			if b, ok = record.AppendObjectValue(b, res[mem.slot]); !ok {
				return false, nil
			}
		}
		value = append(b, '}')
		c.size = len(value)
	}
	if len(value) > s.maxBytes {
		return false, nil
	}
	if err := s.emit(ctx, Message{Topic: s.plan.Sink.Topic, Key: m.Key, Value: value, Headers: m.Headers, Timestamp: m.Timestamp}); err != nil {
		return true, err
	}
	return true, nil
}
