package terraform

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/terraform-exec/tfexec"
	tfjson "github.com/hashicorp/terraform-json"
)

// secretVariables are the module variables that are sensitive: they are
// passed through a var file that lives only for the plan, never in the
// root module or on a command line.
var secretVariables = []string{"bootstrap_token", "kafka_sasl_password"}

// Workspace is one fleet's working directory: the root module that calls
// the fleet's module, the module itself, saved plans and (for the local
// module) the runners' directories. State is not here: it is in the pg
// backend, schema Schema of the control plane's database.
type Workspace struct {
	Dir    string
	Binary Binary
	// ConnStr is the pg backend's connection string, given to terraform as
	// PG_CONN_STR so that it is in no file.
	ConnStr string
	Schema  string
}

// Inputs are a plan's module and variables.
type Inputs struct {
	Module string
	// Vars are the module's non-secret variables.
	Vars map[string]any
	// Secrets are its sensitive variables (bootstrap_token, ...).
	Secrets map[string]string
}

// Prepare writes the module and the root module for in. It checks that
// every variable is one the module declares and that every required one
// is set, so that a typo in a fleet's settings fails with its name.
func (w *Workspace) Prepare(in Inputs) error {
	spec, err := ReadModule(in.Module)
	if err != nil {
		return needsHuman("prepare", "", err)
	}
	var unknown, missing []string
	for k := range in.Vars {
		if _, ok := spec.Variables[k]; !ok || slices.Contains(secretVariables, k) {
			unknown = append(unknown, k)
		}
	}
	for k, required := range spec.Variables {
		_, set := in.Vars[k]
		if required && !set && !slices.Contains(secretVariables, k) {
			missing = append(missing, k)
		}
	}
	sort.Strings(unknown)
	sort.Strings(missing)
	if len(unknown) > 0 || len(missing) > 0 {
		var parts []string
		if len(unknown) > 0 {
			parts = append(parts, "unknown settings: "+strings.Join(unknown, ", "))
		}
		if len(missing) > 0 {
			parts = append(parts, "missing settings: "+strings.Join(missing, ", "))
		}
		return needsHuman("prepare", "change the fleet's settings; the "+in.Module+" module is described in provisioning/terraform/modules/"+in.Module+"/README.md",
			errors.New(strings.Join(parts, "; ")))
	}
	if err := os.MkdirAll(w.Dir, 0o700); err != nil {
		return retry("prepare", err)
	}
	if err := writeModule(w.Dir, in.Module); err != nil {
		return retry("prepare", err)
	}
	args := map[string]any{"source": "./modules/" + in.Module}
	for k, v := range in.Vars {
		args[k] = escapeTemplates(v)
	}
	variables := map[string]any{}
	for _, k := range secretVariables {
		if _, ok := spec.Variables[k]; ok {
			variables[k] = map[string]any{"type": "string", "sensitive": true, "default": ""}
			args[k] = "${var." + k + "}"
		}
	}
	outputs := map[string]any{}
	for _, o := range spec.Outputs {
		outputs[o] = map[string]any{"value": "${module.fleet." + o + "}"}
	}
	root := map[string]any{
		"terraform": map[string]any{"backend": map[string]any{"pg": map[string]any{}}},
		"variable":  variables,
		"module":    map[string]any{"fleet": args},
		"output":    outputs,
	}
	b, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		return needsHuman("prepare", "", err)
	}
	if err := os.WriteFile(filepath.Join(w.Dir, "main.tf.json"), b, 0o600); err != nil {
		return retry("prepare", err)
	}
	return nil
}

