package pipeline_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/internal/pipeline"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestCompileErrorsGolden compiles each broken pipeline under
// testdata/errors and compares the full error text, positions included, with
// its .golden file. These are the messages users see on push and in the IDE,
// so a change to any of them should be a deliberate one.
func TestCompileErrorsGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("found %d error cases, want at least 20", len(files))
	}
	reg := all.New()
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c := &pipeline.Compiler{Registry: reg, Files: os.DirFS("testdata/errors")}
			_, cerr := c.Compile(filepath.ToSlash(f), data)
			if cerr == nil {
				t.Fatalf("%s compiled; every file under testdata/errors must fail", f)
			}
			got := cerr.Error() + "\n"
			// Every line is file:line:col: message.
			for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
				if !strings.HasPrefix(line, filepath.ToSlash(f)+":") || strings.Count(line, ":") < 3 {
					t.Errorf("error line is not file:line:col: message: %q", line)
				}
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/pipeline -run Golden -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("error text changed\n got: %s\nwant: %s", got, want)
			}
		})
	}
}
