package aggregate_test

import (
	"testing"

	"github.com/sluicehq/sluice/catalog/operators/aggregate"
	"github.com/sluicehq/sluice/catalog/operatortest"
)

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, operatortest.Registry(t, aggregate.Register), "aggregate")
}