// escapeTemplates makes string values literal in Terraform's JSON syntax,
// where strings are templates: a setting cannot inject an expression.
func escapeTemplates(v any) any {
	switch x := v.(type) {
	case string:
		return strings.NewReplacer("${", "$${", "%{", "%%{").Replace(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = escapeTemplates(e)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = escapeTemplates(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = escapeTemplates(e)
		}
		return out
	}
	return v
}

// terraform returns a terraform-exec handle on the workspace writing its
// output to log. The environment is this process's without what
// terraform-exec manages, plus the backend's connection string.
func (w *Workspace) terraform(ctx context.Context, log io.Writer) (*tfexec.Terraform, error) {
	if w.Binary.Path == "" {
		return nil, needsHuman("prepare", "", ErrNoBinary)
	}
	tf, err := tfexec.NewTerraform(w.Dir, w.Binary.Path)
	if err != nil {
		return nil, needsHuman("prepare", "", err)
	}
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	env = tfexec.CleanEnv(env)
	// A CLI configuration file that does not exist only adds a warning to
	// every command.
	if p := env["TF_CLI_CONFIG_FILE"]; p != "" {
		if _, err := os.Stat(p); err != nil {
			delete(env, "TF_CLI_CONFIG_FILE")
		}
	}
	env["CHECKPOINT_DISABLE"] = "1"
	env["PG_CONN_STR"] = w.ConnStr
	if err := tf.SetEnv(env); err != nil {
		return nil, needsHuman("prepare", "", err)
	}
	// terraform-exec checks the version before most commands; ask now,
	// with the answer cached, so that it does not land in the log.
	if _, _, err := tf.Version(ctx, false); err != nil {
		return nil, classify(ctx, "prepare", NeedsHuman, "", err)
	}
	tf.SetStdout(log)
	tf.SetStderr(log)
	return tf, nil
}

// Init initialises the workspace with the pg backend in schema Schema
// (terraform creates it).
func (w *Workspace) Init(ctx context.Context, log io.Writer) error {
	tf, err := w.terraform(ctx, log)
	if err != nil {
		return err
	}
	err = tf.Init(ctx, tfexec.BackendConfig("schema_name="+w.Schema), tfexec.Reconfigure(true), tfexec.Upgrade(false))
	return classify(ctx, "init", Retry, "check that the control plane's database is reachable and plan again", err)
}

// Plan writes a plan to planFile (relative to Dir): a destroy plan when
// destroy is set. secrets live in a var file only while terraform plans;
// the saved plan holds them, so it is written readable by its owner only.
// Messages stream to log as lines.
func (w *Workspace) Plan(ctx context.Context, planFile string, destroy bool, secrets map[string]string, log io.Writer) (Summary, error) {
	tf, err := w.terraform(ctx, log)
	if err != nil {
		return Summary{}, err
	}
	opts := []tfexec.PlanOption{tfexec.Out(planFile), tfexec.Destroy(destroy)}
	if len(secrets) > 0 {
		f, err := os.CreateTemp(w.Dir, ".secrets-*.tfvars.json")
		if err != nil {
			return Summary{}, retry("plan", err)
		}
		defer os.Remove(f.Name())
		err = json.NewEncoder(f).Encode(secrets)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return Summary{}, retry("plan", err)
		}
		opts = append(opts, tfexec.VarFile(f.Name()))
	}
	ui := newUIWriter(log, nil)
	_, err = tf.PlanJSON(ctx, ui, opts...)
	ui.Close()
	if err != nil {
		return Summary{}, classify(ctx, "plan", NeedsHuman, "read the run's log, fix the fleet's settings and plan again", ui.wrap(err))
	}
	_ = os.Chmod(filepath.Join(w.Dir, planFile), 0o600)
	tf.SetStdout(io.Discard)
	plan, err := tf.ShowPlanFile(ctx, planFile)
	if err != nil {
		return Summary{}, classify(ctx, "show", Retry, "", err)
	}
	return Summarize(plan), nil
}

