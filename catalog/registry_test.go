package catalog

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/internal/record"
)

func nopOperator(*Build, Config) (Operator, error) {
	return OperatorFunc(func(context.Context, *record.Record, Output) error { return nil }), nil
}

// TestReplace checks that Replace swaps an operator in one registry only
// (clones made before keep theirs) and refuses what Register refuses.
func TestReplace(t *testing.T) {
	r := NewRegistry()
	spec := Spec{Name: "op", Summary: "An operator.", Config: `{"type": "object"}`, New: nopOperator}
	if err := r.Replace(spec); err == nil {
		t.Error("Replace of an operator that is not registered: no error")
	}
	if err := r.Register(spec); err != nil {
		t.Fatal(err)
	}
	before := r.Clone()
	replaced := spec
	replaced.Summary = "Replaced."
	replaced.Config = `{"type": "string"}`
	if err := r.Replace(replaced); err != nil {
		t.Fatal(err)
	}
	if s, _ := r.Lookup("op"); s.Summary != "Replaced." || s.Validate("x") != nil || s.Validate(map[string]any{}) == nil {
		t.Errorf("after Replace: %q, the new schema not in use", s.Summary)
	}
	if s, _ := before.Lookup("op"); s.Summary != "An operator." || s.Validate(map[string]any{}) != nil {
		t.Errorf("a clone made before Replace changed: %q", s.Summary)
	}
	bad := spec
	bad.New = nil
	if err := r.Replace(bad); err == nil {
		t.Error("Replace without a constructor: no error")
	}
	bad = spec
	bad.Config = "{"
	if err := r.Replace(bad); err == nil {
		t.Error("Replace with a broken schema: no error")
	}
}
