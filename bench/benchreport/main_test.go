package main

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sampleOutput is captured `go test -bench -benchmem -count 3` output for
// two packages on a 2-CPU machine (names carry the -2 suffix), with custom
// metrics, a benchmark that logs, and lines that are not results.
const sampleOutput = `?   	github.com/sluicehq/sluice/cmd/runner	[no test files]
goos: linux
goarch: amd64
pkg: github.com/sluicehq/sluice/internal/record
cpu: AMD EPYC
BenchmarkJSONLibraries/encoding_json/decode-2         	  350748	      3132 ns/op	  68.33 MB/s	    1168 B/op	      39 allocs/op
BenchmarkJSONLibraries/encoding_json/decode-2         	  360411	      3158 ns/op	  67.75 MB/s	    1168 B/op	      39 allocs/op
BenchmarkJSONLibraries/encoding_json/decode-2         	  380958	      3107 ns/op	  68.87 MB/s	    1168 B/op	      39 allocs/op
BenchmarkJSONLibraries/goccy_go-json/roundtrip-2      	  477764	      2504 ns/op	  85.45 MB/s	    1217 B/op	      34 allocs/op
BenchmarkJSONLibraries/goccy_go-json/roundtrip-2      	  467186	      2507 ns/op	  85.36 MB/s	    1217 B/op	      34 allocs/op
BenchmarkJSONLibraries/goccy_go-json/roundtrip-2      	  488206	      2474 ns/op	  86.51 MB/s	    1217 B/op	      34 allocs/op
PASS
ok  	github.com/sluicehq/sluice/internal/record	12.420s
goos: linux
goarch: amd64
pkg: github.com/sluicehq/sluice/internal/driver
cpu: AMD EPYC
BenchmarkEngineRecord-2        	  200000	      6000 ns/op	    166666 records/s	    1500 B/op	      40 allocs/op
BenchmarkEngineRecord-2        	  200000	      6200 ns/op	    161290 records/s	    1500 B/op	      40 allocs/op
BenchmarkEngineRecord-2        	  200000	      5900 ns/op	    169491 records/s	    1500 B/op	      40 allocs/op
BenchmarkHandWrittenRecord-2   	  300000	      4000 ns/op	    1200 B/op	      30 allocs/op
    driver_test.go:42: warm-up done
BenchmarkHandWrittenRecord-2   	  300000	      4100 ns/op	    1200 B/op	      30 allocs/op
BenchmarkHandWrittenRecord-2   	  300000	      3900 ns/op	    1200 B/op	      30 allocs/op
BenchmarkSize/size-1024-2      	     100	  10000000 ns/op	        12.50 ms/compile
--- FAIL: BenchmarkBroken-2
    driver_test.go:99: boom
BenchmarkNotAResult-2 says hello
FAIL
exit status 1
FAIL	github.com/sluicehq/sluice/internal/driver	9.100s
`

func parsedSample(t *testing.T) []*packageResult {
	t.Helper()
	p := parseOutput(strings.NewReader(sampleOutput), 2)
	if p.GOOS != "linux" || p.GOARCH != "amd64" || p.CPU != "AMD EPYC" {
		t.Fatalf("header: got %q %q %q", p.GOOS, p.GOARCH, p.CPU)
	}
	return aggregate(p, env{GoVersion: "go1.26.8", GOOS: p.GOOS, GOARCH: p.GOARCH, CPU: p.CPU, GOMAXPROCS: 2, Date: "2026-01-02T03:04:05Z"})
}