// Digest is the SHA-256 of the saved plan file, recorded when it is
// reviewed and checked before it is applied.
func (w *Workspace) Digest(planFile string) (string, error) {
	b, err := os.ReadFile(filepath.Join(w.Dir, planFile))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Apply applies exactly the saved plan planFile, whose digest must be
// digest: a plan that changed on disk since it was reviewed is refused.
// progress gets each resource as it completes.
func (w *Workspace) Apply(ctx context.Context, planFile, digest string, log io.Writer, progress func(Event)) error {
	got, err := w.Digest(planFile)
	if err != nil {
		return needsHuman("apply", "the reviewed plan is gone from this control plane's disk; plan again", err)
	}
	if got != digest {
		return needsHuman("apply", "plan again and review the new plan", fmt.Errorf("the plan file changed since it was reviewed (sha256 %s, reviewed %s)", got, digest))
	}
	tf, err := w.terraform(ctx, log)
	if err != nil {
		return err
	}
	ui := newUIWriter(log, progress)
	err = tf.ApplyJSON(ctx, ui, tfexec.DirOrPlan(planFile))
	ui.Close()
	return classify(ctx, "apply", NeedsHuman, "read the run's log; fix the cause (settings, the target) and plan again", ui.wrap(err))
}

// Resources counts the managed resources in the fleet's state.
func (w *Workspace) Resources(ctx context.Context) (int, error) {
	tf, err := w.terraform(ctx, io.Discard)
	if err != nil {
		return 0, err
	}
	st, err := tf.Show(ctx)
	if err != nil {
		return 0, classify(ctx, "show", Retry, "", err)
	}
	if st.Values == nil {
		return 0, nil
	}
	var count func(m *tfjson.StateModule) int
	count = func(m *tfjson.StateModule) int {
		if m == nil {
			return 0
		}
		n := 0
		for _, r := range m.Resources {
			if r.Mode == tfjson.ManagedResourceMode {
				n++
			}
		}
		for _, c := range m.ChildModules {
			n += count(c)
		}
		return n
	}
	return count(st.Values.RootModule), nil
}

// Outputs reads the root module's outputs (the fleet module's, passed
// through) after an apply.
func (w *Workspace) Outputs(ctx context.Context) (map[string]json.RawMessage, error) {
	tf, err := w.terraform(ctx, io.Discard)
	if err != nil {
		return nil, err
	}
	out, err := tf.Output(ctx)
	if err != nil {
		return nil, classify(ctx, "output", Retry, "", err)
	}
	m := make(map[string]json.RawMessage, len(out))
	for k, v := range out {
		m[k] = v.Value
	}
	return m, nil
}

// Event is one message of terraform's machine-readable UI that matters for
// progress: a resource finished (or failed) applying.
type Event struct {
	Type     string // apply_complete, apply_errored
	Resource string
	Action   string
}

// uiWriter turns terraform's -json UI stream into log lines (the human
// message, with the detail of error diagnostics) and progress events, and
// keeps the error diagnostics for the run's error.
type uiWriter struct {
	pw       *io.PipeWriter
	done     chan struct{}
	mu       sync.Mutex
	errors   []string
	log      io.Writer
	progress func(Event)
}

func newUIWriter(log io.Writer, progress func(Event)) *uiWriter {
	pr, pw := io.Pipe()
	u := &uiWriter{pw: pw, done: make(chan struct{}), log: log, progress: progress}
	go u.read(pr)
	return u
}

func (u *uiWriter) Write(p []byte) (int, error) { return u.pw.Write(p) }

// Close ends the stream and waits until every line is handled.
func (u *uiWriter) Close() {
	_ = u.pw.Close()
	<-u.done
}

type uiMessage struct {
	Level      string `json:"@level"`
	Message    string `json:"@message"`
	Type       string `json:"type"`
	Diagnostic *struct {
		Severity string `json:"severity"`
		Summary  string `json:"summary"`
		Detail   string `json:"detail"`
		Address  string `json:"address"`
	} `json:"diagnostic"`
	Hook *struct {
		Resource struct {
			Addr string `json:"addr"`
		} `json:"resource"`
		Action string `json:"action"`
	} `json:"hook"`
}

func (u *uiWriter) read(r io.Reader) {
	defer close(u.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var m uiMessage
		if json.Unmarshal(line, &m) != nil {
			fmt.Fprintf(u.log, "%s\n", line)
			continue
		}
		text := m.Message
		if d := m.Diagnostic; d != nil && d.Severity == "error" {
			msg := d.Summary
			if d.Address != "" {
				msg = d.Address + ": " + msg
			}
			if d.Detail != "" {
				msg += ": " + d.Detail
				text += ": " + d.Detail
			}
			u.mu.Lock()
			u.errors = append(u.errors, msg)
			u.mu.Unlock()
		}
		if m.Type != "version" {
			fmt.Fprintf(u.log, "%s\n", text)
		}
		if u.progress != nil && m.Hook != nil && (m.Type == "apply_complete" || m.Type == "apply_errored") {
			u.progress(Event{Type: m.Type, Resource: m.Hook.Resource.Addr, Action: m.Hook.Action})
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// wrap replaces terraform's "exit status 1" by its error diagnostics.
func (u *uiWriter) wrap(err error) error {
	if err == nil {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.errors) == 0 {
		return err
	}
	return errors.New(strings.Join(u.errors, "; "))
}
