// Command benchreport runs Sluice's Go benchmarks and turns their output into
// results that can be committed and compared.
//
// It runs `go test -run '^$' -bench <regexp> -benchmem -count N` on the given
// packages (streaming go test's output to stderr), parses the benchmark lines,
// aggregates the repeated runs of each benchmark (median, min and max of every
// metric: ns/op, B/op, allocs/op, MB/s and custom b.ReportMetric units), and
// then:
//
//   - writes bench/results/<import-path-with-dashes>.json for every package
//     that reported benchmarks;
//   - evaluates the performance targets declared in bench/targets.json and
//     writes bench/results/targets.json; a target whose benchmarks did not run
//     is "not measured". A target bounds a metric ("max" kind: at most; "min"
//     kind: at least, for metrics where higher is better such as records/s)
//     or the ratio of two benchmarks' metric ("ratio" kind, with a max or a
//     min);
//   - regenerates the part of docs/performance.md between the
//     <!-- bench:begin --> and <!-- bench:end --> markers, keeping the text
//     around them.
//
// With -rounds R it runs that go test R times in a row, so that each
// benchmark's runs are spread over the whole run and taken in turns with the
// others (A B A B rather than A A B B): on a machine whose speed drifts, the
// ratio of two benchmarks then compares runs made at about the same time.
//
// Run it from the repository root, usually through `make bench`:
//
//	go run ./bench/benchreport [-pkgs ./...] [-bench .] [-count 5] [-rounds 1] [-benchtime 1s] [-timeout 60m]
//
// With -from it runs nothing and reports the saved output of earlier runs
// instead (the go test output benchreport prints, one or more files), so
// that runs made apart can be reported as one: every benchmark's median is
// then taken over all their runs. -count, -rounds and -benchtime then only
// describe those runs in the report.
//
// The exit status is non-zero when go test fails (results of the packages
// that did run are still written); targets that are not met are reported but
// do not fail the run.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config is everything the command line sets.
type config struct {
	pkgs      []string // packages passed to go test
	bench     string   // -bench regexp
	count     int      // -count
	rounds    int      // go test runs, one after the other
	benchtime string   // -benchtime; empty for go test's default
	timeout   string   // -timeout, per test binary
	targets   string   // targets file
	outDir    string   // directory for the JSON results
	doc       string   // Markdown file whose generated section is rewritten
	from      []string // saved go test output to report instead of running
}

func main() {
	var cfg config
	pkgs := flag.String("pkgs", "./...", "packages to benchmark, separated by spaces or commas")
	flag.StringVar(&cfg.bench, "bench", ".", "regexp selecting the benchmarks to run (go test -bench)")
	flag.IntVar(&cfg.count, "count", 5, "number of runs of each benchmark (go test -count)")
	flag.IntVar(&cfg.rounds, "rounds", 1, "number of times to run go test, one after the other; each benchmark then runs count × rounds times, taking turns with the others")
	flag.StringVar(&cfg.benchtime, "benchtime", "", "run time of each benchmark, e.g. 2s or 1000x (go test -benchtime); empty for go's default")
	// go test's default of 10m per test binary is too short for the
	// packages whose benchmarks run for a minute each (bench/apiload,
	// bench/gitops) at the default -count.
	flag.StringVar(&cfg.timeout, "timeout", "60m", "time limit of each package's test binary (go test -timeout); 0 for none")
	flag.StringVar(&cfg.targets, "targets", filepath.Join("bench", "targets.json"), "performance targets file")
	flag.StringVar(&cfg.outDir, "out", filepath.Join("bench", "results"), "directory for the JSON results")
	flag.StringVar(&cfg.doc, "doc", filepath.Join("docs", "performance.md"), "Markdown file whose generated section is rewritten")
	from := flag.String("from", "", "files of saved go test -bench output (as benchreport prints it), separated by commas, to report instead of running go test")
	flag.Parse()
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	}
	cfg.pkgs = split(*pkgs)
	cfg.from = split(*from)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := cfg.run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

