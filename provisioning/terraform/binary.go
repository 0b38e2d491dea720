package terraform

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"
)

// Binary is the terraform (or OpenTofu) executable the driver runs.
type Binary struct {
	Path string `json:"path"`
	// Name is terraform or tofu.
	Name    string `json:"name"`
	Version string `json:"version"`
}

func (b Binary) String() string { return b.Name + " " + b.Version + " (" + b.Path + ")" }

// ErrNoBinary: neither terraform nor tofu was found.
var ErrNoBinary = errors.New("no terraform or tofu binary on PATH or in .tools/bin: run `make setup`, which installs a pinned terraform")

// FindBinary finds the executable to use: path when it is given, else
// terraform, then tofu, on PATH, then in each of dirs (e.g. .tools/bin).
// It runs `version` to say which version it found.
func FindBinary(ctx context.Context, path string, dirs ...string) (Binary, error) {
	var candidates []string
	if path != "" {
		candidates = []string{path}
	} else {
		for _, name := range []string{"terraform", "tofu"} {
			if p, err := exec.LookPath(name); err == nil {
				candidates = append(candidates, p)
			}
		}
		for _, d := range dirs {
			for _, name := range []string{"terraform", "tofu"} {
				candidates = append(candidates, filepath.Join(d, name))
			}
		}
	}
	for _, c := range candidates {
		if st, err := os.Stat(c); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			continue
		}
		abs, err := filepath.Abs(c)
		if err != nil {
			return Binary{}, err
		}
		b := Binary{Path: abs, Name: strings.TrimSuffix(filepath.Base(abs), filepath.Ext(abs))}
		if b.Name != "tofu" {
			b.Name = "terraform"
		}
		tf, err := tfexec.NewTerraform(os.TempDir(), abs)
		if err != nil {
			return Binary{}, err
		}
		vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		v, _, err := tf.Version(vctx, true)
		cancel()
		if err != nil {
			return Binary{}, fmt.Errorf("%s version: %w", abs, err)
		}
		b.Version = v.String()
		return b, nil
	}
	if path != "" {
		return Binary{}, fmt.Errorf("terraform binary %s: not an executable file", path)
	}
	return Binary{}, ErrNoBinary
}