func TestParseOutput(t *testing.T) {
	res := parsedSample(t)
	if len(res) != 2 {
		t.Fatalf("got %d packages, want 2", len(res))
	}
	rec, drv := res[0], res[1]
	if rec.Package != "github.com/sluicehq/sluice/internal/record" || drv.Package != "github.com/sluicehq/sluice/internal/driver" {
		t.Fatalf("packages: %q, %q", rec.Package, drv.Package)
	}

	wantOrder := []string{"BenchmarkJSONLibraries/encoding_json/decode", "BenchmarkJSONLibraries/goccy_go-json/roundtrip"}
	if strings.Join(rec.order, ",") != strings.Join(wantOrder, ",") {
		t.Errorf("record order: %v, want %v", rec.order, wantOrder)
	}
	dec := rec.Benchmarks["BenchmarkJSONLibraries/encoding_json/decode"]
	if dec.Runs != 3 {
		t.Errorf("runs: %d, want 3", dec.Runs)
	}
	checkStat(t, "decode ns/op", dec.Metrics["ns/op"], stat{Median: 3132, Min: 3107, Max: 3158})
	checkStat(t, "decode MB/s", dec.Metrics["MB/s"], stat{Median: 68.33, Min: 67.75, Max: 68.87})
	checkStat(t, "decode B/op", dec.Metrics["B/op"], stat{Median: 1168, Min: 1168, Max: 1168})
	checkStat(t, "decode allocs/op", dec.Metrics["allocs/op"], stat{Median: 39, Min: 39, Max: 39})
	if len(dec.Metrics) != 4 {
		t.Errorf("decode metrics: %v", dec.Metrics)
	}

	eng := drv.Benchmarks["BenchmarkEngineRecord"]
	checkStat(t, "engine ns/op", eng.Metrics["ns/op"], stat{Median: 6000, Min: 5900, Max: 6200})
	checkStat(t, "engine records/s", eng.Metrics["records/s"], stat{Median: 166666, Min: 161290, Max: 169491})
	// The log line between runs must not lose a run.
	hand := drv.Benchmarks["BenchmarkHandWrittenRecord"]
	if hand.Runs != 3 {
		t.Errorf("hand-written runs: %d, want 3", hand.Runs)
	}
	checkStat(t, "hand ns/op", hand.Metrics["ns/op"], stat{Median: 4000, Min: 3900, Max: 4100})
	// Only the GOMAXPROCS suffix is stripped, not "-1024" inside the name.
	size, ok := drv.Benchmarks["BenchmarkSize/size-1024"]
	if !ok {
		t.Fatalf("BenchmarkSize/size-1024 missing; have %v", drv.order)
	}
	checkStat(t, "size ms/compile", size.Metrics["ms/compile"], stat{Median: 12.5, Min: 12.5, Max: 12.5})
	if _, ok := drv.Benchmarks["BenchmarkBroken"]; ok {
		t.Error("a failed benchmark without a result line was recorded")
	}
	if len(drv.Benchmarks) != 3 {
		t.Errorf("driver benchmarks: %v", drv.order)
	}
}

func TestParseOutputNoSuffix(t *testing.T) {
	// With GOMAXPROCS=1 go test adds no suffix, so nothing is stripped.
	p := parseOutput(strings.NewReader("pkg: example.com/p\nBenchmarkA/n-2 \t 10\t 5 ns/op\n"), 1)
	if _, ok := p.Packages[0].Runs["BenchmarkA/n-2"]; !ok {
		t.Errorf("got %v", p.Packages[0].Order)
	}
}

func TestParseBenchLine(t *testing.T) {
	for _, line := range []string{
		"BenchmarkX-2 says hello",
		"BenchmarkX-2\t100\t12 ns/op\t7", // odd number of fields
		"BenchmarkX-2\tmany\t12 ns/op",
		"--- BENCH: BenchmarkX-2",
		"ok  \tgithub.com/x\t1.2s",
	} {
		if _, _, ok := parseBenchLine(line); ok {
			t.Errorf("parseBenchLine(%q) accepted a non-result line", line)
		}
	}
}

func TestSummarize(t *testing.T) {
	checkStat(t, "even", summarize([]float64{4, 1, 3, 2}), stat{Median: 2.5, Min: 1, Max: 4})
	checkStat(t, "one", summarize([]float64{7}), stat{Median: 7, Min: 7, Max: 7})
}

