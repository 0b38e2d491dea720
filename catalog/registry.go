// Package catalog is the operator registry: every operator a pipeline step can
// name registers here with its config spec (a JSON Schema), constructor, docs
// and examples. The pipeline compiler, the docs generator and the IDE's schema
// all read the same registry, so they cannot disagree.
//
// There is no global registry: catalog/operators/all builds the standard one,
// and tests clone or narrow it.
package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"sort"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Spec describes one operator.
type Spec struct {
	// Name is what a step writes: `- filter: ...`.
	Name string
	// Summary is one sentence for lists and completion.
	Summary string
	// Description is Markdown for the operator's docs page.
	Description string
	// Config is the JSON Schema (draft 2020-12) of the step's value.
	Config string
	// ChangesKey is set for operators that set the record key (rekey), so the
	// plan shows the change and a later stateful step gets a repartition.
	ChangesKey bool
	// State is set for stateful operators.
	State *StateSpec
	// Examples are shown in the docs and run by catalog/operatortest.
	Examples []Example
	// New builds the operator from a validated config.
	New Constructor
	// ScalarHint, when set, is advice added to the schema error of a step
	// given a scalar it does not take, for operators people reach for by
	// another meaning of their name (drop: ms > 10000, meant as a filter).
	ScalarHint func(scalar string) string

	schema *jsonschema.Schema
	doc    any // Config decoded, for the combined schema
}

// StateSpec says how a stateful operator groups and stores its state, which
// the compiler needs to place repartition stages and fingerprint the state.
type StateSpec struct {
	// KeyField names the config field that holds the grouping key
	// expression; when the step leaves it out, the record's key is used.
	KeyField string
	// ShapeFields name the config fields whose change makes existing state
	// unreadable (window size, aggregate list), for compatibility checks.
	ShapeFields []string
}

// Example is a step configuration with input values and the values it
// produces. Docs show it; the conformance suite runs it.
type Example struct {
	Title   string
	Summary string
	// Step is the YAML of the step's value (what follows `name:`).
	Step string
	// Input and Output are record values (JSON-like), in order.
	Input  []any
	Output []any
	// DLQ lists the reasons of the inputs expected in the DLQ, in order.
	DLQ []Reason
}

// Constructor builds an operator. Errors should come from conf.Errorf (or
// Config.Expr) so that users see the file, line and column.
type Constructor func(b *Build, conf Config) (Operator, error)

// Build is what a constructor may use besides its own config.
type Build struct {
	// Pipeline and Step name what is being built, for messages and metrics.
	Pipeline string
	Step     string
	// Files holds the side files of the pipeline's repository (GeoJSON zones,
	// lookup CSVs, scripts), rooted where the pipeline files are.
	Files fs.FS
}

// ReadFile reads a side file named by conf, with a positioned error.
func (b *Build) ReadFile(conf Config) ([]byte, error) {
	if b.Files == nil {
		return nil, conf.Errorf("cannot read %q: this pipeline has no files", conf.String())
	}
	data, err := fs.ReadFile(b.Files, conf.String())
	if err != nil {
		return nil, conf.Errorf("cannot read %q: %v", conf.String(), err)
	}
	return data, nil
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Registry holds operator specs by name.
type Registry struct {
	specs map[string]*Spec
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{specs: map[string]*Spec{}} }

// Register adds an operator. It fails when the name is taken or malformed,
// the constructor is missing, or the config schema is not valid JSON Schema.
func (r *Registry) Register(s Spec) error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("operator name %q: must match %s", s.Name, nameRE)
	}
	if _, dup := r.specs[s.Name]; dup {
		return fmt.Errorf("operator %q is already registered", s.Name)
	}
	return r.add(s)
}

// Replace swaps a registered operator for s, checked as Register checks
// it: an isolated build of an operator (scripts run in child processes)
// replaces the in-process one. Registries cloned from r keep the old one.
func (r *Registry) Replace(s Spec) error {
	if _, ok := r.specs[s.Name]; !ok {
		return fmt.Errorf("operator %q is not registered", s.Name)
	}
	return r.add(s)
}

func (r *Registry) add(s Spec) error {
	if s.New == nil {
		return fmt.Errorf("operator %q has no constructor", s.Name)
	}
	if s.Summary == "" {
		return fmt.Errorf("operator %q has no summary", s.Name)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(s.Config)))
	if err != nil {
		return fmt.Errorf("operator %q: config schema is not JSON: %w", s.Name, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	url := "https://sluice.dev/schemas/operators/" + s.Name + ".json"
	if err := c.AddResource(url, doc); err != nil {
		return fmt.Errorf("operator %q: %w", s.Name, err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		return fmt.Errorf("operator %q: config schema: %w", s.Name, err)
	}
	var plain any
	if err := json.Unmarshal([]byte(s.Config), &plain); err != nil {
		return fmt.Errorf("operator %q: config schema: %w", s.Name, err)
	}
	s.schema, s.doc = sch, plain
	r.specs[s.Name] = &s
	return nil
}

// MustRegister is Register for package-level wiring where an error is a
// programming mistake.
func (r *Registry) MustRegister(s Spec) {
	if err := r.Register(s); err != nil {
		panic(err)
	}
}

// Lookup returns the named operator.
func (r *Registry) Lookup(name string) (*Spec, bool) {
	s, ok := r.specs[name]
	return s, ok
}

// Names returns every operator name, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.specs))
	for n := range r.specs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Specs returns every spec, sorted by name.
func (r *Registry) Specs() []*Spec {
	out := make([]*Spec, 0, len(r.specs))
	for _, n := range r.Names() {
		out = append(out, r.specs[n])
	}
	return out
}

// Clone returns a registry with the same operators that can be changed
// without affecting r.
func (r *Registry) Clone() *Registry {
	c := NewRegistry()
	for n, s := range r.specs {
		c.specs[n] = s
	}
	return c
}

// Only returns a registry narrowed to the named operators.
func (r *Registry) Only(names ...string) *Registry {
	c := NewRegistry()
	for _, n := range names {
		if s, ok := r.specs[n]; ok {
			c.specs[n] = s
		}
	}
	return c
}

// Validate checks a step's config value against the operator's schema. The
// error is a *jsonschema.ValidationError, which the compiler turns into
// positioned messages.
func (s *Spec) Validate(v any) error {
	return s.schema.Validate(v)
}

// SchemaDoc returns the decoded config schema, for generated docs and the
// combined pipeline schema.
func (s *Spec) SchemaDoc() any { return s.doc }
