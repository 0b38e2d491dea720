package operatordocs

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// Local $refs are resolved, keywords beside a $ref win over the target's,
// and a recursive schema stops at maxDepth instead of looping. This goes
// through configuration directly because catalog.Registry does not yet
// compile schemas with local $refs.
func TestConfigurationRefs(t *testing.T) {
	const schema = `{
  "type": "object",
  "properties": {
    "outputs": {"type": "array", "items": {"$ref": "#/$defs/output"}},
    "primary": {"$ref": "#/$defs/output", "description": "The main output."},
    "tree": {"$ref": "#/$defs/node"}
  },
  "$defs": {
    "output": {"type": "object", "description": "An output.", "required": ["topic"], "properties": {"topic": {"type": "string"}}},
    "node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}}}
  }
}`
	var doc any
	if err := json.Unmarshal([]byte(schema), &doc); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	configuration(&b, doc)
	got := b.String()
	for _, want := range []string{
		"| `outputs` | array of object |  | no |  |\n",
		"| `outputs[].topic` | string |  | yes |  |\n",
		"| `primary` | object |  | no | The main output. |\n",
		"| `primary.topic` | string |  | yes |  |\n",
		"| `tree.child.child` | object |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks\n%s\ntable:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "| `tree"); n > maxDepth+1 {
		t.Errorf("recursive schema flattened into %d rows", n)
	}
}
