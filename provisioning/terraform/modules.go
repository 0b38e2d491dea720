package terraform

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// moduleFS holds the HCL modules, copied into each fleet's working
// directory so that a control plane plans with the modules it was built
// with.
//
//go:embed all:modules
var moduleFS embed.FS

// Modules are the targets a fleet can be provisioned on.
var Modules = []string{"local", "kubernetes", "aws"}

// ModuleSpec is what a module declares, read from its HCL.
type ModuleSpec struct {
	// Variables maps each variable to whether it is required (has no
	// default).
	Variables map[string]bool
	Outputs   []string
	// References are the variables the module's expressions use (var.x).
	References []string
}

var (
	blockRE = regexp.MustCompile(`^(variable|output) "([A-Za-z0-9_-]+)" \{`)
	defRE   = regexp.MustCompile(`^  default\s+=`)
	refRE   = regexp.MustCompile(`\bvar\.([A-Za-z0-9_]+)`)
)

// ReadModule reads the variables and outputs a module declares. Module
// files are `terraform fmt`-clean (a test checks it), so top-level blocks
// start at column 0 and their attributes at column 2: a line scanner is
// enough, without an HCL parser.
func ReadModule(name string) (ModuleSpec, error) {
	if !slices.Contains(Modules, name) {
		return ModuleSpec{}, fmt.Errorf("no module %q: use one of %s", name, strings.Join(Modules, ", "))
	}
	return readModule(moduleFS, "modules/"+name)
}

func readModule(fsys fs.FS, dir string) (ModuleSpec, error) {
	spec := ModuleSpec{Variables: map[string]bool{}}
	files, err := fs.Glob(fsys, dir+"/*.tf")
	if err != nil {
		return spec, err
	}
	if len(files) == 0 {
		return spec, fmt.Errorf("module %s has no .tf files", dir)
	}
	refs := map[string]bool{}
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return spec, err
		}
		var kind, name string
		for line := range strings.Lines(string(b)) {
			line = strings.TrimRight(line, "\n")
			for _, m := range refRE.FindAllStringSubmatch(line, -1) {
				refs[m[1]] = true
			}
			if m := blockRE.FindStringSubmatch(line); m != nil {
				kind, name = m[1], m[2]
				if kind == "variable" {
					spec.Variables[name] = true
				} else {
					spec.Outputs = append(spec.Outputs, name)
				}
				continue
			}
			if line == "}" {
				kind = ""
				continue
			}
			if kind == "variable" && defRE.MatchString(line) {
				spec.Variables[name] = false
			}
		}
	}
	for r := range refs {
		spec.References = append(spec.References, r)
	}
	slices.Sort(spec.References)
	slices.Sort(spec.Outputs)
	return spec, nil
}

// writeModule copies module name into dir/modules/name, replacing what was
// there, with the scripts executable.
func writeModule(dir, name string) error {
	dst := filepath.Join(dir, "modules", name)
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	root := "modules/" + name
	return fs.WalkDir(moduleFS, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dst, filepath.FromSlash(strings.TrimPrefix(p, root)))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := moduleFS.ReadFile(p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, ".sh") {
			mode = 0o755
		}
		return os.WriteFile(target, b, mode)
	})
}