// run runs the benchmarks and writes every report.
func (c config) run(ctx context.Context) error {
	if c.count < 1 {
		return fmt.Errorf("-count must be at least 1, got %d", c.count)
	}
	if c.rounds < 1 {
		return fmt.Errorf("-rounds must be at least 1, got %d", c.rounds)
	}
	if len(c.pkgs) == 0 && len(c.from) == 0 {
		return errors.New("no packages given")
	}
	// Read the targets first so that a broken targets file fails before a
	// long benchmark run rather than after it.
	targets, err := loadTargets(c.targets)
	if err != nil {
		return err
	}

	var out bytes.Buffer
	var testErr error
	if len(c.from) > 0 {
		for _, f := range c.from {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			out.Write(b)
			out.WriteByte('\n')
		}
	} else {
		testErr = c.runTests(ctx, &out)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}

	parsed := parseOutput(&out, runtime.GOMAXPROCS(0))
	e := currentEnv(parsed)
	results := aggregate(parsed, e)
	if len(results) == 0 && testErr == nil {
		fmt.Fprintln(os.Stderr, "benchreport: no benchmark matched; nothing written")
		return nil
	}

	if err := os.MkdirAll(c.outDir, 0o755); err != nil {
		return err
	}
	for _, r := range results {
		path := filepath.Join(c.outDir, resultFileName(r.Package))
		if err := writeJSON(path, r); err != nil {
			return err
		}
		fmt.Println("wrote", path)
	}

	// A run of some packages keeps the others' last results in the
	// targets and the doc (marked with their date), so a partial run does
	// not make the rest look unmeasured.
	all, err := withEarlierResults(c.outDir, results)
	if err != nil {
		return err
	}
	evaluated := evaluateTargets(targets, all)
	path := filepath.Join(c.outDir, "targets.json")
	if err := writeJSON(path, targetsReport{Date: e.Date, Targets: evaluated}); err != nil {
		return err
	}
	fmt.Println("wrote", path)
	for _, t := range evaluated {
		if t.Measured == nil {
			fmt.Printf("target %-20s %s: %s\n", t.ID, t.Status, t.Note)
			continue
		}
		fmt.Printf("target %-20s %s: %s (target %s)\n", t.ID, t.Status, t.measuredText(), t.targetText())
	}

	if err := updateDoc(c.doc, renderSection(e, c, evaluated, all)); err != nil {
		return err
	}
	fmt.Println("updated", c.doc)

	if testErr != nil {
		return fmt.Errorf("go test: %w (results of the packages that ran were written)", testErr)
	}
	return nil
}

// runTests runs go test -bench for every round, writing its output to out
// (and to stderr, to watch). It returns go test's first failure.
func (c config) runTests(ctx context.Context, out *bytes.Buffer) error {
	args := []string{"test", "-run", "^$", "-bench", c.bench, "-benchmem", "-count", strconv.Itoa(c.count)}
	if c.benchtime != "" {
		args = append(args, "-benchtime", c.benchtime)
	}
	if c.timeout != "" {
		args = append(args, "-timeout", c.timeout)
	}
	args = append(args, c.pkgs...)
	// The rounds' outputs are parsed as one: each adds its runs to every
	// benchmark's.
	var testErr error
	for round := 1; round <= c.rounds; round++ {
		fmt.Fprintf(os.Stderr, "benchreport: round %d of %d: go %s\n", round, c.rounds, strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Stdout = io.MultiWriter(os.Stderr, out)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil && testErr == nil {
			testErr = err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return testErr
}

// --- parsing go test output ---

// testOutput is what parseOutput finds in go test's text output.
type testOutput struct {
	GOOS, GOARCH, CPU string // header lines of the last package
	Packages          []*packageRuns
}

// packageRuns holds every run of every benchmark of one package.
type packageRuns struct {
	Path  string
	Order []string                        // benchmark names, first appearance first
	Runs  map[string][]map[string]float64 // name -> one metrics map per run
}

// parseOutput parses the standard text output of `go test -bench`, for any
// number of packages. Benchmark names lose their "-<GOMAXPROCS>" suffix
// (procs is the GOMAXPROCS go test ran with; 1 or less means no suffix).
// Lines that are not benchmark results are ignored.
func parseOutput(r io.Reader, procs int) *testOutput {
	out := &testOutput{}
	byPath := map[string]*packageRuns{}
	current := ""
	suffix := ""
	if procs > 1 {
		suffix = "-" + strconv.Itoa(procs)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "pkg: "):
			current = strings.TrimSpace(strings.TrimPrefix(line, "pkg: "))
			continue
		case strings.HasPrefix(line, "goos: "):
			out.GOOS = strings.TrimSpace(strings.TrimPrefix(line, "goos: "))
			continue
		case strings.HasPrefix(line, "goarch: "):
			out.GOARCH = strings.TrimSpace(strings.TrimPrefix(line, "goarch: "))
			continue
		case strings.HasPrefix(line, "cpu: "):
			out.CPU = strings.TrimSpace(strings.TrimPrefix(line, "cpu: "))
			continue
		}
		name, metrics, ok := parseBenchLine(line)
		if !ok {
			continue
		}
		if suffix != "" {
			name = strings.TrimSuffix(name, suffix)
		}
		p := byPath[current]
		if p == nil {
			p = &packageRuns{Path: current, Runs: map[string][]map[string]float64{}}
			byPath[current] = p
			out.Packages = append(out.Packages, p)
		}
		if _, seen := p.Runs[name]; !seen {
			p.Order = append(p.Order, name)
		}
		p.Runs[name] = append(p.Runs[name], metrics)
	}
	return out
}

// parseBenchLine parses one result line such as
//
//	BenchmarkX/y-2   1000   1043 ns/op   191.71 MB/s   616 B/op   14 allocs/op   3.5 records/s
//
// into the name (suffix included) and its metrics by unit.
func parseBenchLine(line string) (string, map[string]float64, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || len(f)%2 != 0 || !strings.HasPrefix(f[0], "Benchmark") {
		return "", nil, false
	}
	if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
		return "", nil, false
	}
	metrics := make(map[string]float64, (len(f)-2)/2)
	for i := 2; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return "", nil, false
		}
		metrics[f[i+1]] = v
	}
	return f[0], metrics, true
}

