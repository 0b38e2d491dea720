package engine

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/pipeline"
)

// IsTable reports whether topic is a table topic of the stage (a join's
// table side) rather than its stream input.
func (s *Stage) IsTable(topic string) bool {
	_, ok := s.tableLinks[topic]
	return ok
}

// indexTables maps each table topic to the step that reads it.
func (s *Stage) indexTables() error {
	for _, l := range s.statefulLinks {
		top, ok := l.step.Operator.(catalog.TableOperator)
		if !ok {
			continue
		}
		for _, t := range top.Tables() {
			if t == s.stage.Input {
				return fmt.Errorf("step %s reads %s as a table and as its stream", l.step.Name, t)
			}
			if s.tableLinks == nil {
				s.tableLinks = map[string]*link{}
			}
			s.tableLinks[t] = l
		}
	}
	return nil
}

// processTable applies one table record to its step's store in the task of
// the record's partition. A value that does not decode goes to the DLQ
// like any bad input; the table keeps its previous value for the key.
func (s *Stage) processTable(ctx context.Context, m Message) error {
	l := s.tableLinks[m.Topic]
	t, err := s.task(m.Partition)
	if err != nil {
		return err
	}
	var v any
	if len(m.Value) > 0 {
		if v, err = DecodeValue(m.Value, pipeline.FormatJSON); err != nil {
			return s.emit(ctx, s.DeadLetter(m, catalog.Reject(catalog.ReasonDecode, err)))
		}
	}
	op := l.step.Operator.(catalog.TableOperator)
	err = op.UpdateTable(ctx, stepTask{t: t, store: t.stores[l.step.Name]}, m.Topic, m.Key, v)
	if err != nil {
		return s.emit(ctx, s.DeadLetter(m, &stepError{step: l.step.Name, err: err}))
	}
	return nil
}
