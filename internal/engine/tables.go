package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/record"
)

// IsTable reports whether topic is a side input of the stage (a join's
// table or other stream) rather than its stream input.
func (s *Stage) IsTable(topic string) bool {
	_, ok := s.tableLinks[topic]
	return ok
}

// indexTables maps each table topic to the step that reads it.
func (s *Stage) indexTables() error {
	for _, l := range s.statefulLinks {
		top, ok := l.step.Operator.(catalog.SideInputOperator)
		if !ok {
			continue
		}
		for _, t := range top.SideInputs() {
			if t == s.stage.Input {
				return fmt.Errorf("step %s reads %s as a table and as its stream", l.step.Name, t)
			}
			if s.tableLinks == nil {
				s.tableLinks = map[string]*link{}
			}
			s.tableLinks[t] = l
		}
		if tin, ok := l.step.Operator.(catalog.TableInputOperator); ok {
			for _, t := range tin.Tables() {
				if s.rowTables == nil {
					s.rowTables = map[string]bool{}
				}
				s.rowTables[t] = true
			}
		}
	}
	return nil
}

// processTable runs one side-input record through its step in the task of
// the record's partition; what the step emits continues down the chain. A
// value that does not decode, or a record the step rejects, goes to the DLQ
// like any bad input.
func (s *Stage) processTable(ctx context.Context, m Message) error {
	l := s.tableLinks[m.Topic]
	t, err := s.task(m.Partition)
	if err != nil {
		return err
	}
	r := &record.Record{Headers: m.Headers, Timestamp: m.Timestamp, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
	if m.Key != nil {
		r.SetRawKey(m.Key)
	}
	if len(m.Value) > 0 {
		if r.Value, err = DecodeValue(m.Value, pipeline.FormatJSON); err != nil {
			return s.emit(ctx, s.DeadLetter(m, catalog.Reject(catalog.ReasonDecode, err)))
		}
	}
	// The other stream of a stream-stream join moves the task's stream
	// time as the stream does; a table's rows do not: their timestamps
	// say when a row changed, not how far the stream's event time is, and
	// would otherwise close the windows of later steps early.
	if !s.rowTables[m.Topic] && r.Timestamp.After(t.streamTime) {
		t.streamTime = r.Timestamp
	}
	ctx = context.WithValue(ctx, taskKey{}, t)
	op := l.step.Operator.(catalog.SideInputOperator)
	err = op.ProcessSide(ctx, t.step(l), r, l.next)
	if err == nil {
		return nil
	}
	var emitErr *EmitError
	if errors.As(err, &emitErr) {
		return emitErr.Err
	}
	var se *stepError
	if !errors.As(err, &se) {
		err = &stepError{step: l.step.Name, err: err}
	}
	return s.emit(ctx, s.DeadLetter(m, err))
}