// --- aggregation and result files ---

// env describes the machine and toolchain of a run.
type env struct {
	GoVersion  string
	GOOS       string
	GOARCH     string
	CPU        string
	GOMAXPROCS int
	Date       string
}

func currentEnv(p *testOutput) env {
	e := env{
		GoVersion:  goVersion(),
		GOOS:       p.GOOS,
		GOARCH:     p.GOARCH,
		CPU:        cpuModel(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Date:       time.Now().UTC().Format(time.RFC3339),
	}
	if e.GOOS == "" {
		e.GOOS = runtime.GOOS
	}
	if e.GOARCH == "" {
		e.GOARCH = runtime.GOARCH
	}
	if e.CPU == "" {
		e.CPU = p.CPU
	}
	return e
}

// goVersion is the version of the go command that ran the benchmarks.
func goVersion() string {
	b, err := exec.Command("go", "env", "GOVERSION").Output()
	if v := strings.TrimSpace(string(b)); err == nil && v != "" {
		return v
	}
	return runtime.Version()
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or "" if there
// is none (go test's "cpu:" line is used then).
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// stat summarises the runs of one metric.
type stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// benchResult is one benchmark's aggregated metrics, by unit.
type benchResult struct {
	Runs    int             `json:"runs"`
	Metrics map[string]stat `json:"metrics"`
}

// packageResult is the content of one bench/results/*.json file. Struct
// fields keep their order and map keys are sorted by encoding/json, so the
// files are deterministic apart from the date.
type packageResult struct {
	Package    string                 `json:"package"`
	GoVersion  string                 `json:"go_version"`
	GOOS       string                 `json:"goos"`
	GOARCH     string                 `json:"goarch"`
	CPU        string                 `json:"cpu"`
	GOMAXPROCS int                    `json:"gomaxprocs"`
	Date       string                 `json:"date"`
	Benchmarks map[string]benchResult `json:"benchmarks"`

	order   []string // benchmark names in the order they ran
	earlier bool     // loaded from an earlier run's file, not measured now
}

func aggregate(p *testOutput, e env) []*packageResult {
	var res []*packageResult
	for _, pr := range p.Packages {
		r := &packageResult{
			Package: pr.Path, GoVersion: e.GoVersion, GOOS: e.GOOS, GOARCH: e.GOARCH,
			CPU: e.CPU, GOMAXPROCS: e.GOMAXPROCS, Date: e.Date,
			Benchmarks: map[string]benchResult{},
			order:      pr.Order,
		}
		for _, name := range pr.Order {
			runs := pr.Runs[name]
			samples := map[string][]float64{}
			for _, m := range runs {
				for unit, v := range m {
					samples[unit] = append(samples[unit], v)
				}
			}
			br := benchResult{Runs: len(runs), Metrics: map[string]stat{}}
			for unit, vs := range samples {
				br.Metrics[unit] = summarize(vs)
			}
			r.Benchmarks[name] = br
		}
		res = append(res, r)
	}
	return res
}

// withEarlierResults adds to results the result files in dir of packages
// that results does not have, sorted by package; their benchmark order is
// by name. A file that does not parse is an error, not silently dropped.
func withEarlierResults(dir string, results []*packageResult) ([]*packageResult, error) {
	have := map[string]bool{}
	for _, r := range results {
		have[r.Package] = true
	}
	all := slices.Clone(results)
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if filepath.Base(f) == "targets.json" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var r packageResult
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if r.Package == "" || have[r.Package] {
			continue
		}
		for name := range r.Benchmarks {
			r.order = append(r.order, name)
		}
		slices.Sort(r.order)
		r.earlier = true
		all = append(all, &r)
	}
	slices.SortStableFunc(all, func(a, b *packageResult) int { return strings.Compare(a.Package, b.Package) })
	return all, nil
}

// summarize returns the median, minimum and maximum of vs (not empty).
func summarize(vs []float64) stat {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return stat{Median: med, Min: s[0], Max: s[n-1]}
}

// resultFileName turns an import path into a file name:
// "github.com/sluicehq/sluice/internal/record" ->
// "github.com-sluicehq-sluice-internal-record.json".
func resultFileName(pkg string) string {
	if pkg == "" {
		pkg = "unknown-package"
	}
	return strings.NewReplacer("/", "-", "\\", "-").Replace(pkg) + ".json"
}

// writeJSON writes v indented, without HTML escaping (descriptions contain
// "->"), ending with a newline.
func writeJSON(path string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// --- targets ---

// target is one entry of bench/targets.json.
type target struct {
	ID          string `json:"id"`
	Description string `json:"description"`
	// Kind is "ratio" (numerator/denominator <= Max, or >= Min), "max"
	// (numerator <= Max) or "min" (numerator >= Min).
	Kind        string   `json:"kind"`
	Numerator   string   `json:"numerator"`             // "<import path>.<benchmark name>"
	Denominator string   `json:"denominator,omitempty"` // ratio only
	Metric      string   `json:"metric"`                // unit, default ns/op
	Max         *float64 `json:"max,omitempty"`
	Min         *float64 `json:"min,omitempty"`
}

type targetsFile struct {
	Comment string   `json:"comment,omitempty"`
	Targets []target `json:"targets"`
}

func loadTargets(path string) ([]target, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseTargets(b)
}

func parseTargets(b []byte) ([]target, error) {
	var f targetsFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("targets: %w", err)
	}
	seen := map[string]bool{}
	for i := range f.Targets {
		t := &f.Targets[i]
		if t.Metric == "" {
			t.Metric = "ns/op"
		}
		switch {
		case t.ID == "":
			return nil, fmt.Errorf("targets: entry %d has no id", i)
		case seen[t.ID]:
			return nil, fmt.Errorf("targets: duplicate id %q", t.ID)
		case t.Kind != "ratio" && t.Kind != "max" && t.Kind != "min":
			return nil, fmt.Errorf("targets: %s: kind must be \"ratio\", \"max\" or \"min\", got %q", t.ID, t.Kind)
		case t.Numerator == "":
			return nil, fmt.Errorf("targets: %s: no numerator", t.ID)
		case t.Kind == "ratio" && t.Denominator == "":
			return nil, fmt.Errorf("targets: %s: a ratio needs a denominator", t.ID)
		case t.Kind != "ratio" && t.Denominator != "":
			return nil, fmt.Errorf("targets: %s: only a ratio has a denominator", t.ID)
		case t.Kind == "max" && (t.Max == nil || t.Min != nil):
			return nil, fmt.Errorf("targets: %s: a max target needs max and no min", t.ID)
		case t.Kind == "min" && (t.Min == nil || t.Max != nil):
			return nil, fmt.Errorf("targets: %s: a min target needs min and no max", t.ID)
		case t.Kind == "ratio" && (t.Max == nil) == (t.Min == nil):
			return nil, fmt.Errorf("targets: %s: a ratio needs either max or min", t.ID)
		}
		seen[t.ID] = true
	}
	return f.Targets, nil
}

// Target statuses.
const (
	statusMet         = "met"
	statusNotMet      = "not met"
	statusNotMeasured = "not measured"
)

// targetResult is a target with what this run measured for it.
type targetResult struct {
	target
	Measured         *float64 `json:"measured"` // ratio or value; null when not measured
	NumeratorValue   *float64 `json:"numerator_value,omitempty"`
	DenominatorValue *float64 `json:"denominator_value,omitempty"`
	Status           string   `json:"status"` // met, not met, not measured
	Met              bool     `json:"met"`
	Note             string   `json:"note,omitempty"`
}

type targetsReport struct {
	Date    string         `json:"date"`
	Targets []targetResult `json:"targets"`
}

// evaluateTargets compares the median of each target's metric (or the
// ratio of two medians) with its bound: at most Max, or at least Min.
// Benchmarks absent from results make the target "not measured".
func evaluateTargets(targets []target, results []*packageResult) []targetResult {
	byName := map[string]benchResult{}
	for _, r := range results {
		for name, br := range r.Benchmarks {
			byName[r.Package+"."+name] = br
		}
	}
	lookup := func(name, metric string) (float64, string) {
		br, ok := byName[name]
		if !ok {
			return 0, "benchmark not run: " + name
		}
		s, ok := br.Metrics[metric]
		if !ok {
			return 0, fmt.Sprintf("benchmark %s reported no %s", name, metric)
		}
		return s.Median, ""
	}
	out := make([]targetResult, 0, len(targets))
	for _, t := range targets {
		tr := targetResult{target: t, Status: statusNotMeasured}
		num, note := lookup(t.Numerator, t.Metric)
		var notes []string
		if note != "" {
			notes = append(notes, note)
		} else {
			tr.NumeratorValue = &num
		}
		value := num
		if t.Kind == "ratio" {
			den, note := lookup(t.Denominator, t.Metric)
			switch {
			case note != "":
				notes = append(notes, note)
			case den == 0:
				tr.DenominatorValue = &den
				notes = append(notes, "denominator is 0")
			default:
				tr.DenominatorValue = &den
				value = num / den
			}
		}
		if len(notes) == 0 {
			tr.Measured = &value
			tr.Met = (t.Max == nil || value <= *t.Max) && (t.Min == nil || value >= *t.Min)
			tr.Status = statusNotMet
			if tr.Met {
				tr.Status = statusMet
			}
		}
		tr.Note = strings.Join(notes, "; ")
		out = append(out, tr)
	}
	return out
}

func (t targetResult) measuredText() string {
	if t.Measured == nil {
		return "not measured"
	}
	if t.Kind == "ratio" {
		return fmtNum(*t.Measured) + "×"
	}
	return fmtMetric(*t.Measured, t.Metric)
}

func (t targetResult) targetText() string {
	op, bound := "≤ ", 0.0
	switch {
	case t.Max != nil:
		bound = *t.Max
	case t.Min != nil:
		op, bound = "≥ ", *t.Min
	}
	if t.Kind == "ratio" {
		return op + fmtNum(bound) + "× (" + t.Metric + ")"
	}
	return op + fmtMetric(bound, t.Metric)
}

// --- docs/performance.md ---

const (
	beginMarker = "<!-- bench:begin -->"
	endMarker   = "<!-- bench:end -->"
)

// docIntro is the start of docs/performance.md when it does not exist yet.
const docIntro = `# Performance

Sluice's performance is tracked with Go benchmarks and a few explicit targets
(bench/targets.json).

**How to run:** ` + "`make bench`" + ` (that is ` + "`go run ./bench/benchreport`" + `; see
` + "`go run ./bench/benchreport -h`" + ` for -pkgs, -bench, -count, -rounds and -benchtime).
It writes bench/results/*.json and regenerates the section between the bench
markers below; text outside the markers is kept. Numbers are medians of the
runs, measured on the machine named in the section: compare numbers only
between runs on the same machine.

`

// updateDoc replaces the generated section of the Markdown file at path,
// creating the file (or appending the section) when needed.
func updateDoc(path, section string) error {
	old, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		old = []byte(docIntro)
	} else if err != nil {
		return err
	}
	doc, err := spliceSection(string(old), section)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}

