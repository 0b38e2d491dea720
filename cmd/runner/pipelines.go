package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

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
	// skipped maps the paths the last scan did not read (a FIFO, a
	// device, a symlink out of the directory) to why; newSkips reports
	// each once.
	skipped  map[string]string
	reported map[string]string
	// read reads a listed file (readPipelineFile; tests hold it up).
	read func(path string) ([]byte, error)
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
	return &pipelineDir{dir: dir, reg: reg, files: map[string]*pipelineFile{}, supported: runtime.CheckPlan,
		skipped: map[string]string{}, reported: map[string]string{}, read: readPipelineFile}
}

// newSkips returns "path: reason" for each path the last scan skipped that
// was not reported for that reason before.
func (d *pipelineDir) newSkips() []string {
	var out []string
	for p, why := range d.skipped {
		if d.reported[p] != why {
			out = append(out, p+": "+why)
		}
	}
	d.reported = maps.Clone(d.skipped)
	sort.Strings(out)
	return out
}

// discoverPipelines lists the pipeline files under dir as `runner test`
// does: *.yaml and *.yml except *_test.yaml, skipping hidden directories.
// Only regular files are pipelines: a FIFO would block the reader, a
// device could be endless, and a symbolic link is followed only to a
// regular file inside dir, so a link cannot make the runner read (and log
// the content of) a file elsewhere. skipped says why each other candidate
// was left out.
func discoverPipelines(dir string) (files []string, skipped map[string]string, err error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, nil, err
	}
	if !info.IsDir() {
		return nil, nil, fmt.Errorf("%s is not a directory", dir)
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, nil, err
	}
	if root, err = filepath.Abs(root); err != nil {
		return nil, nil, err
	}
	skipped = map[string]string{}
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
			if why := notRegular(root, path, d.Type()); why != "" {
				skipped[path] = why
				return nil
			}
			out = append(out, path)
		}
		return nil
	})
	sort.Strings(out)
	return out, skipped, err
}

// notRegular says why path, of type typ (not followed), is not read as a
// pipeline file, or "" when it is: a regular file, or a symbolic link to
// a regular file inside root (dir with its links resolved, absolute).
func notRegular(root, path string, typ fs.FileMode) string {
	if typ&fs.ModeSymlink != 0 {
		target, err := filepath.EvalSymlinks(path)
		if err != nil {
			return "symbolic link that does not resolve: " + err.Error()
		}
		if target, err = filepath.Abs(target); err != nil {
			return err.Error()
		}
		if rel, err := filepath.Rel(root, target); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return "symbolic link to " + target + ", outside the pipelines directory"
		}
		fi, err := os.Stat(target)
		if err != nil {
			return err.Error()
		}
		typ = fi.Mode().Type()
	}
	if typ.IsRegular() {
		return ""
	}
	return "not a regular file (" + fileKind(typ) + ")"
}

func fileKind(typ fs.FileMode) string {
	switch {
	case typ&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case typ&fs.ModeCharDevice != 0:
		return "a character device"
	case typ&fs.ModeDevice != 0:
		return "a device"
	case typ&fs.ModeSocket != 0:
		return "a socket"
	case typ.IsDir():
		return "a directory"
	}
	return typ.String()
}

// readPipelineFile reads a file discoverPipelines listed. The file may have
// been replaced since: it is opened without blocking (a FIFO put in its
// place would otherwise wait for a writer), checked to be a regular file,
// and read up to the compiler's size limit.
func readPipelineFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s); skipped", path, fileKind(fi.Mode().Type()))
	}
	if fi.Size() > pipeline.MaxFileBytes {
		return nil, fmt.Errorf("%s: file is %d bytes, over the limit of %d (1 MiB); split it into several files", path, fi.Size(), pipeline.MaxFileBytes)
	}
	// The size may grow after the Stat: read one byte past the limit, so
	// the compiler sees a file that is too big and says so.
	return io.ReadAll(io.LimitReader(f, pipeline.MaxFileBytes+1))
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
	files, skipped, err := discoverPipelines(d.dir)
	if err != nil {
		return false, nil, nil, err
	}
	d.skipped = skipped
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
		data, err := d.read(f)
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
