// Package validate checks the pipelines of a commit the way `runner test`
// does, for push validation and the API: it compiles every pipeline under
// pipelines/, checks each against the state of the revision running now
// (the `reset: true` rule), runs every *_test.yaml on the in-memory driver,
// and builds each pipeline's bundle: its YAML and exactly the side files its
// steps opened while compiling, so a changed script or lookup changes the
// bundle's digest and redeploys the pipeline.
//
// Everything it reports is a line for the person who pushed:
// `file:line:col: message` for compile errors and test failures with their
// diff, as `runner test` prints them.
package validate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/internal/diag"
	"github.com/sluicehq/sluice/internal/driver"
	"github.com/sluicehq/sluice/internal/pipeline"
)

// Dir is where a repository keeps its pipelines and their tests; side files
// may be anywhere below it.
const Dir = "pipelines"

// Limits bound the work one validation may do; the defaults hold for every
// caller (the control plane validates untrusted commits).
const (
	MaxPipelines = 200
	// TestTimeout bounds all tests of one commit together.
	TestTimeout = 60 * time.Second
)

// Pipeline is one pipeline of the commit that compiled.
type Pipeline struct {
	Name string
	// Path is the pipeline file's path in the repository.
	Path string
	Plan *pipeline.Plan
	// Bundle is what runners execute; Data its canonical bytes and Digest
	// their SHA-256.
	Bundle *agentproto.Bundle
	Data   []byte
	Digest string
	// SideFiles are the repository paths of the side files in the bundle.
	SideFiles []string
	// StateResets are the stateful steps whose state this revision starts
	// from empty, compared with the running revision.
	StateResets []pipeline.StateChange
}

// Result is the outcome of a validation.
type Result struct {
	// Pipelines that compiled, sorted by name.
	Pipelines []Pipeline
	// Lines are messages for the pusher, in order: compile errors, test
	// results, a summary.
	Lines []string
	// Failed is true when anything did not compile, a state change needs
	// `reset: true`, or a test failed: the commit must not deploy.
	Failed bool
	// Passed and FailedTests count test cases.
	Passed, FailedTests int
}

// Previous returns the plan of the revision of a pipeline running now, or
// nil when it has none (or it no longer compiles).
type Previous func(name string) *pipeline.Plan

// Check validates the files of a commit (slash paths to contents). Only a
// failure to run at all (ctx ended) is an error; everything about the
// commit's content is in the Result.
func Check(ctx context.Context, reg *catalog.Registry, files map[string][]byte, previous Previous) (Result, error) {
	var res Result
	var pipelineFiles, testFiles []string
	for p := range files {
		if !strings.HasPrefix(p, Dir+"/") || hidden(p) {
			continue
		}
		switch base := path.Base(p); {
		case strings.HasSuffix(base, "_test.yaml"), strings.HasSuffix(base, "_test.yml"):
			testFiles = append(testFiles, p)
		case strings.HasSuffix(base, ".yaml"), strings.HasSuffix(base, ".yml"):
			pipelineFiles = append(pipelineFiles, p)
		}
	}
	sort.Strings(pipelineFiles)
	sort.Strings(testFiles)
	if len(pipelineFiles) > MaxPipelines {
		res.fail(fmt.Sprintf("%s/: %d pipeline files; a repository holds at most %d", Dir, len(pipelineFiles), MaxPipelines))
		return res, nil
	}

	plans := map[string]*Pipeline{}
	broken := map[string]string{} // pipeline name -> file, for tests of broken pipelines
	for _, f := range pipelineFiles {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		p, err := Compile(reg, files, f)
		if err != nil {
			res.fail(messages(f, err)...)
			if name := nameOf(f, files[f]); name != "" {
				broken[name] = f
			}
			continue
		}
		if other, dup := plans[p.Name]; dup {
			res.fail(fmt.Sprintf("%s: pipeline %q is also defined in %s", f, p.Name, other.Path))
			continue
		}
		if previous != nil {
			if prev := previous(p.Name); prev != nil {
				resets, err := pipeline.CheckState(prev, p.Plan)
				if err != nil {
					res.fail(messages(f, err)...)
					continue
				}
				p.StateResets = resets
			}
		}
		plans[p.Name] = p
	}

	tctx, cancel := context.WithTimeout(ctx, TestTimeout)
	defer cancel()
	for _, f := range testFiles {
		tf, err := driver.ParseTestFile(f, files[f])
		if err != nil {
			res.fail(messages(f, err)...)
			continue
		}
		p, ok := plans[tf.Pipeline]
		if !ok {
			if file, b := broken[tf.Pipeline]; b {
				res.fail(fmt.Sprintf("%s: the tests of pipeline %q did not run: %s does not compile", f, tf.Pipeline, file))
			} else {
				res.fail(diag.Errorf(tf.PipelinePos, "no pipeline named %q under %s/", tf.Pipeline, Dir).Error())
			}
			continue
		}
		for _, c := range tf.Cases {
			if err := tctx.Err(); err != nil {
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				res.FailedTests++
				res.fail(fmt.Sprintf("FAIL %s: %s", c.Pos, c.Name), fmt.Sprintf("     not run: the tests of one push may take %s together", TestTimeout))
				continue
			}
			failures := driver.RunCase(tctx, p.Plan, c)
			if len(failures) == 0 {
				res.Passed++
				res.Lines = append(res.Lines, fmt.Sprintf("PASS %s: %s", c.Pos.File, c.Name))
				continue
			}
			res.FailedTests++
			res.fail(fmt.Sprintf("FAIL %s: %s", c.Pos, c.Name))
			for _, fl := range failures {
				res.Lines = append(res.Lines, "     "+strings.ReplaceAll(fl, "\n", "\n     "))
			}
		}
	}
	for _, p := range plans {
		res.Pipelines = append(res.Pipelines, *p)
	}
	sort.Slice(res.Pipelines, func(i, j int) bool { return res.Pipelines[i].Name < res.Pipelines[j].Name })
	if len(testFiles) > 0 {
		res.Lines = append(res.Lines, fmt.Sprintf("%d passed, %d failed", res.Passed, res.FailedTests))
	}
	return res, nil
}