// spliceSection puts section between the markers of doc, or appends markers
// and section when doc has none.
func spliceSection(doc, section string) (string, error) {
	block := beginMarker + "\n" + section + endMarker
	i := strings.Index(doc, beginMarker)
	j := strings.Index(doc, endMarker)
	switch {
	case i < 0 && j < 0:
		if doc != "" && !strings.HasSuffix(doc, "\n") {
			doc += "\n"
		}
		if doc != "" && !strings.HasSuffix(doc, "\n\n") {
			doc += "\n"
		}
		return doc + block + "\n", nil
	case i < 0 || j < i:
		return "", errors.New("bench markers are missing or out of order")
	}
	return doc[:i] + block + doc[j+len(endMarker):], nil
}

// renderSection renders the generated Markdown: environment, targets, and
// one table of benchmarks per package.
func renderSection(e env, c config, targets []targetResult, results []*packageResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n_Generated by `go run ./bench/benchreport` on %s — %s %s/%s, %s, GOMAXPROCS=%d; -count %d",
		e.Date, e.GoVersion, e.GOOS, e.GOARCH, orUnknown(e.CPU), e.GOMAXPROCS, c.count)
	if c.rounds > 1 {
		fmt.Fprintf(&b, " in each of %d rounds", c.rounds)
	}
	if c.benchtime != "" {
		fmt.Fprintf(&b, ", -benchtime %s", c.benchtime)
	}
	if len(c.from) > 0 {
		fmt.Fprintf(&b, "; reported from the saved output of %d runs (-from)", len(c.from))
	}
	b.WriteString(". Values are medians. Do not edit by hand._\n\n")

	b.WriteString("### Targets\n\n")
	if len(targets) == 0 {
		b.WriteString("No targets are declared in bench/targets.json.\n\n")
	} else {
		b.WriteString("| id | description | measured | target | met? |\n|---|---|---:|---|---|\n")
		for _, t := range targets {
			met := map[string]string{statusMet: "✅ yes", statusNotMet: "❌ no", statusNotMeasured: "— not measured"}[t.Status]
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n",
				mdCell(t.ID), mdCell(t.Description), mdCell(t.measuredText()), mdCell(t.targetText()), met)
		}
		b.WriteString("\n")
	}

	for _, r := range results {
		fmt.Fprintf(&b, "### %s\n\n", r.Package)
		if r.earlier {
			fmt.Fprintf(&b, "_Not run this time: the results of %s (%s)._\n\n", r.Date, orUnknown(r.CPU))
		}
		base := []string{"ns/op", "B/op", "allocs/op"}
		var extra []string
		for _, name := range r.order {
			units := make([]string, 0, len(r.Benchmarks[name].Metrics))
			for u := range r.Benchmarks[name].Metrics {
				units = append(units, u)
			}
			slices.Sort(units)
			for _, u := range units {
				if !slices.Contains(base, u) && !slices.Contains(extra, u) {
					extra = append(extra, u)
				}
			}
		}
		cols := append(base, extra...)
		b.WriteString("| benchmark |")
		for _, u := range cols {
			b.WriteString(" " + mdCell(u) + " |")
		}
		b.WriteString("\n|---|" + strings.Repeat("---:|", len(cols)) + "\n")
		for _, name := range r.order {
			br := r.Benchmarks[name]
			b.WriteString("| " + mdCell(name) + " |")
			for _, u := range cols {
				cell := ""
				if s, ok := br.Metrics[u]; ok {
					cell = fmtNum(s.Median)
				}
				b.WriteString(" " + cell + " |")
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown CPU"
	}
	return s
}

// mdCell escapes text for a Markdown table cell.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// fmtNum formats a metric value compactly: integers as integers, other
// values with about three significant digits (at least the integer part).
func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case v == math.Trunc(v) && a < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// fmtMetric formats a value with its unit; ns/op also gets a readable
// duration, e.g. "12500000 ns/op (12.5 ms)".
func fmtMetric(v float64, unit string) string {
	s := fmtNum(v) + " " + unit
	if unit == "ns/op" && v >= 1000 {
		s += " (" + humanNs(v) + ")"
	}
	return s
}

func humanNs(ns float64) string {
	switch {
	case ns >= 1e9:
		return fmtNum(ns/1e9) + " s"
	case ns >= 1e6:
		return fmtNum(ns/1e6) + " ms"
	case ns >= 1e3:
		return fmtNum(ns/1e3) + " µs"
	default:
		return fmtNum(ns) + " ns"
	}
}
