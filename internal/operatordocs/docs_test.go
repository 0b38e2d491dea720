package operatordocs_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/operatordocs"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/record"
)

var update = flag.Bool("update", false, "rewrite golden files")

// tallySchema exercises what the table flattening must handle: required and
// optional fields, defaults, an enum without a type, a nested object, a map
// of described values, a list of objects, and a pipe that must be escaped in
// a table cell. ($ref is covered in schema_test.go: catalog.Registry cannot
// compile a schema with a local $ref yet.)
const tallySchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["window"],
  "properties": {
    "key": {"type": "string", "description": "Expression that groups records."},
    "window": {
      "type": "object",
      "description": "The time window.",
      "required": ["size"],
      "properties": {
        "size": {"type": "string", "pattern": "^[0-9]+[smh]$", "description": "Window length"},
        "grace": {"type": "string", "default": "0s", "description": "How long late events are accepted."}
      }
    },
    "emit": {"enum": ["final", "updates"], "default": "final", "description": "When results are emitted."},
    "aggregate": {
      "type": "object",
      "description": "Outputs by name.",
      "additionalProperties": {"type": "string", "description": "An aggregate such as count()."}
    },
    "outputs": {
      "type": "array",
      "minItems": 1,
      "items": {
        "type": "object",
        "required": ["topic"],
        "properties": {
          "topic": {"type": "string", "description": "Topic a|b."},
          "limit": {"type": "integer", "minimum": 1, "default": 10}
        }
      }
    }
  }
}`

const keepSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "description": "A predicate over the record.",
  "type": "string",
  "minLength": 1
}`

func nop(*catalog.Build, catalog.Config) (catalog.Operator, error) {
	return catalog.OperatorFunc(func(ctx context.Context, r *record.Record, out catalog.Output) error {
		return out.Next(ctx, r)
	}), nil
}

