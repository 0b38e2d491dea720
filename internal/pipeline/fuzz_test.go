package pipeline_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/internal/pipeline"
)

// seeds adds every pipeline under testdata and examples to the corpus, so
// the seed run in `make test` covers valid and broken files alike.
func seeds(f *testing.F) {
	for _, glob := range []string{"testdata/errors/*.yaml", "../../examples/*/*.yaml"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				f.Add(data)
			}
		}
	}
	f.Add([]byte("a: [1, {b: &x c}, *x]"))
	f.Add([]byte("spec: {steps: [{filter: '1 ?? '}]}"))
	f.Add([]byte("- - - !!binary 'x'"))
}

// FuzzParse: no input may panic the YAML layer.
func FuzzParse(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = pipeline.ParseYAML("fuzz.yaml", data)
	})
}

// FuzzCompile: no input may panic the compiler; every failure is an error.
func FuzzCompile(f *testing.F) {
	seeds(f)
	reg := all.New()
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &pipeline.Compiler{Registry: reg}
		p, err := c.Compile("fuzz.yaml", data)
		if err == nil && p == nil {
			t.Fatal("no plan and no error")
		}
		if err != nil && err.Error() == "" {
			t.Fatal("empty error message")
		}
	})
}
