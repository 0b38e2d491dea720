package terraform

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
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

// ReadModule reads the variables and outputs a module declares, and the
// variables its expressions use, by parsing its HCL (hashicorp/hcl/v2):
// the kubernetes and aws modules cannot be `terraform validate`d offline,
// so this is how their contract with the driver is checked.
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
		file, diags := hclsyntax.ParseConfig(b, f, hcl.InitialPos)
		if diags.HasErrors() {
			return spec, fmt.Errorf("module %s: %w", dir, diags)
		}
		body := file.Body.(*hclsyntax.Body)
		for _, blk := range body.Blocks {
			if len(blk.Labels) != 1 {
				continue
			}
			switch blk.Type {
			case "variable":
				_, hasDefault := blk.Body.Attributes["default"]
				spec.Variables[blk.Labels[0]] = !hasDefault
			case "output":
				spec.Outputs = append(spec.Outputs, blk.Labels[0])
			}
		}
		diags = hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
			if e, ok := n.(*hclsyntax.ScopeTraversalExpr); ok && e.Traversal.RootName() == "var" && len(e.Traversal) > 1 {
				if a, ok := e.Traversal[1].(hcl.TraverseAttr); ok {
					refs[a.Name] = true
				}
			}
			return nil
		})
		if diags.HasErrors() {
			return spec, fmt.Errorf("module %s: %w", dir, diags)
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