func TestEvaluateTargets(t *testing.T) {
	targets, err := parseTargets([]byte(`{"targets": [
		{"id": "engine-vs-hand", "description": "d", "kind": "ratio",
		 "numerator": "github.com/sluicehq/sluice/internal/driver.BenchmarkEngineRecord",
		 "denominator": "github.com/sluicehq/sluice/internal/driver.BenchmarkHandWrittenRecord",
		 "metric": "ns/op", "max": 1.6},
		{"id": "too-slow", "description": "d", "kind": "ratio",
		 "numerator": "github.com/sluicehq/sluice/internal/driver.BenchmarkEngineRecord",
		 "denominator": "github.com/sluicehq/sluice/internal/driver.BenchmarkHandWrittenRecord",
		 "max": 1.4},
		{"id": "decode-max", "description": "d", "kind": "max",
		 "numerator": "github.com/sluicehq/sluice/internal/record.BenchmarkJSONLibraries/encoding_json/decode",
		 "metric": "allocs/op", "max": 39},
		{"id": "compile-50-steps", "description": "d", "kind": "max",
		 "numerator": "github.com/sluicehq/sluice/internal/pipeline.BenchmarkCompile50Steps",
		 "metric": "ns/op", "max": 50000000},
		{"id": "no-metric", "description": "d", "kind": "max",
		 "numerator": "github.com/sluicehq/sluice/internal/driver.BenchmarkHandWrittenRecord",
		 "metric": "records/s", "max": 1},
		{"id": "rate-min", "description": "d", "kind": "min",
		 "numerator": "github.com/sluicehq/sluice/internal/driver.BenchmarkEngineRecord",
		 "metric": "records/s", "min": 166666},
		{"id": "rate-min-missed", "description": "d", "kind": "min",
		 "numerator": "github.com/sluicehq/sluice/internal/driver.BenchmarkEngineRecord",
		 "metric": "records/s", "min": 170000},
		{"id": "ratio-min", "description": "d", "kind": "ratio",
		 "numerator": "github.com/sluicehq/sluice/internal/driver.BenchmarkHandWrittenRecord",
		 "denominator": "github.com/sluicehq/sluice/internal/driver.BenchmarkEngineRecord",
		 "min": 0.6},
		{"id": "ratio-min-missed", "description": "d", "kind": "ratio",
		 "numerator": "github.com/sluicehq/sluice/internal/driver.BenchmarkHandWrittenRecord",
		 "denominator": "github.com/sluicehq/sluice/internal/driver.BenchmarkEngineRecord",
		 "min": 0.7}
	]}`))
	if err != nil {
		t.Fatal(err)
	}
	got := evaluateTargets(targets, parsedSample(t))
	want := []struct {
		id       string
		status   string
		measured float64
	}{
		{"engine-vs-hand", statusMet, 1.5}, // 6000 / 4000
		{"too-slow", statusNotMet, 1.5},    // metric defaults to ns/op
		{"decode-max", statusMet, 39},      // equal to max is met
		{"compile-50-steps", statusNotMeasured, 0},
		{"no-metric", statusNotMeasured, 0},
		{"rate-min", statusMet, 166666},           // equal to min is met
		{"rate-min-missed", statusNotMet, 166666}, // below min
		{"ratio-min", statusMet, 4000.0 / 6000},
		{"ratio-min-missed", statusNotMet, 4000.0 / 6000},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d results", len(got))
	}
	for i, w := range want {
		g := got[i]
		if g.ID != w.id || g.Status != w.status || g.Met != (w.status == statusMet) {
			t.Errorf("%s: got id %s status %q met %v, want %q", w.id, g.ID, g.Status, g.Met, w.status)
		}
		if w.status == statusNotMeasured {
			if g.Measured != nil || g.Note == "" {
				t.Errorf("%s: measured %v note %q, want nil and a note", w.id, g.Measured, g.Note)
			}
			continue
		}
		if g.Measured == nil || math.Abs(*g.Measured-w.measured) > 1e-9 {
			t.Errorf("%s: measured %v, want %v", w.id, g.Measured, w.measured)
		}
	}
	if got[0].NumeratorValue == nil || *got[0].NumeratorValue != 6000 || got[0].DenominatorValue == nil || *got[0].DenominatorValue != 4000 {
		t.Errorf("engine-vs-hand operands: %v / %v", got[0].NumeratorValue, got[0].DenominatorValue)
	}
	if !strings.Contains(got[3].Note, "BenchmarkCompile50Steps") {
		t.Errorf("note should name the missing benchmark: %q", got[3].Note)
	}
}

