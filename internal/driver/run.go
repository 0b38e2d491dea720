package driver

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/diag"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/record"
)

// Summary counts the outcome of a test run.
type Summary struct {
	Passed, Failed int
	// CompileErrors counts files that did not compile or parse.
	CompileErrors int
}

// OK reports whether everything compiled and passed.
func (s Summary) OK() bool { return s.Failed == 0 && s.CompileErrors == 0 }

// Runner runs the pipeline tests under directories and reports to Out.
type Runner struct {
	Registry *catalog.Registry
	Out      io.Writer
	Verbose  bool
}

type loaded struct {
	plan *pipeline.Plan
	err  error
	file string
}

// Run compiles every pipeline under dirs, runs every *_test.yaml, and
// prints compile errors as file:line:col, PASS/FAIL per test with a diff,
// and a closing count.
func (r *Runner) Run(ctx context.Context, dirs ...string) (Summary, error) {
	var sum Summary
	var pipelineFiles, testFiles []string
	for _, dir := range dirs {
		p, t, err := discover(dir)
		if err != nil {
			return sum, err
		}
		pipelineFiles = append(pipelineFiles, p...)
		testFiles = append(testFiles, t...)
	}
	plans := map[string]*loaded{}
	for _, f := range pipelineFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return sum, err
		}
		c := &pipeline.Compiler{Registry: r.Registry, Files: os.DirFS(filepath.Dir(f))}
		plan, err := c.Compile(f, data)
		if err != nil {
			sum.CompileErrors++
			fmt.Fprintln(r.Out, err)
			// Remember the name even when the file is broken, so its
			// tests say why they did not run.
			plans[nameOf(f, data)] = &loaded{err: err, file: f}
			continue
		}
		if prev, dup := plans[plan.Name]; dup && prev.file != "" {
			sum.CompileErrors++
			fmt.Fprintf(r.Out, "%s: pipeline %q is also defined in %s\n", f, plan.Name, prev.file)
			continue
		}
		plans[plan.Name] = &loaded{plan: plan, file: f}
	}
	if len(pipelineFiles) == 0 && len(testFiles) == 0 {
		return sum, fmt.Errorf("no pipelines or tests found under %s", strings.Join(dirs, ", "))
	}
	for _, f := range testFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return sum, err
		}
		tf, err := ParseTestFile(f, data)
		if err != nil {
			sum.CompileErrors++
			fmt.Fprintln(r.Out, err)
			continue
		}
		l, ok := plans[tf.Pipeline]
		if !ok {
			names := make([]string, 0, len(plans))
			for n := range plans {
				names = append(names, n)
			}
			sort.Strings(names)
			msg := fmt.Sprintf("no pipeline named %q", tf.Pipeline)
			if s := expression.Suggest(tf.Pipeline, names); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			sum.CompileErrors++
			fmt.Fprintln(r.Out, diag.Errorf(tf.PipelinePos, "%s", msg))
			continue
		}
		for _, c := range tf.Cases {
			if l.err != nil {
				sum.Failed++
				fmt.Fprintf(r.Out, "FAIL %s: %s\n     pipeline %s does not compile (errors above)\n", c.Pos, c.Name, l.file)
				continue
			}
			start := time.Now()
			failures := RunCase(ctx, l.plan, c)
			took := time.Since(start).Round(time.Microsecond)
			if len(failures) == 0 {
				sum.Passed++
				if r.Verbose {
					fmt.Fprintf(r.Out, "PASS %s: %s (%s)\n", c.Pos, c.Name, took)
				} else {
					fmt.Fprintf(r.Out, "PASS %s: %s\n", c.Pos.File, c.Name)
				}
				continue
			}
			sum.Failed++
			fmt.Fprintf(r.Out, "FAIL %s: %s\n", c.Pos, c.Name)
			for _, f := range failures {
				fmt.Fprintf(r.Out, "     %s\n", strings.ReplaceAll(f, "\n", "\n     "))
			}
		}
	}
	if sum.CompileErrors > 0 {
		fmt.Fprintf(r.Out, "%d file%s with errors\n", sum.CompileErrors, plural(sum.CompileErrors))
	}
	fmt.Fprintf(r.Out, "%d passed, %d failed\n", sum.Passed, sum.Failed)
	return sum, nil
}