func (r *Result) fail(lines ...string) {
	r.Failed = true
	r.Lines = append(r.Lines, lines...)
}

// hidden reports whether a path is in or is a dot-directory or dot-file,
// which `runner test` skips too.
func hidden(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if strings.HasPrefix(part, ".") {
			return true
		}
	}
	return false
}

// Compile compiles one pipeline file with the repository's files below its
// directory as side files, recording which ones it opened for the bundle.
// Errors are the compiler's (diag.List with positions).
func Compile(reg *catalog.Registry, files map[string][]byte, file string) (*Pipeline, error) {
	dir := path.Dir(file)
	below := map[string][]byte{}
	for p, data := range files {
		switch {
		case dir == ".":
			below[p] = data
		case strings.HasPrefix(p, dir+"/"):
			below[p[len(dir)+1:]] = data
		}
	}
	rec := &recordingFS{fsys: (&agentproto.Bundle{Files: below}).FS(), opened: map[string]bool{}}
	plan, err := (&pipeline.Compiler{Registry: reg, Files: rec}).Compile(file, files[file])
	if err != nil {
		return nil, err
	}
	base := path.Base(file)
	b := &agentproto.Bundle{Pipeline: plan.Name, Path: file, Files: map[string][]byte{base: files[file]}}
	var side []string
	for name := range rec.opened {
		if name == base {
			continue
		}
		b.Files[name] = below[name]
		side = append(side, path.Join(dir, name))
	}
	sort.Strings(side)
	data, digest, err := b.Encode()
	if err != nil {
		return nil, err
	}
	return &Pipeline{Name: plan.Name, Path: file, Plan: plan, Bundle: b, Data: data, Digest: digest, SideFiles: side}, nil
}

// recordingFS notes every file opened through it, so the bundle holds the
// side files the pipeline really uses and no others.
type recordingFS struct {
	fsys   fs.FS
	mu     sync.Mutex
	opened map[string]bool
}

func (r *recordingFS) Open(name string) (fs.File, error) {
	f, err := r.fsys.Open(name)
	if err == nil {
		if st, serr := f.Stat(); serr == nil && !st.IsDir() {
			r.mu.Lock()
			r.opened[name] = true
			r.mu.Unlock()
		}
	}
	return f, err
}

// messages turns a compile error into one line per diagnostic.
func messages(file string, err error) []string {
	var l diag.List
	if errors.As(err, &l) {
		out := make([]string, len(l))
		for i, e := range l {
			out[i] = e.Error()
		}
		return out
	}
	var e *diag.Error
	if errors.As(err, &e) {
		return []string{e.Error()}
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, file) {
		msg = file + ": " + msg
	}
	return []string{msg}
}

// nameOf finds the metadata.name of a file that did not compile, so that
// its tests can say why they did not run.
func nameOf(file string, data []byte) string {
	src, root, err := pipeline.ParseYAML(file, data)
	if err != nil {
		return ""
	}
	meta, _ := catalog.NewConfig(src, root).Get("metadata")
	if n, ok := meta.Get("name"); ok {
		return n.String()
	}
	return ""
}