func TestParseTargetsErrors(t *testing.T) {
	for name, in := range map[string]string{
		"bad kind":       `{"targets":[{"id":"a","kind":"avg","numerator":"x","max":1}]}`,
		"max no max":     `{"targets":[{"id":"a","kind":"max","numerator":"x","min":1}]}`,
		"min no min":     `{"targets":[{"id":"a","kind":"min","numerator":"x","max":1}]}`,
		"min with both":  `{"targets":[{"id":"a","kind":"min","numerator":"x","min":1,"max":2}]}`,
		"ratio no bound": `{"targets":[{"id":"a","kind":"ratio","numerator":"x","denominator":"y"}]}`,
		"ratio both":     `{"targets":[{"id":"a","kind":"ratio","numerator":"x","denominator":"y","min":1,"max":2}]}`,
		"max with denom": `{"targets":[{"id":"a","kind":"max","numerator":"x","denominator":"y","max":1}]}`,
		"no denom":       `{"targets":[{"id":"a","kind":"ratio","numerator":"x","max":1}]}`,
		"duplicate id":   `{"targets":[{"id":"a","kind":"max","numerator":"x","max":1},{"id":"a","kind":"max","numerator":"y","max":1}]}`,
		"unknown field":  `{"targets":[{"id":"a","kind":"max","numerator":"x","maximum":1}]}`,
		"no id":          `{"targets":[{"kind":"max","numerator":"x","max":1}]}`,
	} {
		if _, err := parseTargets([]byte(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestRepoTargetsFile(t *testing.T) {
	targets, err := loadTargets(filepath.Join("..", "targets.json"))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, tg := range targets {
		ids[tg.ID] = true
	}
	if !ids["runner-alo-vs-hand"] || !ids["runner-window-vs-f0"] || !ids["compile-50-steps"] {
		t.Errorf("bench/targets.json ids: %v", ids)
	}
}

func TestSpliceSection(t *testing.T) {
	doc := "# Perf\n\nhand-written intro\n\n" + beginMarker + "\nold table\n" + endMarker + "\n\n## Notes\nkept\n"
	got, err := spliceSection(doc, "\nnew table\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# Perf\n\nhand-written intro\n\n" + beginMarker + "\n\nnew table\n" + endMarker + "\n\n## Notes\nkept\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// Regenerating is idempotent.
	if again, _ := spliceSection(got, "\nnew table\n"); again != got {
		t.Errorf("second splice changed the document:\n%s", again)
	}

	appended, err := spliceSection("# Perf\nintro", "x\n")
	if err != nil || appended != "# Perf\nintro\n\n"+beginMarker+"\nx\n"+endMarker+"\n" {
		t.Errorf("append: %q, %v", appended, err)
	}
	if _, err := spliceSection(endMarker+beginMarker, "x"); err == nil {
		t.Error("markers out of order: no error")
	}
}

func TestUpdateDocCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "docs", "performance.md")
	if err := updateDoc(path, "generated\n"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.HasPrefix(s, "# Performance") || !strings.Contains(s, "make bench") ||
		!strings.Contains(s, beginMarker+"\ngenerated\n"+endMarker) {
		t.Errorf("created doc:\n%s", s)
	}
}

func TestRenderSection(t *testing.T) {
	res := parsedSample(t)
	targets, err := parseTargets([]byte(`{"targets":[
		{"id":"engine-vs-hand","description":"a | b","kind":"ratio","numerator":"github.com/sluicehq/sluice/internal/driver.BenchmarkEngineRecord","denominator":"github.com/sluicehq/sluice/internal/driver.BenchmarkHandWrittenRecord","max":1.5},
		{"id":"compile-50-steps","description":"compile","kind":"max","numerator":"github.com/sluicehq/sluice/internal/pipeline.BenchmarkCompile50Steps","max":50000000},
		{"id":"rate","description":"rate","kind":"ratio","numerator":"github.com/sluicehq/sluice/internal/driver.BenchmarkHandWrittenRecord","denominator":"github.com/sluicehq/sluice/internal/driver.BenchmarkEngineRecord","min":0.8},
		{"id":"engine-rate","description":"engine rate","kind":"min","numerator":"github.com/sluicehq/sluice/internal/driver.BenchmarkEngineRecord","metric":"records/s","min":100000}]}`))
	if err != nil {
		t.Fatal(err)
	}
	e := env{GoVersion: "go1.26.8", GOOS: "linux", GOARCH: "amd64", CPU: "AMD EPYC", GOMAXPROCS: 2, Date: "2026-01-02T03:04:05Z"}
	s := renderSection(e, config{count: 3}, evaluateTargets(targets, res), res)
	for _, want := range []string{
		"go1.26.8 linux/amd64, AMD EPYC, GOMAXPROCS=2; -count 3",
		"| engine-vs-hand | a \\| b | 1.50× | ≤ 1.50× (ns/op) | ✅ yes |",
		"| compile-50-steps | compile | not measured | ≤ 50000000 ns/op (50 ms) | — not measured |",
		"| rate | rate | 0.667× | ≥ 0.8× (ns/op) | ❌ no |",
		"| engine-rate | engine rate | 166666 records/s | ≥ 100000 records/s | ✅ yes |",
		"### github.com/sluicehq/sluice/internal/driver",
		"| benchmark | ns/op | B/op | allocs/op | records/s | ms/compile |",
		"| BenchmarkEngineRecord | 6000 | 1500 | 40 | 166666 |  |",
		"| BenchmarkSize/size-1024 | 10000000 |  |  |  | 12.5 |",
		"| BenchmarkJSONLibraries/encoding_json/decode | 3132 | 1168 | 39 | 68.3 |",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("section lacks %q:\n%s", want, s)
		}
	}
}

func TestResultFileName(t *testing.T) {
	if got := resultFileName("github.com/sluicehq/sluice/internal/record"); got != "github.com-sluicehq-sluice-internal-record.json" {
		t.Errorf("got %q", got)
	}
}

func checkStat(t *testing.T, what string, got, want stat) {
	t.Helper()
	eq := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !eq(got.Median, want.Median) || !eq(got.Min, want.Min) || !eq(got.Max, want.Max) {
		t.Errorf("%s: got %+v, want %+v", what, got, want)
	}
}

func TestWriteJSONDeterministic(t *testing.T) {
	res := parsedSample(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	if err := writeJSON(a, res[1]); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(b, res[1]); err != nil {
		t.Fatal(err)
	}
	x, _ := os.ReadFile(a)
	y, _ := os.ReadFile(b)
	if string(x) != string(y) {
		t.Error("two writes of the same result differ")
	}
	s := string(x)
	i := strings.Index(s, `"BenchmarkEngineRecord"`)
	j := strings.Index(s, `"BenchmarkHandWrittenRecord"`)
	k := strings.Index(s, `"BenchmarkSize/size-1024"`)
	if i < 0 || !(i < j && j < k) {
		t.Errorf("benchmarks not in sorted order:\n%s", s)
	}
	if !strings.Contains(s, `"package": "github.com/sluicehq/sluice/internal/driver"`) ||
		!strings.Contains(s, `"records/s": {`) || strings.Contains(s, "order") {
		t.Errorf("unexpected content:\n%s", s)
	}
}

// A partial run keeps the other packages' earlier results: they count for
// targets and show in the doc with their date; a package measured now
// replaces its file's results.
func TestWithEarlierResults(t *testing.T) {
	dir := t.TempDir()
	old := &packageResult{Package: "example.com/a", Date: "2026-01-01T00:00:00Z",
		Benchmarks: map[string]benchResult{"BenchmarkZ": {Runs: 1, Metrics: map[string]stat{"ns/op": {Median: 5}}}, "BenchmarkY": {Runs: 1}}}
	stale := &packageResult{Package: "example.com/b", Date: "2026-01-01T00:00:00Z", Benchmarks: map[string]benchResult{"BenchmarkOld": {}}}
	for _, r := range []*packageResult{old, stale} {
		if err := writeJSON(filepath.Join(dir, resultFileName(r.Package)), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "targets.json"), []byte(`{"targets": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	now := &packageResult{Package: "example.com/b", Date: "2026-02-01T00:00:00Z", Benchmarks: map[string]benchResult{"BenchmarkNew": {}}, order: []string{"BenchmarkNew"}}
	all, err := withEarlierResults(dir, []*packageResult{now})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Package != "example.com/a" || !all[0].earlier || all[1] != now {
		t.Fatalf("merged = %+v", all)
	}
	if got := strings.Join(all[0].order, ","); got != "BenchmarkY,BenchmarkZ" {
		t.Errorf("earlier order = %s", got)
	}
	got := evaluateTargets([]target{{ID: "t", Kind: "max", Numerator: "example.com/a.BenchmarkZ", Metric: "ns/op", Max: new(float64(10))}}, all)
	if got[0].Status != statusMet {
		t.Errorf("target on an earlier result: %+v", got[0])
	}
	doc := renderSection(env{}, config{count: 1}, nil, all)
	if !strings.Contains(doc, "_Not run this time: the results of 2026-01-01T00:00:00Z") || strings.Contains(doc, "BenchmarkOld") {
		t.Errorf("doc:\n%s", doc)
	}
	if err := os.WriteFile(filepath.Join(dir, "broken.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := withEarlierResults(dir, nil); err == nil {
		t.Error("a broken result file was ignored")
	}
}

// TestRunRounds runs go test through run with -rounds 2 on a throwaway
// module whose benchmark reports which run of the process it was: each
// round is a new process, so both rounds' runs must land in the results
// (1, 2 from the first round, 1, 2 from the second), and the generated
// section must say so.
func TestRunRounds(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("go is needed on PATH:", err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/rounds\n\ngo 1.24\n",
		"rounds_test.go": `package rounds

import "testing"

var runs int

func BenchmarkRound(b *testing.B) {
	runs++
	for b.Loop() {
	}
	b.ReportMetric(float64(runs), "run")
}
`,
		"targets.json": `{"targets":[]}`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	c := config{pkgs: []string{"."}, bench: ".", count: 2, rounds: 2, benchtime: "1x", timeout: "2m",
		targets: "targets.json", outDir: "results", doc: "perf.md"}
	if err := c.run(t.Context()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join("results", resultFileName("example.com/rounds")))
	if err != nil {
		t.Fatal(err)
	}
	var res packageResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	got := res.Benchmarks["BenchmarkRound"]
	if got.Runs != 4 || got.Metrics["run"] != (stat{Median: 1.5, Min: 1, Max: 2}) {
		t.Errorf("BenchmarkRound: %d runs, run metric %+v; want 4 runs of 1, 2, 1, 2", got.Runs, got.Metrics["run"])
	}
	doc, err := os.ReadFile("perf.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "-count 2 in each of 2 rounds") {
		t.Errorf("the generated section does not name the rounds:\n%s", doc)
	}
	if err := (config{pkgs: []string{"."}, count: 1, rounds: 0}).run(t.Context()); err == nil || !strings.Contains(err.Error(), "-rounds") {
		t.Errorf("-rounds 0: %v, want an error naming -rounds", err)
	}
}

// -from reports saved outputs of runs made apart as one: each benchmark's
// median is taken over the runs of every file, and no go test runs.
func TestRunFromSavedOutput(t *testing.T) {
	dir := t.TempDir()
	first, second := filepath.Join(dir, "first.log"), filepath.Join(dir, "second.log")
	saved := "benchreport: round 1 of 1: go test -run ^$ -bench . ./internal/driver\n" + sampleOutput + "target engine-vs-hand met: 1.5×\n"
	if err := os.WriteFile(first, []byte(saved), 0o644); err != nil {
		t.Fatal(err)
	}
	// The second run's engine was slower: 9000 ns/op, three times.
	slower := strings.NewReplacer("6000 ns/op", "9000 ns/op", "6200 ns/op", "9000 ns/op", "5900 ns/op", "9000 ns/op").Replace(saved)
	if err := os.WriteFile(second, []byte(slower), 0o644); err != nil {
		t.Fatal(err)
	}
	targets := filepath.Join(dir, "targets.json")
	if err := os.WriteFile(targets, []byte(`{"targets":[{"id":"compile","description":"compile","kind":"max","numerator":"github.com/sluicehq/sluice/internal/pipeline.BenchmarkCompile50Steps","max":50000000}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := filepath.Join(dir, "performance.md")
	c := config{bench: ".", count: 3, rounds: 1, targets: targets, outDir: filepath.Join(dir, "results"), doc: doc, from: []string{first, second}}
	if err := c.run(t.Context()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(c.outDir, resultFileName("github.com/sluicehq/sluice/internal/driver")))
	if err != nil {
		t.Fatal(err)
	}
	var res packageResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	engine, ok := res.Benchmarks["BenchmarkEngineRecord"]
	if !ok {
		t.Fatalf("no BenchmarkEngineRecord in %s", b)
	}
	// Six runs: 5900, 6000, 6200 and 9000 three times; the median is
	// between the third and fourth, (6200+9000)/2.
	if engine.Runs != 6 || engine.Metrics["ns/op"].Median != 7600 {
		t.Errorf("BenchmarkEngineRecord: %d runs, median %v ns/op; want 6 runs, 7600", engine.Runs, engine.Metrics["ns/op"].Median)
	}
	d, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(d), "reported from the saved output of 2 runs (-from)") {
		t.Errorf("the doc does not say where its figures come from:\n%s", d)
	}
}
