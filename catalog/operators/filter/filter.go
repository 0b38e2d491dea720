// Package filter provides the filter operator, which keeps the records a
// predicate holds for and drops all others.
package filter

import (
	"context"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/record"
)

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "description": "A predicate over the record, such as speed >= 0 && lat != nil. Records for which it is true are kept; records for which it is false or nil are dropped.",
  "type": "string",
  "minLength": 1
}`

// Register adds the filter operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "filter",
		Summary: "Keeps the records a predicate is true for and drops the others.",
		Description: "The step's value is an expression that must evaluate to a boolean. " +
			"Records for which it is `true` pass to the next step; records for which it is `false` are dropped.\n\n" +
			"A predicate that evaluates to `nil` (`flag` when the record has no `flag` field) counts as " +
			"`false`, so the record is dropped, not sent to the DLQ. An expression that fails on a record " +
			"sends the record to the DLQ with reason `expression`: comparing a missing field with `>=`, using a " +
			"missing field as an operand of `&&`, or a predicate that returns a number (`filter must evaluate to a " +
			"bool, got float64 (1.5)`). Guard optional fields " +
			"with `x != nil && x >= 0`. " +
			"Values that are not objects are filtered too: their fields are all missing, but `value`, `key` and " +
			"the other metadata names are available.",
		Config: schema,
		Examples: []catalog.Example{
			{
				Title:   "Drop records without a valid position",
				Summary: "Only records with a non-negative speed and a latitude pass.",
				Step:    "speed >= 0 && lat != nil",
				Input: []any{
					map[string]any{"vehicle_id": "v1", "speed": 12.5, "lat": 52.1},
					map[string]any{"vehicle_id": "v2", "speed": -1, "lat": 52.1},
					map[string]any{"vehicle_id": "v3", "speed": 3},
				},
				Output: []any{
					map[string]any{"vehicle_id": "v1", "speed": 12.5, "lat": 52.1},
				},
			},
			{
				Title:   "A comparison with a missing field is a record error",
				Summary: "Ordering comparisons need a number: a missing or non-numeric speed sends the record to the DLQ.",
				Step:    "speed > 100",
				Input: []any{
					map[string]any{"speed": 120},
					map[string]any{"speed": 50},
					map[string]any{"vehicle_id": "v9"},
					map[string]any{"speed": "fast"},
				},
				Output: []any{
					map[string]any{"speed": 120},
				},
				DLQ: []catalog.Reason{catalog.ReasonExpression, catalog.ReasonExpression},
			},
			{
				Title: "Integer arithmetic",
				Summary: "A JSON number without a fraction is an integer in expressions, so `%` works on it; " +
					"`%` on a number with a fraction fails and sends the record to the DLQ.",
				Step: "order_id % 10 == 0",
				Input: []any{
					map[string]any{"order_id": 1230},
					map[string]any{"order_id": 1231},
					map[string]any{"order_id": 12.5},
				},
				Output: []any{
					map[string]any{"order_id": 1230},
				},
				DLQ: []catalog.Reason{catalog.ReasonExpression},
			},
			{
				Title:   "Guard optional fields",
				Summary: "Checking for nil first drops records without the field instead of rejecting them.",
				Step:    "speed != nil && speed > 100",
				Input: []any{
					map[string]any{"speed": 120},
					map[string]any{"vehicle_id": "v9"},
				},
				Output: []any{
					map[string]any{"speed": 120},
				},
			},
		},
		New: newFilter,
	})
}

type filter struct {
	pred *expression.Program
}

func newFilter(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	pred, err := conf.Expr(expression.Bool)
	if err != nil {
		return nil, err
	}
	return &filter{pred: pred.Named("filter")}, nil
}

// Process passes r on when the predicate holds.
func (f *filter) Process(ctx context.Context, r *record.Record, out catalog.Output) error {
	keep, err := f.pred.Bool(r)
	if err != nil {
		return err
	}
	if !keep {
		return nil
	}
	return out.Next(ctx, r)
}

// KeepsValue implements engine.ValueKeeper: a filter passes records on
// unchanged or drops them.
func (f *filter) KeepsValue() {}

// FieldDemand implements engine.FieldDemander: a filter reads the fields of
// its predicate and passes the value on unchanged, so the steps after it
// need what they needed.
func (f *filter) FieldDemand(after []string, afterAll bool) ([]string, bool) {
	return f.pred.FieldsAnd(after, afterAll)
}

// Transient implements engine.Transient: a filter keeps nothing of a
// record.
func (f *filter) Transient() bool { return true }

// Predicate implements engine.Predicate.
func (f *filter) Predicate() *expression.Program { return f.pred }
