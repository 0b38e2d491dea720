package pipeline

import (
	"os"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"
)

// allocated returns the bytes the Go heap has allocated so far.
func allocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// Deep YAML used to cost gigabytes: goccy/go-yaml, which positions syntax
// errors, re-parses the file. The limits are checked before any parser
// runs, so each attack (80 KB, tens of thousands of levels, in
// testdata/attacks) must fail fast, with a positioned error, allocating a
// few MiB at most.
func TestAttacksAreCheap(t *testing.T) {
	files, err := filepath.Glob("testdata/attacks/*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("attack files: %v, %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			before, start := allocated(), time.Now()
			_, _, err = ParseYAML(f, data)
			bytes, took := allocated()-before, time.Since(start)
			if err == nil || !strings.Contains(err.Error(), "nested deeper than 100 levels") {
				t.Fatalf("got %v, want the depth limit", err)
			}
			if !strings.HasPrefix(err.Error(), f+":") || strings.Contains(err.Error(), ":0:0:") {
				t.Errorf("error is not positioned: %v", err)
			}
			if bytes > 8<<20 || took > 2*time.Second {
				t.Errorf("parsing %s allocated %d bytes in %v; want under 8 MiB and 2s", f, bytes, took)
			}
		})
	}
}

func TestSizeLimit(t *testing.T) {
	data := []byte("a: b\nc: |\n" + strings.Repeat("  0123456789abcdef\n", MaxFileBytes/19+1))
	_, _, err := ParseYAML("big.yaml", data)
	if err == nil || !strings.Contains(err.Error(), "over the limit of 1048576 (1 MiB)") {
		t.Fatalf("got %v, want the size limit", err)
	}
	line, _ := offsetPos(data, MaxFileBytes)
	if want := "big.yaml:" + strconv.Itoa(line) + ":"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v, want it at line %d, where the limit is passed", err, line)
	}
	if _, _, err := ParseYAML("ok.yaml", data[:MaxFileBytes-100]); err != nil && strings.Contains(err.Error(), "limit") {
		t.Errorf("a file under the limit is refused: %v", err)
	}
}

// The depth scan must not refuse what people write: brackets in
// expressions and quoted strings, comments, block scalars with deeply
// indented text, and the nesting real pipelines have.
func TestDepthScanAcceptsRealFiles(t *testing.T) {
	docs := []string{
		"steps:\n  - filter: items[0][1][2] > 1 && x == \"[[[[[[\"\n  - set: {a: '{{{{{{{{', b: \"]]]]\"}\n",
		"a: 1 # [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n",
		"script: |\n" + strings.Repeat(" ", 4) + strings.Repeat("{", 300) + "\n" + strings.Repeat("  x\n", 10) + "b: 2\n",
		"s: 'it''s [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['\n",
		"s: \"a \\\" [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"\n",
		"a:\n" + strings.Repeat("  - b: 1\n    c: [1, 2, {d: [3]}]\n", 500),
		"m: >-\n  folded [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n",
	}
	files, _ := filepath.Glob("../../examples/*/*.yaml")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	for _, d := range docs {
		if line, col, deep := tooDeep([]byte(d), MaxDepth); deep {
			t.Errorf("refused at %d:%d:\n%s", line, col, d)
		}
	}
	// And it does see nesting that is really there.
	for _, d := range []string{
		strings.Repeat("[", 101),
		"a: " + strings.Repeat("{b: ", 101),
		strings.Repeat("- ", 101) + "x",
		"a: [\n" + strings.Repeat("  [\n", 101),
	} {
		if _, _, deep := tooDeep([]byte(d), MaxDepth); !deep {
			t.Errorf("not refused: %.40s...", d)
		}
	}
}