// nameOf digs the pipeline name out of a file that did not compile, so that
// its tests can say why they did not run.
func nameOf(file string, data []byte) string {
	if src, root, err := pipeline.ParseYAML(file, data); err == nil {
		meta, _ := catalog.NewConfig(src, root).Get("metadata")
		if n, ok := meta.Get("name"); ok {
			return n.String()
		}
		return ""
	}
	if m := nameRE.FindSubmatch(data); m != nil {
		return string(m[1])
	}
	return ""
}

var nameRE = regexp.MustCompile(`(?m)^\s+name:\s*["']?([a-z0-9.-]+)`)

func discover(dir string) (pipelines, tests []string, err error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, nil, err
	}
	add := func(path string) {
		base := filepath.Base(path)
		switch {
		case strings.HasSuffix(base, "_test.yaml"), strings.HasSuffix(base, "_test.yml"):
			tests = append(tests, path)
		case strings.HasSuffix(base, ".yaml"), strings.HasSuffix(base, ".yml"):
			pipelines = append(pipelines, path)
		}
	}
	if !info.IsDir() {
		add(dir)
		return pipelines, tests, nil
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != dir {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			add(path)
		}
		return nil
	})
	sort.Strings(pipelines)
	sort.Strings(tests)
	return pipelines, tests, err
}

// RunCase runs one test on a fresh driver and returns what did not match,
// each message starting with the position of the expectation.
func RunCase(ctx context.Context, plan *pipeline.Plan, c *Case) []string {
	d, err := New(plan)
	if err != nil {
		return []string{err.Error()}
	}
	var failures []string
	for _, in := range c.Input {
		if in.IsClockMove {
			if err := d.Advance(ctx, in.Advance); err != nil {
				failures = append(failures, fmt.Sprintf("%s: %v", in.Pos, err))
			}
			continue
		}
		m, err := inputMessage(plan, in)
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", in.Pos, err))
			continue
		}
		topic := in.Topic
		if topic == "" {
			topic = plan.Source.Topic
		}
		if err := d.ProduceTo(ctx, topic, m); err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", in.Pos, err))
		}
	}
	if err := d.Advance(ctx, c.Advance); err != nil {
		failures = append(failures, err.Error())
	}

	// Outputs, per topic, exact and in order.
	want := map[string][]Expect{}
	for _, e := range c.Expect {
		t := e.Topic
		if t == "" {
			t = plan.Sink.Topic
		}
		want[t] = append(want[t], e)
	}
	topics := map[string]bool{plan.Sink.Topic: true}
	for _, s := range plan.Steps {
		for _, t := range s.Topics {
			topics[t] = true
		}
	}
	for t := range want {
		if !topics[t] {
			failures = append(failures, fmt.Sprintf("%s: the pipeline never writes to topic %q (it writes %s)", want[t][0].Pos, t, strings.Join(sortedKeys(topics), ", ")))
			delete(want, t)
		}
	}
	for _, t := range sortedKeys(topics) {
		failures = append(failures, compareTopic(plan, t, want[t], d.Topic(t), c.Pos)...)
	}
	failures = append(failures, compareDLQ(plan, c, d.Topic(plan.DLQ))...)
	return failures
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func inputMessage(plan *pipeline.Plan, in Input) (engine.Message, error) {
	var m engine.Message
	key, err := record.KeyBytes(in.Key)
	if err != nil {
		return m, err
	}
	m.Key = key
	if in.Raw != nil {
		m.Value = []byte(*in.Raw)
	} else if in.HasValue && in.Value == nil && in.Topic != "" {
		m.Value = nil // a tombstone
	} else if in.HasValue {
		if s, ok := in.Value.(string); ok && plan.Source.Format == pipeline.FormatRaw {
			m.Value = []byte(s)
		} else if m.Value, err = record.EncodeJSON(in.Value); err != nil {
			return m, err
		}
	}
	for k, v := range in.Headers {
		m.Headers = append(m.Headers, record.Header{Key: k, Value: []byte(v)})
	}
	sort.Slice(m.Headers, func(i, j int) bool { return m.Headers[i].Key < m.Headers[j].Key })
	if in.HasTimestamp {
		m.Timestamp = in.Timestamp
	}
	return m, nil
}

