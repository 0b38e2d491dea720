package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/diag"
	"github.com/sluicehq/sluice/internal/expression"
)

// envelopeSchema is the JSON Schema of a pipeline file without its steps;
// JSONSchema fills the steps in from the catalog for editors, while the
// compiler validates each step against its own operator's schema so that
// errors name the operator instead of listing every oneOf branch.
const envelopeSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "https://sluice.dev/schemas/pipeline.json",
  "title": "Sluice pipeline",
  "description": "A pipeline file: where records come from, the steps that transform them, and where they go.",
  "type": "object",
  "required": ["apiVersion", "kind", "metadata", "spec"],
  "additionalProperties": false,
  "properties": {
    "apiVersion": {"const": "sluice/v1", "description": "Version of the pipeline format."},
    "kind": {"const": "Pipeline", "description": "Always Pipeline."},
    "metadata": {
      "type": "object",
      "required": ["name"],
      "additionalProperties": false,
      "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$", "description": "Pipeline name: lower-case letters, digits, dots and dashes. Names the consumer group and internal topics."},
        "description": {"type": "string", "description": "What the pipeline is for."},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Free-form labels."}
      }
    },
    "spec": {
      "type": "object",
      "required": ["source", "steps", "sink"],
      "additionalProperties": false,
      "properties": {
        "source": {
          "type": "object",
          "required": ["topic"],
          "additionalProperties": false,
          "description": "The input topic and how to read it.",
          "properties": {
            "topic": {"type": "string", "minLength": 1, "description": "Kafka topic to consume."},
            "format": {"enum": ["json", "raw"], "default": "json", "description": "How record values are decoded: json, or raw (the value as a string)."},
            "key": {"type": ["string", "number", "boolean"], "description": "Expression computing each record's key. Without it the Kafka key is used as it is."},
            "timestamp": {"type": ["string", "number", "boolean"], "description": "Expression giving each record's event time (RFC 3339 string, epoch milliseconds, or a time). Without it the Kafka timestamp is used."},
            "partitioned_by_key": {"type": "boolean", "default": false, "description": "Producers already partition the topic by the computed key, so stateful steps need no repartition."}
          }
        },
        "steps": {
          "type": "array",
          "description": "Operators applied in order. Each step is a mapping with one operator name and an optional step name.",
          "items": {"$ref": "#/$defs/step"}
        },
        "sink": {
          "type": "object",
          "required": ["topic"],
          "additionalProperties": false,
          "description": "Where results go. Route steps may send some records elsewhere; the rest come here.",
          "properties": {
            "topic": {"type": "string", "minLength": 1, "description": "Kafka topic to produce to."},
            "format": {"enum": ["json", "raw"], "default": "json", "description": "How record values are encoded."}
          }
        },
        "errors": {
          "type": "object",
          "additionalProperties": false,
          "description": "Where records that fail go.",
          "properties": {
            "dlq": {"type": "string", "minLength": 1, "description": "Dead-letter topic. Defaults to <pipeline name>.dlq."}
          }
        },
        "delivery": {"enum": ["exactly-once", "at-least-once"], "default": "exactly-once", "description": "Delivery guarantee."},
        "state": {
          "type": "object",
          "additionalProperties": false,
          "description": "Where stateful steps keep their state on a runner. Either way every change is also in a changelog topic, which a runner restores from.",
          "properties": {
            "store": {"enum": ["memory", "disk"], "default": "memory", "description": "memory: fastest, restored from the changelog on every start. disk: an on-disk store (Pebble) for state larger than memory, which restarts from its local checkpoint and restores only the changelog's tail."},
            "standbys": {"type": "integer", "minimum": 0, "maximum": 8, "default": 0, "description": "Warm copies of each task's state kept by other runners of the pipeline, caught up from the changelog every few seconds, so that a runner taking a task over restores only the changelog's tail."}
          }
        }
      }
    }
  },
  "$defs": {
    "step": {"description": "One operator step."}
  }
}`

// stepNameSchema is the optional name a step may carry beside its operator.
const stepNameSchema = `{"type": "string", "pattern": "^[a-z][a-z0-9-]{0,40}$", "description": "Step name; names its state stores and internal topics. Defaults to the operator name."}`

// stepResetSchema is the flag a stateful step sets to accept losing its
// state when its key or state shape changes.
const stepResetSchema = `{"type": "boolean", "description": "Start this stateful step from empty state when its key or state shape changed since the running revision. Without it such a change is refused."}`

var envelope = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(envelopeSchema))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("sluice:/pipeline.json", doc); err != nil {
		return nil, err
	}
	return c.Compile("sluice:/pipeline.json")
})

var envelopeDoc = sync.OnceValue(func() map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(envelopeSchema), &m); err != nil {
		panic(err) // a constant; covered by tests
	}
	return m
})

// JSONSchema returns the combined JSON Schema for pipeline files: the
// envelope with one branch per operator in reg. Editors and the IDE use it
// for completion and hover docs.
func JSONSchema(reg *catalog.Registry) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal([]byte(envelopeSchema), &doc); err != nil {
		return nil, err
	}
	var name any
	if err := json.Unmarshal([]byte(stepNameSchema), &name); err != nil {
		return nil, err
	}
	var reset any
	if err := json.Unmarshal([]byte(stepResetSchema), &reset); err != nil {
		return nil, err
	}
	var branches []any
	for _, s := range reg.Specs() {
		props := map[string]any{
			s.Name: s.SchemaDoc(),
			"name": name,
		}
		if s.State != nil {
			props["reset"] = reset
		}
		branches = append(branches, map[string]any{
			"type":                 "object",
			"title":                s.Name,
			"description":          s.Summary,
			"required":             []any{s.Name},
			"additionalProperties": false,
			"properties":           props,
		})
	}
	defs := doc["$defs"].(map[string]any)
	defs["step"] = map[string]any{
		"description": "One operator step: a mapping with exactly one operator name (and optionally a step name).",
		"oneOf":       branches,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var printer = message.NewPrinter(language.English)

// SchemaErrors turns a validation error into positioned diagnostics, one per
// failing leaf, each at the YAML node it is about. what names the thing being
// validated ("source", "filter") for messages; props gives the schema so
// unknown fields can be matched against known ones.
func SchemaErrors(err error, src *catalog.Source, root *yaml.Node, schemaDoc any, what string) diag.List {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return diag.List{diag.Errorf(catalog.NewConfig(src, root).Pos(), "%s: %v", what, err)}
	}
	var out diag.List
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		out = append(out, leafError(e, src, root, schemaDoc, what)...)
	}
	walk(ve)
	return out
}

func leafError(e *jsonschema.ValidationError, src *catalog.Source, root *yaml.Node, schemaDoc any, what string) diag.List {
	node := nodeAt(root, e.InstanceLocation)
	conf := catalog.NewConfig(src, node)
	where := what
	if len(e.InstanceLocation) > 0 {
		where = strings.Join(e.InstanceLocation, ".")
		if what != "pipeline" {
			// Inside a step, name the operator; at the top, the path says it.
			where = what + "." + where
		}
	}
	switch k := e.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		known := propertyNames(schemaAt(schemaDoc, e.InstanceLocation))
		var out diag.List
		for _, p := range k.Properties {
			msg := fmt.Sprintf("unknown field %q in %s", p, where)
			if s := expression.Suggest(p, known); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			} else if len(known) > 0 {
				msg += fmt.Sprintf("; known fields: %s", strings.Join(known, ", "))
			}
			out = append(out, diag.Errorf(keyPos(src, node, p), "%s", msg))
		}
		return out
	case *kind.Required:
		return diag.List{diag.Errorf(conf.Pos(), "%s is missing required field%s %s", where, plural(len(k.Missing)), quoteAll(k.Missing))}
	case *kind.Type:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = yamlTypeName(w)
		}
		return diag.List{diag.Errorf(conf.Pos(), "%s must be %s, not %s", where, strings.Join(want, " or "), yamlKind(node, k.Got))}
	case *kind.Enum:
		vals := make([]string, len(k.Want))
		for i, v := range k.Want {
			vals[i] = fmt.Sprint(v)
		}
		got := conf.String()
		msg := fmt.Sprintf("%s must be one of %s, not %q", where, strings.Join(vals, ", "), got)
		if s := expression.Suggest(got, vals); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		return diag.List{diag.Errorf(conf.Pos(), "%s", msg)}
	case *kind.Const:
		return diag.List{diag.Errorf(conf.Pos(), "%s must be %v, not %q", where, k.Want, conf.String())}
	case *kind.Pattern:
		return diag.List{diag.Errorf(conf.Pos(), "%s %q does not match the pattern %s", where, conf.String(), k.Want)}
	default:
		return diag.List{diag.Errorf(conf.Pos(), "%s: %s", where, e.ErrorKind.LocalizedString(printer))}
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// yamlTypeName names a JSON Schema type the way YAML users know it.
func yamlTypeName(t string) string {
	switch t {
	case "object":
		return "a mapping"
	case "array":
		return "a list"
	case "integer":
		return "a whole number"
	case "number":
		return "a number"
	case "string":
		return "a string"
	case "boolean":
		return "true or false"
	}
	return t
}

// yamlKind names what the user wrote, in YAML terms.
func yamlKind(n *yaml.Node, jsonType string) string {
	if n == nil {
		return jsonType
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if n.Tag == "!!null" {
		return "empty"
	}
	return fmt.Sprintf("%s %q", jsonType, n.Value)
}

// nodeAt follows a JSON pointer's tokens through the YAML tree.
func nodeAt(n *yaml.Node, path []string) *yaml.Node {
	for _, tok := range path {
		for n != nil && n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		if n == nil {
			return nil
		}
		switch n.Kind {
		case yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == tok {
					next = n.Content[i+1]
				}
			}
			if next == nil {
				return n
			}
			n = next
		case yaml.SequenceNode:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n.Content) {
				return n
			}
			n = n.Content[i]
		default:
			return n
		}
	}
	return n
}

// keyPos is the position of key name inside mapping n.
func keyPos(src *catalog.Source, n *yaml.Node, name string) diag.Pos {
	if n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == name {
				return catalog.NewConfig(src, n.Content[i]).Pos()
			}
		}
	}
	return catalog.NewConfig(src, n).Pos()
}

// schemaAt follows the path through a schema's properties/items; good enough
// to list the fields an object accepts for did-you-mean hints.
func schemaAt(schema any, path []string) any {
	for _, tok := range path {
		m, ok := schema.(map[string]any)
		if !ok {
			return nil
		}
		if props, ok := m["properties"].(map[string]any); ok {
			if s, ok := props[tok]; ok {
				schema = s
				continue
			}
		}
		if items, ok := m["items"]; ok {
			schema = items
			continue
		}
		if ap, ok := m["additionalProperties"].(map[string]any); ok {
			schema = ap
			continue
		}
		return nil
	}
	return schema
}

func propertyNames(schema any) []string {
	m, ok := schema.(map[string]any)
	if !ok {
		return nil
	}
	props, _ := m["properties"].(map[string]any)
	out := make([]string, 0, len(props))
	for k := range props {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
