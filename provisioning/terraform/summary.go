package terraform

import (
	"fmt"
	"slices"

	tfjson "github.com/hashicorp/terraform-json"
)

// Change is one resource a plan changes.
type Change struct {
	Address string `json:"address"`
	// Action is create, update, delete or replace.
	Action string `json:"action"`
}

// Summary is what a reviewer needs to know about a plan.
type Summary struct {
	Add     int      `json:"add"`
	Change  int      `json:"change"`
	Destroy int      `json:"destroy"`
	Changes []Change `json:"changes"`
	// Text is terraform's own line: "2 to add, 0 to change, 0 to destroy".
	Text string `json:"text"`
}

// Steps is how many resource operations applying the plan takes (a
// replacement is two), the total of an apply's progress.
func (s Summary) Steps() int { return s.Add + s.Change + s.Destroy }

// Summarize counts a plan's resource changes as terraform does: a
// replacement is one add and one destroy. Data sources and no-ops are left
// out.
func Summarize(p *tfjson.Plan) Summary {
	s := Summary{Changes: []Change{}}
	for _, rc := range p.ResourceChanges {
		if rc.Mode != tfjson.ManagedResourceMode || rc.Change == nil {
			continue
		}
		a := rc.Change.Actions
		var action string
		switch {
		case a.Replace():
			s.Add++
			s.Destroy++
			action = "replace"
		case a.Create():
			s.Add++
			action = "create"
		case a.Update():
			s.Change++
			action = "update"
		case a.Delete():
			s.Destroy++
			action = "delete"
		default:
			continue
		}
		s.Changes = append(s.Changes, Change{Address: rc.Address, Action: action})
	}
	slices.SortFunc(s.Changes, func(a, b Change) int {
		if a.Address < b.Address {
			return -1
		}
		if a.Address > b.Address {
			return 1
		}
		return 0
	})
	s.Text = fmt.Sprintf("%d to add, %d to change, %d to destroy", s.Add, s.Change, s.Destroy)
	return s
}
