package terraform

import (
	"io/fs"
	"maps"
	"slices"
	"testing"
	"testing/fstest"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// hclSpec is what a module declares and uses, read with hashicorp/hcl/v2:
// the reference the control plane's scan is checked against.
type hclSpec struct {
	ModuleSpec
	// References are the variables the module's expressions use (var.x).
	References []string
}

func readModuleHCL(t *testing.T, fsys fs.FS, dir string) hclSpec {
	t.Helper()
	spec := hclSpec{ModuleSpec: ModuleSpec{Variables: map[string]bool{}}}
	files, err := fs.Glob(fsys, dir+"/*.tf")
	if err != nil || len(files) == 0 {
		t.Fatalf("module %s: no .tf files (%v)", dir, err)
	}
	refs := map[string]bool{}
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			t.Fatal(err)
		}
		file, diags := hclsyntax.ParseConfig(b, f, hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatalf("module %s: %v", dir, diags)
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
		hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
			if e, ok := n.(*hclsyntax.ScopeTraversalExpr); ok && e.Traversal.RootName() == "var" && len(e.Traversal) > 1 {
				if a, ok := e.Traversal[1].(hcl.TraverseAttr); ok {
					refs[a.Name] = true
				}
			}
			return nil
		})
	}
	spec.References = slices.Sorted(maps.Keys(refs))
	slices.Sort(spec.Outputs)
	return spec
}

// The control plane scans the modules instead of parsing them; for every
// module the scan must find exactly what the HCL parser finds.
func TestScanAgreesWithHCL(t *testing.T) {
	for _, name := range Modules {
		t.Run(name, func(t *testing.T) {
			scanned, err := ReadModule(name)
			if err != nil {
				t.Fatal(err)
			}
			parsed := readModuleHCL(t, moduleFS, "modules/"+name)
			if len(parsed.Variables) < 5 || len(parsed.Outputs) == 0 {
				t.Fatalf("the HCL reader found %d variables and outputs %v: it reads nothing", len(parsed.Variables), parsed.Outputs)
			}
			if !maps.Equal(scanned.Variables, parsed.Variables) {
				t.Errorf("variables (name: required):\nscan %v\nHCL  %v", scanned.Variables, parsed.Variables)
			}
			if !slices.Equal(scanned.Outputs, parsed.Outputs) {
				t.Errorf("outputs: scan %v, HCL %v", scanned.Outputs, parsed.Outputs)
			}
		})
	}
}

// The scan refuses what it cannot read rather than missing a declaration.
func TestScanRefusesUnformattedBlocks(t *testing.T) {
	for _, src := range []string{
		"variable \"a\"{\n}\n",
		"variable a {\n}\n",
		"output \"x\" { value = 1 }\n",
	} {
		fsys := fstest.MapFS{"m/main.tf": {Data: []byte(src)}}
		if _, err := scanModule(fsys, "m"); err == nil {
			t.Errorf("scan of %q: no error", src)
		}
	}
	fsys := fstest.MapFS{"m/main.tf": {Data: []byte("variable \"a\" {\n  type = object({\n    default = string\n  })\n}\n\nvariable \"b\" {\n  default = 1\n}\n")}}
	spec, err := scanModule(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]bool{"a": true, "b": false}; !maps.Equal(spec.Variables, want) {
		t.Errorf("variables %v, want %v (a nested `default` is not the variable's)", spec.Variables, want)
	}
}
