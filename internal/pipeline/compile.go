package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	goccy "github.com/goccy/go-yaml"
	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/diag"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/record"
)

// jsonCanonical encodes v with sorted object keys.
func jsonCanonical(v any) ([]byte, error) { return json.Marshal(record.Plain(v)) }

// ParseYAML parses one YAML document keeping positions. Syntax errors are
// positioned at the offending token; duplicate keys are errors. Files over
// MaxFileBytes or nested deeper than MaxDepth are refused before any
// parser runs.
func ParseYAML(name string, data []byte) (*catalog.Source, *yaml.Node, error) {
	if err := checkLimits(name, data); err != nil {
		return catalog.NewSource(name, nil), nil, err
	}
	src := catalog.NewSource(name, data)
	var doc yaml.Node
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&doc); err != nil {
		if err.Error() == "EOF" {
			return src, nil, diag.Errorf(diag.Pos{File: name, Line: 1, Column: 1}, "file is empty")
		}
		return src, nil, syntaxError(name, data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return src, nil, diag.Errorf(diag.Pos{File: name, Line: extra.Line, Column: extra.Column}, "more than one YAML document; put each pipeline in its own file")
	} else if err.Error() != "EOF" {
		return src, nil, syntaxError(name, data, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	var errs diag.List
	checkDuplicates(src, root, &errs)
	checkTags(src, root, &errs)
	return src, root, errs.Err()
}

// checkTags catches a YAML trap: an unquoted value starting with ! (like
// `filter: !flag`) is a YAML tag, not text, and silently becomes empty.
func checkTags(src *catalog.Source, n *yaml.Node, errs *diag.List) {
	if n == nil {
		return
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		text := strings.TrimSpace(n.Tag + " " + n.Value)
		errs.Add(diag.Pos{}, diag.Errorf(catalog.NewConfig(src, n).Pos(),
			"YAML reads %q as a tag, not text; quote the expression: %s", n.Tag, quoteYAML(text)))
	}
	for _, c := range n.Content {
		checkTags(src, c, errs)
	}
}

// syntaxError positions a YAML syntax error. yaml.v3 reports only a line, so
// the same input is parsed by goccy/go-yaml, whose errors carry the column of
// the offending token.
//
// Either way, when the line holds an expression that YAML read as syntax
// (a ternary's ": ", a leading * or &), the message says to quote it.
func syntaxError(name string, data []byte, err error) error {
	lines := strings.Split(string(data), "\n")
	var v any
	gerr := goccy.Unmarshal(data, &v)
	var se *goccy.SyntaxError
	if errors.As(gerr, &se) && se.Token != nil {
		line := se.Token.Position.Line
		hint, _ := trapHint(lines, line)
		return diag.Errorf(diag.Pos{File: name, Line: line, Column: se.Token.Position.Column},
			"YAML syntax error: %s%s", se.Message, hint)
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line, col := 1, 1
	if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr == nil {
		msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
	}
	if strings.HasPrefix(msg, "did not find expected") {
		// yaml.v3 reports these parser errors at the start of the
		// collection being parsed, counting that line from 0: a flow
		// mapping on line 7 is reported on line 6. Point at the
		// collection.
		line++
		if line <= len(lines) {
			if i := strings.IndexAny(lines[line-1], "{["); i >= 0 && strings.Contains(msg, "','") {
				col = i + 1
			} else {
				col = len(lines[line-1]) - len(strings.TrimLeft(lines[line-1], " ")) + 1
			}
		}
	}
	hint, valueCol := trapHint(lines, line)
	if col == 1 && hint != "" {
		col = valueCol // yaml.v3 gives no column; the value is the culprit
	}
	return diag.Errorf(diag.Pos{File: name, Line: line, Column: col}, "YAML syntax error: %s%s", msg, hint)
}

func checkDuplicates(src *catalog.Source, n *yaml.Node, errs *diag.List) {
	if n == nil {
		return
	}
	if n.Kind == yaml.MappingNode {
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if first, dup := seen[k.Value]; dup {
				errs.Add(diag.Pos{}, diag.Errorf(catalog.NewConfig(src, k).Pos(),
					"duplicate key %q (first defined at line %d)", k.Value, first.Line))
			} else {
				seen[k.Value] = k
			}
		}
	}
	for _, c := range n.Content {
		checkDuplicates(src, c, errs)
	}
}

// Compile compiles one pipeline file.
func (c *Compiler) Compile(name string, data []byte) (*Plan, error) {
	src, root, err := ParseYAML(name, data)
	if err != nil {
		return nil, err
	}
	top := catalog.NewConfig(src, root)
	if !top.IsMap() {
		return nil, top.Errorf("a pipeline file must be a mapping with apiVersion, kind, metadata and spec, not a %s", top.KindName())
	}
	var errs diag.List
	val, err := top.Value()
	if err != nil {
		return nil, err
	}
	sch, err := envelope()
	if err != nil {
		return nil, fmt.Errorf("pipeline schema: %w", err)
	}
	if err := sch.Validate(record.Plain(val)); err != nil {
		errs = append(errs, SchemaErrors(err, src, root, envelopeDoc(), "pipeline")...)
		// Keep going where the structure allows, so that one run shows
		// step errors too.
	}

	p := &Plan{File: name, Delivery: ExactlyOnce, StateStore: StoreMemory}
	meta, _ := top.Get("metadata")
	if n, ok := meta.Get("name"); ok {
		p.Name = n.String()
	}
	spec, _ := top.Get("spec")
	c.compileSource(p, spec, &errs)
	if sink, ok := spec.Get("sink"); ok {
		p.Sink.Topic = str(sink, "topic")
		p.Sink.Format = orDefault(str(sink, "format"), FormatJSON)
	}
	p.DLQ = p.Name + ".dlq"
	if e, ok := spec.Get("errors"); ok && str(e, "dlq") != "" {
		p.DLQ = str(e, "dlq")
	}
	if d := str(spec, "delivery"); d != "" {
		p.Delivery = d
	}
	if st, ok := spec.Get("state"); ok {
		if s := str(st, "store"); s != "" {
			p.StateStore = s
		}
		if sb, ok := st.Get("standbys"); ok {
			if err := sb.Decode(&p.Standbys); err != nil {
				errs.Add(sb.Pos(), err)
			}
		}
	}
	if steps, ok := spec.Get("steps"); ok && steps.IsList() {
		c.compileSteps(p, steps, &errs)
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	c.plan(p)
	return p, nil
}

func str(c catalog.Config, field string) string {
	v, ok := c.Get(field)
	if !ok || !v.IsScalar() {
		return ""
	}
	return v.String()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (c *Compiler) compileSource(p *Plan, spec catalog.Config, errs *diag.List) {
	source, ok := spec.Get("source")
	if !ok {
		return
	}
	p.Source.Topic = str(source, "topic")
	p.Source.Format = orDefault(str(source, "format"), FormatJSON)
	if v, ok := source.Get("partitioned_by_key"); ok {
		p.Source.PartitionedByKey = v.String() == "true"
	}
	if k, ok := source.Get("key"); ok && k.IsScalar() {
		prog, err := k.Expr(expression.Any)
		errs.Add(k.Pos(), err)
		p.Source.Key = prog
	}
	if t, ok := source.Get("timestamp"); ok && t.IsScalar() {
		prog, err := t.Expr(expression.Any)
		errs.Add(t.Pos(), err)
		p.Source.Timestamp = prog
	}
}

func (c *Compiler) compileSteps(p *Plan, steps catalog.Config, errs *diag.List) {
	names := map[string]diag.Pos{}
	counts := map[string]int{}
	for _, item := range steps.Items() {
		if !item.IsMap() {
			errs.Add(item.Pos(), item.Errorf("a step must be a mapping like `- filter: <expression>`, not a %s", item.KindName()))
			continue
		}
		var opField *catalog.Field
		var stepName, reset catalog.Config
		hasName, hasReset := false, false
		for _, f := range item.Fields() {
			f := f
			if f.Name == "name" {
				stepName, hasName = f.Value, true
				continue
			}
			if f.Name == "reset" {
				reset, hasReset = f.Value, true
				continue
			}
			if _, known := c.Registry.Lookup(f.Name); !known {
				msg := fmt.Sprintf("unknown operator %q", f.Name)
				if s := expression.Suggest(f.Name, c.Registry.Names()); s != "" {
					msg += fmt.Sprintf("; did you mean %q?", s)
				} else {
					msg += fmt.Sprintf("; available operators: %s", strings.Join(c.Registry.Names(), ", "))
				}
				errs.Add(f.NamePos, diag.Errorf(f.NamePos, "%s", msg))
				opField = &catalog.Field{Name: ""} // reported; skip the "no operator" error
				continue
			}
			if opField != nil && opField.Name != "" {
				errs.Add(f.NamePos, diag.Errorf(f.NamePos, "a step has one operator; %q follows %q in the same step (start a new step with `- %s:`)", f.Name, opField.Name, f.Name))
				continue
			}
			opField = &f
		}
		if opField == nil {
			errs.Add(item.Pos(), item.Errorf("step has no operator; write it as `- <operator>: <config>`"))
			continue
		}
		if opField.Name == "" {
			continue
		}
		spec, _ := c.Registry.Lookup(opField.Name)
		name := spec.Name
		if hasName {
			if !stepName.IsScalar() || !stepNameRE.MatchString(stepName.String()) {
				errs.Add(stepName.Pos(), stepName.Errorf("step name %q must be lower-case letters, digits and dashes, starting with a letter", stepName.String()))
				continue
			}
			name = stepName.String()
		} else {
			counts[spec.Name]++
			if counts[spec.Name] > 1 {
				name = fmt.Sprintf("%s-%d", spec.Name, counts[spec.Name])
			}
		}
		if first, dup := names[name]; dup {
			errs.Add(opField.NamePos, diag.Errorf(opField.NamePos, "step name %q is already used by the step at line %d; give this one a `name:`", name, first.Line))
			continue
		}
		names[name] = opField.NamePos

		if hasReset {
			switch {
			case spec.State == nil:
				errs.Add(reset.Pos(), reset.Errorf("reset applies to stateful steps; %s keeps no state", spec.Name))
				continue
			case !reset.IsScalar() || (reset.String() != "true" && reset.String() != "false"):
				errs.Add(reset.Pos(), reset.Errorf("reset must be true or false"))
				continue
			}
		}

		step, err := c.compileStep(p, spec, name, opField)
		if err != nil {
			errs.Add(opField.NamePos, err)
			continue
		}
		step.Reset = hasReset && reset.String() == "true"
		p.Steps = append(p.Steps, step)
	}
}

func (c *Compiler) compileStep(p *Plan, spec *catalog.Spec, name string, f *catalog.Field) (step *Step, err error) {
	conf := f.Value
	// An operator's constructor must not take the compiler down with it.
	defer func() {
		if r := recover(); r != nil {
			step, err = nil, diag.Errorf(f.NamePos, "operator %s failed to build: %v", spec.Name, r)
		}
	}()
	v, err := conf.Value()
	if err != nil {
		return nil, err
	}
	if err := spec.Validate(record.Plain(v)); err != nil {
		errs := SchemaErrors(err, conf.Source(), conf.Node(), spec.SchemaDoc(), spec.Name)
		if spec.ScalarHint != nil && conf.IsScalar() && len(errs) > 0 {
			errs[0].Msg += "; " + spec.ScalarHint(conf.String())
		}
		return nil, errs.Err()
	}
	op, err := spec.New(&catalog.Build{Pipeline: p.Name, Step: name, Files: c.Files}, conf)
	if err != nil {
		return nil, err
	}
	step = &Step{Name: name, Op: spec.Name, Pos: f.NamePos, Operator: op}
	if r, ok := op.(catalog.Router); ok {
		step.Topics = r.Topics()
	}
	if spec.ChangesKey {
		step.KeyChange = strings.TrimSpace(conf.String())
		if step.KeyChange == "" {
			step.KeyChange = "set by " + spec.Name
		}
	}
	if spec.State != nil {
		step.Stateful = true
		key := ""
		if spec.State.KeyField != "" {
			if k, ok := conf.Get(spec.State.KeyField); ok {
				key = k.String()
				prog, err := k.Expr(expression.Any)
				if err != nil {
					return nil, err
				}
				step.GroupKey = prog
			}
		}
		shape := map[string]any{}
		if m, ok := v.(map[string]any); ok {
			for _, fld := range spec.State.ShapeFields {
				shape[fld] = m[fld]
			}
		}
		step.Fingerprint = fingerprint(spec.Name, key, shape)
	}
	return step, nil
}
