package terraform

import (
	"testing"

	tfjson "github.com/hashicorp/terraform-json"
)

// A replacement counts as one add and one destroy, as terraform says;
// no-ops and data sources are not changes.
func TestSummarize(t *testing.T) {
	rc := func(addr string, mode tfjson.ResourceMode, actions ...tfjson.Action) *tfjson.ResourceChange {
		return &tfjson.ResourceChange{Address: addr, Mode: mode, Change: &tfjson.Change{Actions: actions}}
	}
	p := &tfjson.Plan{ResourceChanges: []*tfjson.ResourceChange{
		rc("a.b[1]", tfjson.ManagedResourceMode, tfjson.ActionCreate),
		rc("a.b[0]", tfjson.ManagedResourceMode, tfjson.ActionDelete, tfjson.ActionCreate),
		rc("a.c", tfjson.ManagedResourceMode, tfjson.ActionUpdate),
		rc("a.d", tfjson.ManagedResourceMode, tfjson.ActionDelete),
		rc("a.e", tfjson.ManagedResourceMode, tfjson.ActionNoop),
		rc("data.x", tfjson.DataResourceMode, tfjson.ActionRead),
	}}
	s := Summarize(p)
	if s.Text != "2 to add, 1 to change, 2 to destroy" || s.Steps() != 5 {
		t.Errorf("summary %q, %d steps", s.Text, s.Steps())
	}
	want := []Change{{"a.b[0]", "replace"}, {"a.b[1]", "create"}, {"a.c", "update"}, {"a.d", "delete"}}
	if len(s.Changes) != len(want) {
		t.Fatalf("changes %v, want %v", s.Changes, want)
	}
	for i := range want {
		if s.Changes[i] != want[i] {
			t.Errorf("change %d: %v, want %v", i, s.Changes[i], want[i])
		}
	}
}
