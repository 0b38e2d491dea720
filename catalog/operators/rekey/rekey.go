// Package rekey provides the rekey operator, which sets each record's key to
// a value computed from the record (selectKey in Kafka Streams).
package rekey

import (
	"context"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/record"
)

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "description": "An expression computing the record's new key, such as vehicle_id or fleet + \"/\" + vehicle_id. A number or boolean is a constant key.",
  "type": ["string", "number", "boolean"],
  "minLength": 1
}`

// Register adds the rekey operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:    "rekey",
		Summary: "Sets each record's key to a value computed from the record.",
		Description: "The step's value is an expression evaluated on the record; its result becomes the record's " +
			"key, and the value, headers and timestamp are kept. The old key is available to the expression as " +
			"`key`.\n\n" +
			"Because the key decides the partition, a stateful step after `rekey` (a window, a join) gets a " +
			"repartition stage, which the plan shows; set `source.partitioned_by_key` only when producers already " +
			"partition by the new key.\n\n" +
			"A `nil` result (a missing field) is not an error: the record gets a null key, as a Kafka record " +
			"may, and is spread over partitions by the producer instead of grouped. Guard with `filter` first when " +
			"every record needs a key. Strings are used as they are; numbers, booleans, objects and arrays are " +
			"written to Kafka as their JSON text. An expression that fails sends the record to the DLQ with " +
			"reason `expression`.",
		Config:     schema,
		ChangesKey: true,
		Examples: []catalog.Example{
			{
				Title:   "Key by vehicle",
				Summary: "The key becomes the vehicle's id; the value is unchanged.",
				Step:    "vehicle_id",
				Input: []any{
					map[string]any{"vehicle_id": "v1", "speed": 10},
					map[string]any{"speed": 3},
				},
				Output: []any{
					map[string]any{"vehicle_id": "v1", "speed": 10},
					map[string]any{"speed": 3},
				},
			},
			{
				Title:   "Composite key",
				Summary: "Concatenating a missing field is an expression error, so that record goes to the DLQ.",
				Step:    "fleet + \"/\" + vehicle.id",
				Input: []any{
					map[string]any{"fleet": "north", "vehicle": map[string]any{"id": "v1"}},
					map[string]any{"fleet": "north"},
				},
				Output: []any{
					map[string]any{"fleet": "north", "vehicle": map[string]any{"id": "v1"}},
				},
				DLQ: []catalog.Reason{catalog.ReasonExpression},
			},
		},
		New: newRekey,
	})
}

type rekeyer struct {
	key *expression.Program
}

func newRekey(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	p, err := conf.Expr(expression.Any)
	if err != nil {
		return nil, err
	}
	return &rekeyer{key: p}, nil
}

// KeepsValue implements engine.ValueKeeper: rekey changes only the key.
func (k *rekeyer) KeepsValue() {}

// FieldDemand implements engine.FieldDemander: rekey reads the fields of
// its key expression and passes the value on unchanged.
func (k *rekeyer) FieldDemand(after []string, afterAll bool) ([]string, bool) {
	return k.key.FieldsAnd(after, afterAll)
}

// Process sets r's key.
func (k *rekeyer) Process(ctx context.Context, r *record.Record, out catalog.Output) error {
	v, err := k.key.Eval(r)
	if err != nil {
		return err
	}
	r.Key = record.Plain(v)
	return out.Next(ctx, r)
}
