package operatordocs_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/operatordocs"
)

// Check is what make verify relies on to fail on stale docs, and Write is
// what make docs runs; together they must round-trip.
func TestWriteThenCheck(t *testing.T) {
	dir := t.TempDir()
	files := generate(t)

	problems, err := operatordocs.Check(dir, files)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != len(files) {
		t.Fatalf("empty dir: %d problems, want %d missing files: %v", len(problems), len(files), problems)
	}
	for _, p := range problems {
		if p.Kind != "missing" {
			t.Errorf("empty dir: %v, want missing", p)
		}
	}

	if _, err := operatordocs.Write(dir, files); err != nil {
		t.Fatal(err)
	}
	if problems, err := operatordocs.Check(dir, files); err != nil || len(problems) != 0 {
		t.Fatalf("after Write: problems %v, err %v", problems, err)
	}

	// Unchanged files are not rewritten, so make docs does not touch mtimes.
	keep := filepath.Join(dir, "operators", "keep.md")
	old := time.Unix(1_000_000_000, 0)
	if err := os.Chtimes(keep, old, old); err != nil {
		t.Fatal(err)
	}

	// A hand edit, a deleted file and a page for a removed operator.
	tally := filepath.Join(dir, "operators", "tally.md")
	if err := os.WriteFile(tally, []byte("edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, filepath.FromSlash(operatordocs.SchemaPath))); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(dir, "operators", "gone.md")
	if err := os.WriteFile(gone, []byte("# gone\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Files that are not operator pages are left alone.
	notes := filepath.Join(dir, "operators", "notes.txt")
	if err := os.WriteFile(notes, []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	want := []operatordocs.Problem{
		{Path: "operators/gone.md", Kind: "obsolete"},
		{Path: "operators/tally.md", Kind: "stale"},
		{Path: operatordocs.SchemaPath, Kind: "missing"},
	}
	problems, err = operatordocs.Check(dir, files)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(problems, want) {
		t.Fatalf("Check = %v, want %v", problems, want)
	}
	changed, err := operatordocs.Write(dir, files)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(changed, want) {
		t.Errorf("Write changed %v, want %v", changed, want)
	}
	if problems, err := operatordocs.Check(dir, files); err != nil || len(problems) != 0 {
		t.Errorf("after second Write: problems %v, err %v", problems, err)
	}
	if _, err := os.Stat(gone); !os.IsNotExist(err) {
		t.Errorf("obsolete page still there: %v", err)
	}
	if _, err := os.Stat(notes); err != nil {
		t.Errorf("Write removed a file it does not own: %v", err)
	}
	if fi, err := os.Stat(keep); err != nil || !fi.ModTime().Equal(old) {
		t.Errorf("unchanged file was rewritten")
	}
}
