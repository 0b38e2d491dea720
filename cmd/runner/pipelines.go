package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/diag"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/runtime"
)

// pipelineFile is one pipeline file under --pipelines and the last
// revision of it that compiled.
type pipelineFile struct {
	hash string            // sha256 of the bytes last read
	good *runtime.Pipeline // last revision that compiled; nil if none has
}

// pipelineDir tracks the pipeline files of a directory. scan rereads it and
// recompiles what changed; a file that stops compiling keeps its last good
// revision, so a half-saved edit never stops a running pipeline.
type pipelineDir struct {
	dir   string
	reg   *catalog.Registry
	files map[string]*pipelineFile
	// supported refuses plans the runtime cannot run (runtime.CheckPlan).
	supported func(*pipeline.Plan) error
}

// fileError is why one file's latest content is not running.
type fileError struct {
	file string
	err  error
}

// messages splits err into one line per diagnostic, each file:line:col:
// message when the position is known.
func (fe fileError) messages() []string {
	var l diag.List
	if errors.As(fe.err, &l) {
		out := make([]string, len(l))
		for i, e := range l {
			out[i] = e.Error()
		}
		return out
	}
	var e *diag.Error
	if errors.As(fe.err, &e) {
		return []string{e.Error()}
	}
	msg := fe.err.Error()
	if !strings.HasPrefix(msg, fe.file) {
		msg = fe.file + ": " + msg
	}
	return []string{msg}
}

func newPipelineDir(dir string, reg *catalog.Registry) *pipelineDir {
	return &pipelineDir{dir: dir, reg: reg, files: map[string]*pipelineFile{}, supported: runtime.CheckPlan}
}

// discoverPipelines lists the pipeline files under dir as `runner test`
// does: *.yaml and *.yml except *_test.yaml, skipping hidden directories.
func discoverPipelines(dir string) ([]string, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	var out []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && path != dir {
				return filepath.SkipDir
			}
			return nil
		}
		base := d.Name()
		switch {
		case strings.HasPrefix(base, "."): // editor swap and backup files
		case strings.HasSuffix(base, "_test.yaml"), strings.HasSuffix(base, "_test.yml"):
		case strings.HasSuffix(base, ".yaml"), strings.HasSuffix(base, ".yml"):
			out = append(out, path)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// revision names a file's content: the short hex of its sha256.
func revision(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:12]
}

// scan rereads the directory. It returns whether the set of good revisions
// changed, and the errors of files whose new content did not compile or
// cannot take over the running revision's state (their previous revision,
// if any, stays). resets names the state stores that the new revisions
// start from empty (`reset: true`, or a stateful step removed). err is for
// an unreadable directory.
func (d *pipelineDir) scan() (changed bool, errs []fileError, resets []string, err error) {
	files, err := discoverPipelines(d.dir)
	if err != nil {
		return false, nil, nil, err
	}
	present := map[string]bool{}
	for _, f := range files {
		present[f] = true
	}
	// Deletions first, so a pipeline moved to another file is not a
	// duplicate of itself.
	for f, pf := range d.files {
		if !present[f] {
			delete(d.files, f)
			changed = changed || pf.good != nil
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // deleted since the walk
				if pf, ok := d.files[f]; ok {
					delete(d.files, f)
					changed = changed || pf.good != nil
				}
				continue
			}
			errs = append(errs, fileError{file: f, err: err})
			continue
		}
		rev := revision(data)
		pf, ok := d.files[f]
		if !ok {
			pf = &pipelineFile{}
			d.files[f] = pf
		}
		if pf.hash == rev {
			continue
		}
		pf.hash = rev
		c := &pipeline.Compiler{Registry: d.reg, Files: os.DirFS(filepath.Dir(f))}
		plan, err := c.Compile(f, data)
		if err != nil {
			errs = append(errs, fileError{file: f, err: err})
			continue
		}
		if err := d.supported(plan); err != nil {
			errs = append(errs, fileError{file: f, err: err})
			continue
		}
		if other := d.definedElsewhere(plan.Name, f); other != "" {
			errs = append(errs, fileError{file: f, err: fmt.Errorf("%s: pipeline %q is also defined in %s", f, plan.Name, other)})
			continue
		}
		if pf.good != nil {
			rs, err := pipeline.CheckState(pf.good.Plan, plan)
			if err != nil {
				errs = append(errs, fileError{file: f, err: err})
				continue
			}
			for _, r := range rs {
				resets = append(resets, fmt.Sprintf("pipeline %s: the state of step %s starts empty (%s)", plan.Name, r.Step, r.Reason))
			}
		}
		pf.good = &runtime.Pipeline{Plan: plan, Revision: rev}
		changed = true
	}
	return changed, errs, resets, nil
}

func (d *pipelineDir) definedElsewhere(name, file string) string {
	for f, pf := range d.files {
		if f != file && pf.good != nil && pf.good.Plan.Name == name {
			return f
		}
	}
	return ""
}

// desired is every pipeline with a good revision, sorted by name.
func (d *pipelineDir) desired() []runtime.Pipeline {
	var out []runtime.Pipeline
	for _, pf := range d.files {
		if pf.good != nil {
			out = append(out, *pf.good)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Plan.Name < out[j].Plan.Name })
	return out
}

// summary is the one line printed when a pipeline (re)starts:
// "pipeline X (rev abc123): in -> out, exactly-once".
func summary(p runtime.Pipeline) string {
	plan := p.Plan
	repart := map[string]bool{plan.DLQ: true}
	for _, st := range plan.Stages {
		if st.Repartition != nil {
			repart[st.Repartition.Topic] = true
		}
	}
	var outs []string
	for _, t := range plan.Topics() {
		if !repart[t] {
			outs = append(outs, t)
		}
	}
	return fmt.Sprintf("pipeline %s (rev %s): %s -> %s, %s", plan.Name, p.Revision, plan.Source.Topic, strings.Join(outs, " + "), plan.Delivery)
}
