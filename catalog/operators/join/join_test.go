package join_test

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/catalog/operators/join"
	"github.com/sluicehq/sluice/catalog/operatortest"
)

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, operatortest.Registry(t, join.Register), "join")
}

func TestBuild(t *testing.T) {
	reg := operatortest.Registry(t, join.Register)
	if _, err := operatortest.Build(reg, "join", "table: customers\non: customer_id\n"); err == nil {
		t.Error("join without as was accepted")
	}
	op, err := operatortest.Build(reg, "join", "table: customers\non: customer_id\nas: c\n")
	if err != nil {
		t.Fatal(err)
	}
	// Inner join with an empty table drops the record.
	if res := operatortest.Process(context.Background(), op, operatortest.Values(map[string]any{"customer_id": "c1"})); len(res.Out) != 0 || len(res.DLQ) != 0 {
		t.Errorf("inner join on an empty table: out %v, dlq %v", res.Out, res.DLQ)
	}
}