func show(v any) string {
	b, err := record.EncodeJSON(record.Plain(v))
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func decodeOutput(m engine.Message, format string) any {
	v, err := engine.DecodeValue(m.Value, format)
	if err != nil {
		return string(m.Value)
	}
	return v
}

func compareTopic(plan *pipeline.Plan, topic string, want []Expect, got []engine.Message, casePos diag.Pos) []string {
	format := pipeline.FormatJSON
	if topic == plan.Sink.Topic {
		format = plan.Sink.Format
	}
	var out []string
	for i := 0; i < max(len(want), len(got)); i++ {
		switch {
		case i >= len(got):
			out = append(out, fmt.Sprintf("%s: %s record %d: expected but not produced\n  -want %s", want[i].Pos, topic, i+1, show(want[i].Value)))
		case i >= len(want):
			g := got[i]
			out = append(out, fmt.Sprintf("%s: %s record %d: produced but not expected\n  +got key=%s %s", casePos, topic, i+1, string(g.Key), show(decodeOutput(g, format))))
		default:
			w, g := want[i], got[i]
			gv := decodeOutput(g, format)
			if !record.EqualJSON(w.Value, gv) {
				out = append(out, fmt.Sprintf("%s: %s record %d: value differs:\n%s", w.Pos, topic, i+1, diff(w.Value, gv)))
			}
			if w.HasKey && record.KeyString(w.Key) != string(g.Key) {
				out = append(out, fmt.Sprintf("%s: %s record %d: key is %q, want %q", w.Pos, topic, i+1, string(g.Key), record.KeyString(w.Key)))
			}
			for hk, hv := range w.Headers {
				found := false
				for _, h := range g.Headers {
					if h.Key == hk && string(h.Value) == hv {
						found = true
					}
				}
				if !found {
					out = append(out, fmt.Sprintf("%s: %s record %d: header %s=%q missing", w.Pos, topic, i+1, hk, hv))
				}
			}
		}
	}
	return out
}

func header(m engine.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func compareDLQ(plan *pipeline.Plan, c *Case, got []engine.Message) []string {
	var out []string
	want := c.ExpectDLQ
	for i := 0; i < max(len(want), len(got)); i++ {
		switch {
		case i >= len(got):
			out = append(out, fmt.Sprintf("%s: DLQ record %d: expected reason %q but nothing more reached the DLQ", want[i].Pos, i+1, want[i].Reason))
		case i >= len(want):
			g := got[i]
			out = append(out, fmt.Sprintf("%s: DLQ record %d: unexpected dead letter, reason %q: %s\n  +got %s", c.Pos, i+1,
				header(g, engine.HeaderReason), header(g, engine.HeaderError), show(decodeOutput(g, plan.Source.Format))))
		default:
			w, g := want[i], got[i]
			if r := header(g, engine.HeaderReason); r != w.Reason {
				out = append(out, fmt.Sprintf("%s: DLQ record %d: reason is %q (%s), want %q", w.Pos, i+1, r, header(g, engine.HeaderError), w.Reason))
			}
			if w.Error != "" && !strings.Contains(header(g, engine.HeaderError), w.Error) {
				out = append(out, fmt.Sprintf("%s: DLQ record %d: error %q does not contain %q", w.Pos, i+1, header(g, engine.HeaderError), w.Error))
			}
			if w.HasValue {
				gv := decodeOutput(g, plan.Source.Format)
				if !record.EqualJSON(w.Value, gv) {
					out = append(out, fmt.Sprintf("%s: DLQ record %d: value differs:\n%s", w.Pos, i+1, diff(w.Value, gv)))
				}
			}
			if w.HasKey && record.KeyString(w.Key) != string(g.Key) {
				out = append(out, fmt.Sprintf("%s: DLQ record %d: key is %q, want %q", w.Pos, i+1, string(g.Key), record.KeyString(w.Key)))
			}
		}
	}
	return out
}