// testRegistry holds two made-up operators, so that these tests pin the
// generator's output without changing whenever a real operator's docs do.
func testRegistry(t *testing.T) *catalog.Registry {
	t.Helper()
	reg := catalog.NewRegistry()
	for _, s := range []catalog.Spec{
		{
			Name:        "tally",
			Summary:     "Counts records per key and window.",
			Description: "Counts things.\n\nA second paragraph.",
			Config:      tallySchema,
			State:       &catalog.StateSpec{KeyField: "key", ShapeFields: []string{"window.size", "aggregate"}},
			New:         nop,
			Examples: []catalog.Example{{
				Title:   "Count per vehicle",
				Summary: "One result per window.",
				Step:    "key: vehicle\nwindow: {size: 5m}\naggregate:\n  events: count()\n",
				Input: []any{
					map[string]any{"vehicle": "v1", "note": "<a&b>"},
					map[string]any{"vehicle": "v2"},
					"not an object",
				},
				Output: []any{map[string]any{"vehicle": "v1", "events": 1}},
				DLQ:    []catalog.Reason{catalog.ReasonType},
			}},
		},
		{
			Name:       "keep",
			Summary:    "Keeps records a predicate | holds for.",
			Config:     keepSchema,
			ChangesKey: true,
			New:        nop,
			Examples: []catalog.Example{
				{
					Title: "Keep fast ones",
					Step:  "speed > 100",
					Input: []any{map[string]any{"speed": 120}, map[string]any{"speed": 50}},
					Output: []any{
						map[string]any{"speed": 120},
					},
				},
				{
					Title: "A block scalar",
					Step:  "|\n  speed > 100 &&\n    lat != nil\n",
					Input: []any{map[string]any{"speed": 1}},
				},
			},
		},
	} {
		if err := reg.Register(s); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

func generate(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := operatordocs.Generate(testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestGenerateGolden compares every generated Markdown file with its copy
// under testdata/golden. A change there is a change to what readers see, so
// review the diff, then run `go test ./internal/operatordocs -update`.
func TestGenerateGolden(t *testing.T) {
	files := generate(t)
	want := []string{operatordocs.IndexPath, operatordocs.OperatorPath("keep"), operatordocs.OperatorPath("tally"), operatordocs.SchemaPath}
	if len(files) != len(want) {
		t.Errorf("generated %d files, want %d: %v", len(files), len(want), keys(files))
	}
	for _, p := range want {
		if _, ok := files[p]; !ok {
			t.Errorf("no %s generated", p)
		}
	}
	for path, got := range files {
		if !strings.HasSuffix(path, ".md") {
			continue
		}
		golden := filepath.Join("testdata", "golden", filepath.FromSlash(path))
		if *update {
			if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		wantData, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test ./internal/operatordocs -update to create it)", err)
		}
		if !bytes.Equal(got, wantData) {
			t.Errorf("%s changed; run go test ./internal/operatordocs -update and review the diff\n--- got\n%s\n--- want\n%s", path, got, wantData)
		}
	}
}

// TestConfigurationTable pins the rows users read, independently of the
// golden files, so that an -update cannot silently lose a field.
func TestConfigurationTable(t *testing.T) {
	page := string(generate(t)[operatordocs.OperatorPath("tally")])
	for _, row := range []string{
		"| Field | Type | Default | Required | Description |",
		"| `aggregate` | map of string |  | no | Outputs by name. |",
		"| `aggregate.<name>` | string |  | no | An aggregate such as count(). |",
		"| `emit` | string | `final` | no | When results are emitted. One of `final` or `updates`. |",
		"| `key` | string |  | no | Expression that groups records. |",
		"| `outputs` | array of object |  | no | Must not be empty. |",
		"| `outputs[].limit` | integer | `10` | no | At least 1. |",
		"| `outputs[].topic` | string |  | yes | Topic a\\|b. |",
		"| `window` | object |  | yes | The time window. |",
		"| `window.grace` | string | `0s` | no | How long late events are accepted. |",
		"| `window.size` | string |  | yes | Window length. Matches `^[0-9]+[smh]$`. |",
	} {
		if !strings.Contains(page, row+"\n") {
			t.Errorf("tally page lacks row\n%s\npage:\n%s", row, page)
		}
	}
	// Rows are sorted by path, parents before their fields.
	if i, j := strings.Index(page, "| `window` |"), strings.Index(page, "| `window.grace` |"); i < 0 || j < i {
		t.Errorf("window row should come before window.grace")
	}

	keep := string(generate(t)[operatordocs.OperatorPath("keep")])
	if !strings.Contains(keep, "The step value is a string, not a mapping. A predicate over the record.\n") {
		t.Errorf("keep page should describe a plain string value:\n%s", keep)
	}
	if strings.Contains(keep, "| Field |") {
		t.Errorf("keep page should have no table:\n%s", keep)
	}
}

func TestExamplesAndState(t *testing.T) {
	files := generate(t)
	tally := string(files[operatordocs.OperatorPath("tally")])
	for _, want := range []string{
		"# tally\n\nCounts records per key and window.\n\nCounts things.\n\nA second paragraph.\n",
		"## State\n",
		"grouped by the `key` expression",
		"Changing `window.size` or `aggregate` changes the shape of the state",
		"### Count per vehicle\n\nOne result per window.\n",
		// A block mapping starts on the line after the operator name.
		"```yaml\n- tally:\n    key: vehicle\n    window: {size: 5m}\n    aggregate:\n      events: count()\n```\n",
		// Values are JSON lines with sorted keys and no HTML escaping.
		"Input:\n\n```json\n{\"note\":\"<a&b>\",\"vehicle\":\"v1\"}\n{\"vehicle\":\"v2\"}\n\"not an object\"\n```\n",
		"Output:\n\n```json\n{\"events\":1,\"vehicle\":\"v1\"}\n```\n",
		"Sent to the DLQ, in order, with reasons: `type`.\n",
	} {
		if !strings.Contains(tally, want) {
			t.Errorf("tally page lacks\n%s\npage:\n%s", want, tally)
		}
	}

	keep := string(files[operatordocs.OperatorPath("keep")])
	for _, want := range []string{
		"```yaml\n- keep: speed > 100\n```\n",
		"```yaml\n- keep: |\n      speed > 100 &&\n        lat != nil\n```\n",
		"Output: none.\n",
		"This operator sets the record key.",
	} {
		if !strings.Contains(keep, want) {
			t.Errorf("keep page lacks\n%s\npage:\n%s", want, keep)
		}
	}
	if strings.Contains(keep, "## State") || strings.Contains(keep, "DLQ") {
		t.Errorf("keep is stateless and has no DLQ examples:\n%s", keep)
	}
}

func TestIndex(t *testing.T) {
	index := string(generate(t)[operatordocs.IndexPath])
	for _, row := range []string{
		"| Operator | Summary | State |",
		"| [keep](keep.md) | Keeps records a predicate \\| holds for. | stateless |",
		"| [tally](tally.md) | Counts records per key and window. | stateful |",
	} {
		if !strings.Contains(index, row+"\n") {
			t.Errorf("index lacks row\n%s\nindex:\n%s", row, index)
		}
	}
	if strings.Index(index, "[keep]") > strings.Index(index, "[tally]") {
		t.Errorf("index is not sorted by name:\n%s", index)
	}
}

// The schema file is the compiler package's combined schema, byte for byte,
// so the IDE and the compiler cannot disagree.
func TestSchemaFile(t *testing.T) {
	reg := testRegistry(t)
	files, err := operatordocs.Generate(reg)
	if err != nil {
		t.Fatal(err)
	}
	want, err := pipeline.JSONSchema(reg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(files[operatordocs.SchemaPath], want) {
		t.Errorf("schema file differs from pipeline.JSONSchema")
	}
}

// Generated files are committed and checked by make verify, so two runs must
// produce the same bytes (no map order, no timestamps).
func TestDeterministic(t *testing.T) {
	a, b := generate(t), generate(t)
	for p := range a {
		if !bytes.Equal(a[p], b[p]) {
			t.Errorf("%s differs between two runs", p)
		}
	}
}

func TestBadExampleStep(t *testing.T) {
	reg := catalog.NewRegistry()
	err := reg.Register(catalog.Spec{
		Name: "broken", Summary: "Has a broken example.", Config: keepSchema, New: nop,
		Examples: []catalog.Example{{Title: "bad", Step: "a: [1, 2"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := operatordocs.Generate(reg); err == nil || !strings.Contains(err.Error(), `"broken"`) {
		t.Errorf("Generate with an invalid example step: err = %v, want one naming the operator", err)
	}
}

func TestSchemaShapes(t *testing.T) {
	cases := []struct {
		name, schema string
		want         []string
	}{
		{
			name:   "string or object",
			schema: `{"oneOf": [{"type": "string", "description": "Shorthand for by."}, {"type": "object", "required": ["by"], "properties": {"by": {"type": "string"}}}]}`,
			want: []string{
				"The step value is a string, or a mapping with the fields below.\n\n- As a string: Shorthand for by.\n",
				"| `by` | string |  | yes |  |\n",
			},
		},
		{
			name:   "alternatives requiring different fields",
			schema: `{"type": "object", "oneOf": [{"required": ["tumbling"]}, {"required": ["hopping"]}], "properties": {"tumbling": {"type": "string"}, "hopping": {"type": ["string", "null"]}}}`,
			want: []string{
				"## Configuration\n\nExactly one of `tumbling` or `hopping` must be set.\n\n",
				"| `hopping` | string or null |  | no |  |\n",
				"| `tumbling` | string |  | no |  |\n",
			},
		},
		{
			name:   "list of mappings",
			schema: `{"type": "array", "description": "The cases.", "items": {"type": "object", "description": "One case.", "required": ["to"], "properties": {"to": {"type": "string"}}}}`,
			want: []string{
				"The cases.\n\nThe step value is a list; each item is a mapping with the fields below. One case.\n\n",
				"| `to` | string |  | yes |  |\n",
			},
		},
		{
			name:   "recursive map of expressions",
			schema: `{"type": "object", "additionalProperties": {"$ref": "#/$defs/f"}, "$defs": {"f": {"description": "An expression or a nested mapping.", "anyOf": [{"type": "string"}, {"type": "object", "additionalProperties": {"$ref": "#/$defs/f"}}]}}, "$id": "https://example.com/op.json"}`,
			want:   []string{"| `<name>` | string or map of (string or object) |  | no | An expression or a nested mapping. |\n"},
		},
		{
			name:   "list of lists",
			schema: `{"type": "object", "properties": {"cells": {"type": "array", "items": {"type": "array", "items": {"type": ["number", "string"]}}}}}`,
			want:   []string{"| `cells` | array of array of (number or string) |  | no |  |\n"},
		},
		{
			name:   "const and nested defaults",
			schema: `{"type": "object", "properties": {"mode": {"const": "strict"}, "opts": {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}, "default": []}}}}}`,
			want: []string{
				"| `mode` | `\"strict\"` |  | no |  |\n",
				"| `opts.tags` | array of string | `[]` | no |  |\n",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reg := catalog.NewRegistry()
			if err := reg.Register(catalog.Spec{Name: "op", Summary: "An operator.", Config: tc.schema, New: nop}); err != nil {
				t.Fatal(err)
			}
			files, err := operatordocs.Generate(reg)
			if err != nil {
				t.Fatal(err)
			}
			page := string(files[operatordocs.OperatorPath("op")])
			for _, w := range tc.want {
				if !strings.Contains(page, w) {
					t.Errorf("page lacks\n%s\npage:\n%s", w, page)
				}
			}
		})
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
