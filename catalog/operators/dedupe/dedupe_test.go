package dedupe_test

import (
	"testing"

	"github.com/sluicehq/sluice/catalog/operators/dedupe"
	"github.com/sluicehq/sluice/catalog/operatortest"
)

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, operatortest.Registry(t, dedupe.Register), "dedupe")
}
