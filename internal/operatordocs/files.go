package operatordocs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Problem is a generated file that does not match what is on disk.
type Problem struct {
	Path string // slash-separated, relative to the docs directory
	Kind string // "missing", "stale" or "obsolete"
}

func (p Problem) String() string { return p.Kind + ": " + p.Path }

// Check compares generated files with the docs directory dir: files that are
// missing or differ, and pages under OperatorsDir that no operator generates
// any more. It returns the problems sorted by path; none means up to date.
func Check(dir string, files map[string][]byte) ([]Problem, error) {
	var out []Problem
	for _, p := range sortedPaths(files) {
		if !fs.ValidPath(p) {
			return nil, fmt.Errorf("generated path %q is not a clean relative path", p)
		}
		have, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			out = append(out, Problem{Path: p, Kind: "missing"})
		case err != nil:
			return nil, err
		case !bytes.Equal(have, files[p]):
			out = append(out, Problem{Path: p, Kind: "stale"})
		}
	}
	obsolete, err := obsoletePages(dir, files)
	if err != nil {
		return nil, err
	}
	for _, p := range obsolete {
		out = append(out, Problem{Path: p, Kind: "obsolete"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Write brings dir up to date with files: it writes the files that are
// missing or differ (leaving the others untouched) and removes obsolete
// operator pages. It returns what it changed.
func Write(dir string, files map[string][]byte) ([]Problem, error) {
	problems, err := Check(dir, files)
	if err != nil {
		return nil, err
	}
	for _, p := range problems {
		name := filepath.Join(dir, filepath.FromSlash(p.Path))
		if p.Kind == "obsolete" {
			if err := os.Remove(name); err != nil {
				return nil, err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(name, files[p.Path], 0o644); err != nil {
			return nil, err
		}
	}
	return problems, nil
}

// obsoletePages lists the Markdown files under OperatorsDir that files does
// not contain: pages of operators that were removed or renamed.
func obsoletePages(dir string, files map[string][]byte) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, OperatorsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		p := path.Join(OperatorsDir, e.Name())
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".md") && files[p] == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

func sortedPaths(files map[string][]byte) []string {
	out := make([]string, 0, len(files))
	for p := range files {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
