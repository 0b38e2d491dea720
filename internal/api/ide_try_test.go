package api_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

const tryPipeline = `apiVersion: sluice/v1
kind: Pipeline
metadata:
  name: clicks
spec:
  source: {topic: clicks, format: json}
  steps:
    - filter: 'page != nil'
    - map:
        user: user
        page: lower(page)
  sink: {topic: clicks.clean}
  errors: {dlq: clicks.dlq}
`

// "Try it" runs the edited pipeline on sample records on the in-memory
// driver: what it writes, what it drops and what it dead-letters, with the
// reason and the sample it came from.
func TestIDETry(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	dev := e.login("b@example.com", w.userBPassword)
	path := "/api/v1/projects/" + w.projB + "/ide/try"
	files := map[string]any{"pipelines/clicks.yaml": tryPipeline}

	r := dev.do("POST", path, map[string]any{"files": files, "pipeline": "pipelines/clicks.yaml", "records": []any{
		map[string]any{"key": "ada", "value": map[string]any{"user": "ada", "page": "/Pricing"}},
		map[string]any{"value": map[string]any{"user": "bob"}},
		map[string]any{"value": map[string]any{"user": "eve", "page": 5}},
	}}).want(200)
	var body struct {
		Pipeline string `json:"pipeline"`
		Outputs  []struct {
			Topic string          `json:"topic"`
			Key   *string         `json:"key"`
			Value json.RawMessage `json:"value"`
		} `json:"outputs"`
		DLQ []struct {
			Reason string          `json:"reason"`
			Error  string          `json:"error"`
			Input  int             `json:"input"`
			Value  json.RawMessage `json:"value"`
		} `json:"dlq"`
		Errors []string `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Pipeline != "clicks" || len(body.Outputs) != 1 || body.Outputs[0].Topic != "clicks.clean" ||
		body.Outputs[0].Key == nil || *body.Outputs[0].Key != "ada" || !sameJSON(body.Outputs[0].Value, `{"user":"ada","page":"/pricing"}`) {
		t.Errorf("outputs: %s", r.body)
	}
	if len(body.DLQ) != 1 || body.DLQ[0].Reason == "" || body.DLQ[0].Input != 2 || !strings.Contains(string(body.DLQ[0].Value), "eve") {
		t.Errorf("dlq: %s", r.body)
	}
	if len(body.Errors) != 0 {
		t.Errorf("errors: %v", body.Errors)
	}

	// A pipeline that does not compile: 422 with the position, as commit.
	broken := strings.Replace(tryPipeline, "lower(page)", "lower(page", 1)
	r = dev.do("POST", path, map[string]any{"files": map[string]any{"pipelines/clicks.yaml": broken}, "pipeline": "pipelines/clicks.yaml",
		"records": []any{map[string]any{"value": 1}}}).want(422)
	p := r.json()
	errs, _ := p["errors"].([]any)
	if len(errs) == 0 || errs[0].(map[string]any)["field"] != "pipelines/clicks.yaml" || errs[0].(map[string]any)["line"].(float64) != 11 {
		t.Errorf("compile error: %s", r.body)
	}

	// Bad requests name the field.
	for _, req := range []map[string]any{
		{"files": files, "pipeline": "pipelines/other.yaml", "records": []any{map[string]any{"value": 1}}},
		{"files": files, "pipeline": "pipelines/clicks.yaml", "records": []any{}},
		{"files": files, "pipeline": "../x", "records": []any{map[string]any{"value": 1}}},
		{"files": files, "pipeline": "pipelines/clicks.yaml", "records": []any{map[string]any{"value": 1}}, "advance": "soon"},
	} {
		r := dev.do("POST", path, req).want(422)
		if errs, _ := r.json()["errors"].([]any); len(errs) == 0 {
			t.Errorf("%v: no field named: %s", req, r.body)
		}
	}
}

func sameJSON(got json.RawMessage, want string) bool {
	var a, b any
	return json.Unmarshal(got, &a) == nil && json.Unmarshal([]byte(want), &b) == nil && reflect.DeepEqual(a, b)
}
