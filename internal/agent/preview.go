package agent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/sluicehq/sluice/internal/agentproto"
)

// Record previews (docs/security.md): the only place where record keys and
// values are turned into something that may leave the runner. Every report
// that could carry one goes through previewOf with the pipeline's setting;
// with previews off (nil or not enabled) it returns nil, always.

// redactedText replaces the value of a redacted field.
const redactedText = "[redacted]"

// effectivePreviews returns p with its limits applied, or nil when
// previews are off.
func effectivePreviews(p *agentproto.RecordPreviews) *agentproto.RecordPreviews {
	if p == nil || !p.Enabled {
		return nil
	}
	out := *p
	if out.MaxBytes <= 0 {
		out.MaxBytes = agentproto.DefaultPreviewBytes
	}
	out.MaxBytes = min(out.MaxBytes, agentproto.MaxPreviewBytes)
	return &out
}

// previewOf renders a value for a report under p: nil when previews are
// off or data is nil. JSON is re-encoded with every redact path replaced
// by "[redacted]"; other data is shown as text (base64 when it is not
// UTF-8) only when no redact path is set, since fields cannot be found in
// it. The result is cut to p.MaxBytes.
func previewOf(data []byte, p *agentproto.RecordPreviews) *agentproto.Preview {
	return preview(data, p, false)
}

// keyPreviewOf renders a key like previewOf, except that a key that is not
// JSON is shown (capped) even when redact paths are set: the paths name
// JSON fields, and a plain key (an id) has none.
func keyPreviewOf(data []byte, p *agentproto.RecordPreviews) *agentproto.Preview {
	return preview(data, p, true)
}

func preview(data []byte, p *agentproto.RecordPreviews, key bool) *agentproto.Preview {
	p = effectivePreviews(p)
	if p == nil || data == nil {
		return nil
	}
	out := &agentproto.Preview{Bytes: len(data)}
	text, ok := redactJSON(data, p.Redact)
	switch {
	case ok:
	case len(p.Redact) > 0 && !key:
		// Not JSON: the redact paths cannot be applied, so nothing of it
		// is shown.
		out.Text = fmt.Sprintf("[not JSON (%d bytes); not shown because redact paths are set]", len(data))
		return out
	case utf8.Valid(data):
		text = string(data)
	default:
		text = base64.StdEncoding.EncodeToString(data)
		out.Encoding = "base64"
	}
	if len(text) > p.MaxBytes {
		cut := p.MaxBytes
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut]
		out.Truncated = true
	}
	out.Text = text
	return out
}

// redactJSON parses data as JSON and returns it re-encoded with the values
// at paths replaced; ok is false when data is not JSON.
func redactJSON(data []byte, paths []string) (string, bool) {
	trimmed := bytes.TrimSpace(data)
	if len(paths) == 0 && (len(trimmed) == 0 || (trimmed[0] != '{' && trimmed[0] != '[')) {
		// A bare scalar or text: shown as it is.
		return "", false
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return "", false
	}
	for _, p := range paths {
		if p = strings.TrimSpace(p); p != "" {
			v = redactPath(v, strings.Split(p, "."))
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// redactPath replaces the value at path in v; arrays on the way apply the
// rest of the path to each element.
func redactPath(v any, path []string) any {
	switch x := v.(type) {
	case map[string]any:
		child, ok := x[path[0]]
		if !ok {
			return v
		}
		if len(path) == 1 {
			x[path[0]] = redactedText
		} else {
			x[path[0]] = redactPath(child, path[1:])
		}
	case []any:
		for i := range x {
			x[i] = redactPath(x[i], path)
		}
	}
	return v
}
