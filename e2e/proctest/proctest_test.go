package proctest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// SaveOutput keeps each process's whole output, one file per start, named
// after the test and the process, in a directory it makes.
func TestSaveOutput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	big := strings.Repeat("line of runner output\n", 1000) // more than the logged tail
	first, err := SaveOutput(dir, "TestCrash/exactly-once", "runner a", big)
	if err != nil {
		t.Fatal(err)
	}
	second, err := SaveOutput(dir, "TestCrash/exactly-once", "runner a", "restarted\n")
	if err != nil {
		t.Fatal(err)
	}
	if first == second {
		t.Fatalf("a second start of the same process overwrote %s", first)
	}
	for path, want := range map[string]string{first: big, second: "restarted\n"} {
		if filepath.Dir(path) != dir {
			t.Errorf("%s is not in %s", path, dir)
		}
		if base := filepath.Base(path); !strings.HasPrefix(base, "TestCrash_exactly-once-runner_a-") || !strings.HasSuffix(base, ".log") {
			t.Errorf("file name %s does not name the test and the process", base)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != want {
			t.Errorf("%s holds %d bytes, want %d", path, len(b), len(want))
		}
	}
}
