package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/internal/operatordocs"
)

// Every operator that ships gets a page with its configuration and examples,
// a row in the index and a branch in the schema: an operator added to all
// without docs would otherwise go unnoticed until a user looks for it.
func TestEveryOperatorDocumented(t *testing.T) {
	reg := all.New()
	specs := reg.Specs()
	if len(specs) == 0 {
		t.Fatal("all.New() registered no operators")
	}
	files, err := operatordocs.Generate(reg)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(specs) + 2; len(files) != want {
		t.Errorf("generated %d files, want %d (a page per operator, the index, the schema)", len(files), want)
	}
	index := string(files[operatordocs.IndexPath])
	if n := strings.Count(index, "\n| ["); n != len(specs) {
		t.Errorf("index has %d operator rows, want %d", n, len(specs))
	}
	var schema struct {
		Defs struct {
			Step struct {
				OneOf []struct {
					Title string `json:"title"`
				} `json:"oneOf"`
			} `json:"step"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(files[operatordocs.SchemaPath], &schema); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	inSchema := map[string]bool{}
	for _, br := range schema.Defs.Step.OneOf {
		inSchema[br.Title] = true
	}

	for _, s := range specs {
		t.Run(s.Name, func(t *testing.T) {
			page := string(files[operatordocs.OperatorPath(s.Name)])
			if page == "" {
				t.Fatalf("no page %s", operatordocs.OperatorPath(s.Name))
			}
			if !strings.Contains(page, "\n# "+s.Name+"\n") || !strings.Contains(page, "\n## Configuration\n") {
				t.Errorf("page lacks its title or Configuration section:\n%s", page)
			}
			if (s.State != nil) != strings.Contains(page, "\n## State\n") {
				t.Errorf("State section present = %v, want %v", !(s.State != nil), s.State != nil)
			}
			for _, ex := range s.Examples {
				if !strings.Contains(page, "\n### "+strings.TrimSpace(ex.Title)+"\n") {
					t.Errorf("page lacks example %q", ex.Title)
				}
			}
			if strings.Count(page, "```yaml\n- "+s.Name+":") != len(s.Examples) {
				t.Errorf("page shows %d example steps, want %d", strings.Count(page, "```yaml\n- "+s.Name+":"), len(s.Examples))
			}
			state := "stateless"
			if s.State != nil {
				state = "stateful"
			}
			row := fmt.Sprintf("| [%s](%s.md) |", s.Name, s.Name)
			line := ""
			for _, l := range strings.Split(index, "\n") {
				if strings.HasPrefix(l, row) {
					line = l
				}
			}
			if line == "" || !strings.HasSuffix(line, "| "+state+" |") {
				t.Errorf("index row %q, want one starting %q and ending %q", line, row, state)
			}
			if !inSchema[s.Name] {
				t.Errorf("schema has no step branch titled %q", s.Name)
			}
		})
	}
}

// run with -check fails on a fresh directory, passes after a write, and
// fails again, naming the file, after a hand edit.
func TestRunCheck(t *testing.T) {
	ctx := context.Background()
	reg := all.New()
	dir := t.TempDir()
	var out bytes.Buffer

	if err := run(ctx, config{out: dir, check: true}, reg, &out); err == nil {
		t.Fatalf("check of an empty dir passed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "missing: "+dir+"/operators/README.md") {
		t.Errorf("check output does not list the missing index:\n%s", out.String())
	}

	out.Reset()
	if err := run(ctx, config{out: dir}, reg, &out); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(ctx, config{out: dir, check: true}, reg, &out); err != nil {
		t.Fatalf("check after write: %v\n%s", err, out.String())
	}

	page := filepath.Join(dir, "operators", "filter.md")
	if err := os.WriteFile(page, []byte("# filter\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(ctx, config{out: dir, check: true}, reg, &out); err == nil || !strings.Contains(out.String(), "stale: "+dir+"/operators/filter.md") {
		t.Errorf("check after an edit: err %v, output:\n%s", err, out.String())
	}
}
