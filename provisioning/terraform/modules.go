package terraform

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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

// ModuleSpec is what a module declares: the contract between a module and
// the driver that sets its variables and reads its outputs.
type ModuleSpec struct {
	// Variables maps each variable to whether it is required (has no
	// default).
	Variables map[string]bool
	Outputs   []string
}

// ReadModule reads the variables and outputs a module declares.
//
// It scans the module's files rather than parsing HCL, so that the control
// plane does not link an HCL parser (about 1 MiB of its resident memory)
// to read a few declarations from files it was built with. The scan relies
// on `terraform fmt` layout (blocks at column 0, a block's attributes
// indented by two spaces); TestModulesFormatAndValidate keeps the modules
// fmt-clean and TestScanAgreesWithHCL checks the scan against
// hashicorp/hcl/v2 for every module.
func ReadModule(name string) (ModuleSpec, error) {
	if !slices.Contains(Modules, name) {
		return ModuleSpec{}, fmt.Errorf("no module %q: use one of %s", name, strings.Join(Modules, ", "))
	}
	return scanModule(moduleFS, "modules/"+name)
}

func scanModule(fsys fs.FS, dir string) (ModuleSpec, error) {
	spec := ModuleSpec{Variables: map[string]bool{}}
	files, err := fs.Glob(fsys, dir+"/*.tf")
	if err != nil {
		return spec, err
	}
	if len(files) == 0 {
		return spec, fmt.Errorf("module %s has no .tf files", dir)
	}
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return spec, err
		}
		variable := "" // the variable block the scan is in, if any
		for n, line := range strings.Split(string(b), "\n") {
			switch {
			case line == "}":
				variable = ""
			case strings.HasPrefix(line, "variable ") || strings.HasPrefix(line, "output "):
				kind, rest, _ := strings.Cut(line, " ")
				label, ok := strings.CutSuffix(rest, " {")
				if !ok || len(label) < 3 || label[0] != '"' || label[len(label)-1] != '"' {
					return spec, fmt.Errorf("%s:%d: %s block not in `terraform fmt` layout: %q", f, n+1, kind, line)
				}
				label = label[1 : len(label)-1]
				if kind == "output" {
					spec.Outputs = append(spec.Outputs, label)
					continue
				}
				variable = label
				spec.Variables[variable] = true
			case variable != "" && strings.HasPrefix(line, "  default "):
				spec.Variables[variable] = false
			}
		}
	}
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
