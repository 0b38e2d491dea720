package terraform

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The driver sets variables and reads outputs by name; the kubernetes and
// aws modules cannot be validated here (terraform validate needs their
// providers, which are downloaded), so this checks the contract from the
// HCL, parsed with hashicorp/hcl/v2: every variable the driver sets is declared, every required one is
// set by the driver or by the settings the module's README lists, every
// var.x a module uses is declared, and the output the driver reads exists.
func TestModulesDeclareWhatTheDriverUses(t *testing.T) {
	r := &Reconciler{cfg: Config{ControlPlaneURL: "https://cp.example", RunnerBinary: "/usr/bin/runner"}}
	// The settings a fleet of each module needs at least (see each README).
	settings := map[string]map[string]any{
		"local":      {"kafka_brokers": []any{"127.0.0.1:9092"}},
		"kubernetes": {"kafka_brokers": []any{"kafka:9092"}},
		"aws":        {"kafka_brokers": []any{"b-1.msk:9094"}, "vpc_id": "vpc-1", "subnet_ids": []any{"subnet-1"}},
	}
	for _, name := range Modules {
		t.Run(name, func(t *testing.T) {
			spec := readModuleHCL(t, moduleFS, "modules/"+name)
			ru := run{FleetID: uuid.New(), FleetName: "edge", Module: name, Runners: 2, RunnerVersion: "1.2.3", Settings: settings[name]}
			in, err := r.inputs(ru, &Workspace{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range append(slices.Collect(mapKeys(in.Vars)), secretVariables...) {
				if _, ok := spec.Variables[v]; !ok {
					t.Errorf("the driver sets %s, which the module does not declare", v)
				}
			}
			for v, required := range spec.Variables {
				if _, set := in.Vars[v]; required && !set {
					t.Errorf("required variable %s is not set by the driver or the minimal settings", v)
				}
			}
			// The parse finds what every module must use: guards against a
			// reader that finds nothing and so passes everything.
			for _, v := range []string{"control_plane_url", "bootstrap_token", "runner_count"} {
				if !slices.Contains(spec.References, v) {
					t.Errorf("the module never uses var.%s (references found: %v)", v, spec.References)
				}
			}
			for _, ref := range spec.References {
				if _, ok := spec.Variables[ref]; !ok {
					t.Errorf("the module uses var.%s, which it does not declare", ref)
				}
			}
			if !slices.Contains(spec.Outputs, "runner_count") {
				t.Errorf("no output runner_count (the driver reads it after apply); outputs: %v", spec.Outputs)
			}
			if _, err := os.Stat(filepath.Join("modules", name, "README.md")); err != nil {
				t.Errorf("no README: %v", err)
			}
			// Prepare accepts the inputs (the root module is generated).
			if err := (&Workspace{Dir: t.TempDir()}).Prepare(in); err != nil {
				t.Errorf("prepare: %v", err)
			}
		})
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// A setting the module does not declare, or one the control plane owns,
// fails the run saying which, as needing a person.
func TestSettingsAreChecked(t *testing.T) {
	r := &Reconciler{cfg: Config{ControlPlaneURL: "https://cp.example", RunnerBinary: "/usr/bin/runner"}}
	ru := run{FleetID: uuid.New(), FleetName: "edge", Module: "local", Runners: 1, Settings: map[string]any{"kafka_brokers": []any{"k:9092"}, "kafka_brokerz": "x"}}
	in, err := r.inputs(ru, &Workspace{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	err = (&Workspace{Dir: t.TempDir()}).Prepare(in)
	if KindOf(err) != NeedsHuman || !strings.Contains(err.Error(), "unknown settings: kafka_brokerz") {
		t.Errorf("unknown setting: %v (%s)", err, KindOf(err))
	}
	ru.Settings = map[string]any{"runner_binary": "/bin/sh"}
	if _, err := r.inputs(ru, &Workspace{Dir: t.TempDir()}); KindOf(err) != NeedsHuman || !strings.Contains(err.Error(), "runner_binary") {
		t.Errorf("control-plane setting: %v", err)
	}
}

// Real terraform: every module is fmt-clean (ReadModule's scan relies on
// it) and the local module validates (it needs no
// provider download; kubernetes and aws do, so they cannot be validated
// offline). Without terraform this fails: run `make setup`.
func TestModulesFormatAndValidate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := FindBinary(ctx, "", filepath.Join("..", "..", ".tools", "bin"))
	if err != nil {
		t.Fatalf("%v (run `make setup`)", err)
	}
	env := append(os.Environ(), "CHECKPOINT_DISABLE=1")
	run := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin.Path, args...)
		cmd.Dir, cmd.Env = dir, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s %s in %s: %v\n%s", bin.Name, strings.Join(args, " "), dir, err, out)
		}
	}
	run("modules", "fmt", "-check", "-recursive", "-diff")
	dir := t.TempDir()
	if err := writeModule(dir, "local"); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(dir, "modules", "local")
	run(local, "init", "-backend=false", "-input=false")
	run(local, "validate")
}
