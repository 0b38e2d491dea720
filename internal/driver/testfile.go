package driver

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/diag"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/record"
)

// TestFileSchema is the JSON Schema of *_test.yaml files.
const TestFileSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Sluice pipeline tests",
  "type": "object",
  "required": ["pipeline", "tests"],
  "additionalProperties": false,
  "properties": {
    "pipeline": {"type": "string", "description": "metadata.name of the pipeline under test."},
    "tests": {
      "type": "array",
      "items": {
        "type": "object",
        "required": ["name"],
        "additionalProperties": false,
        "properties": {
          "name": {"type": "string", "description": "What the test shows."},
          "input": {
            "type": "array",
            "description": "Records produced to the source topic, in order. An item {advance: 5m} moves the virtual clock between records.",
            "items": {
              "type": "object",
              "additionalProperties": false,
              "properties": {
                "topic": {"type": "string", "description": "Topic to produce to: the source (default), or a table a join step reads."},
                "key": {"description": "Kafka key (a string, or any value encoded as JSON)."},
                "value": {"description": "Record value; encoded in the source's format (JSON for tables). null in a table deletes the key."},
                "raw": {"type": "string", "description": "Value bytes exactly as written, not encoded: for testing input that does not decode."},
                "timestamp": {"type": ["string", "number"], "description": "Kafka timestamp (RFC 3339 or epoch ms); defaults to the virtual clock."},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "advance": {"type": "string", "description": "Move the virtual clock by this duration (like 30s, 5m)."}
              }
            }
          },
          "advance": {"type": "string", "description": "Move the virtual clock after the input (like 6m)."},
          "expect": {
            "type": "array",
            "description": "Records expected on output topics: exact and in order per topic. Without it, no output is expected.",
            "items": {
              "type": "object",
              "required": ["value"],
              "additionalProperties": false,
              "properties": {
                "topic": {"type": "string", "description": "Output topic; defaults to the sink."},
                "key": {"description": "Expected key; not checked when left out."},
                "value": {"description": "Expected value."},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Headers that must be present with these values."}
              }
            }
          },
          "expect_dlq": {
            "type": "array",
            "description": "Input records expected in the DLQ, in order. Without it, the DLQ must stay empty.",
            "items": {
              "type": "object",
              "required": ["reason"],
              "additionalProperties": false,
              "properties": {
                "reason": {"type": "string", "description": "The sluice.reason header: decode, expression, timeout, script, type, oversize, late, error."},
                "key": {"description": "Key of the failed input; not checked when left out."},
                "value": {"description": "Value of the failed input; not checked when left out."},
                "error": {"type": "string", "description": "Text the error message must contain."}
              }
            }
          }
        }
      }
    }
  }
}`

var testSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(TestFileSchema))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("sluice:/test.json", doc); err != nil {
		return nil, err
	}
	return c.Compile("sluice:/test.json")
})

var testSchemaDoc = sync.OnceValue(func() any {
	var v any
	_ = json.Unmarshal([]byte(TestFileSchema), &v)
	return v
})

// TestFile is a parsed *_test.yaml.
type TestFile struct {
	Path        string
	Pipeline    string
	PipelinePos diag.Pos
	Cases       []*Case
}

// Case is one test.
type Case struct {
	Name      string
	Pos       diag.Pos
	Input     []Input
	Advance   time.Duration
	Expect    []Expect
	ExpectDLQ []ExpectDLQ
}

// Input is one produced record, or a clock move when Advance is set.
type Input struct {
	Pos          diag.Pos
	Key          any
	Value        any
	HasValue     bool
	Raw          *string
	Timestamp    time.Time
	Headers      map[string]string
	Advance      time.Duration
	IsClockMove  bool
	HasTimestamp bool
	// Topic is where the record goes; empty for the source.
	Topic string
}

// Expect is one expected output record.
type Expect struct {
	Pos     diag.Pos
	Topic   string
	Key     any
	HasKey  bool
	Value   any
	Headers map[string]string
}

// ExpectDLQ is one expected dead letter.
type ExpectDLQ struct {
	Pos      diag.Pos
	Reason   string
	Key      any
	HasKey   bool
	Value    any
	HasValue bool
	Error    string
}

// ParseTestFile parses and validates a test file; errors are positioned.
func ParseTestFile(path string, data []byte) (*TestFile, error) {
	src, root, err := pipeline.ParseYAML(path, data)
	if err != nil {
		return nil, err
	}
	top := catalog.NewConfig(src, root)
	v, err := top.Value()
	if err != nil {
		return nil, err
	}
	sch, err := testSchema()
	if err != nil {
		return nil, err
	}
	if err := sch.Validate(record.Plain(v)); err != nil {
		return nil, pipeline.SchemaErrors(err, src, root, testSchemaDoc(), "test file").Err()
	}
	var errs diag.List
	tf := &TestFile{Path: path}
	p, _ := top.Get("pipeline")
	tf.Pipeline, tf.PipelinePos = p.String(), p.Pos()
	tests, _ := top.Get("tests")
	for _, t := range tests.Items() {
		c := &Case{Pos: t.Pos()}
		if n, ok := t.Get("name"); ok {
			c.Name = n.String()
		}
		if a, ok := t.Get("advance"); ok {
			c.Advance = duration(a, &errs)
		}
		if in, ok := t.Get("input"); ok {
			for _, it := range in.Items() {
				c.Input = append(c.Input, parseInput(it, &errs))
			}
		}
		if ex, ok := t.Get("expect"); ok {
			for _, it := range ex.Items() {
				e := Expect{Pos: it.Pos()}
				e.Topic = fieldString(it, "topic")
				e.Key, e.HasKey = fieldValue(it, "key", &errs)
				e.Value, _ = fieldValue(it, "value", &errs)
				e.Headers = fieldHeaders(it, &errs)
				c.Expect = append(c.Expect, e)
			}
		}
		if ex, ok := t.Get("expect_dlq"); ok {
			for _, it := range ex.Items() {
				e := ExpectDLQ{Pos: it.Pos()}
				e.Reason = fieldString(it, "reason")
				e.Error = fieldString(it, "error")
				e.Key, e.HasKey = fieldValue(it, "key", &errs)
				e.Value, e.HasValue = fieldValue(it, "value", &errs)
				c.ExpectDLQ = append(c.ExpectDLQ, e)
			}
		}
		tf.Cases = append(tf.Cases, c)
	}
	return tf, errs.Err()
}

func parseInput(it catalog.Config, errs *diag.List) Input {
	in := Input{Pos: it.Pos()}
	if a, ok := it.Get("advance"); ok {
		in.Advance, in.IsClockMove = duration(a, errs), true
		if len(it.Fields()) > 1 {
			errs.Add(a.Pos(), a.Errorf("an input item with advance moves the clock only; put the record in its own item"))
		}
		return in
	}
	if tc, ok := it.Get("topic"); ok {
		in.Topic = tc.String()
	}
	in.Key, _ = fieldValue(it, "key", errs)
	in.Value, in.HasValue = fieldValue(it, "value", errs)
	in.Headers = fieldHeaders(it, errs)
	if raw, ok := it.Get("raw"); ok {
		s := raw.String()
		in.Raw = &s
		if in.HasValue {
			errs.Add(raw.Pos(), raw.Errorf("give either value or raw, not both"))
		}
	}
	if ts, ok := it.Get("timestamp"); ok {
		v, _ := ts.Value()
		t, err := toTime(record.Plain(v))
		if err != nil {
			errs.Add(ts.Pos(), ts.Errorf("%v", err))
		}
		in.Timestamp, in.HasTimestamp = t, true
	}
	return in
}

func toTime(v any) (time.Time, error) {
	switch t := v.(type) {
	case string:
		ts, err := time.Parse(time.RFC3339Nano, t)
		if err != nil {
			return time.Time{}, fmt.Errorf("timestamp %q is not RFC 3339 (like 2026-01-01T00:00:00Z)", t)
		}
		return ts, nil
	case time.Time:
		return t, nil
	case int:
		return time.UnixMilli(int64(t)).UTC(), nil
	case float64:
		return time.UnixMilli(int64(t)).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("timestamp must be RFC 3339 or epoch milliseconds")
}

func duration(c catalog.Config, errs *diag.List) time.Duration {
	d, err := time.ParseDuration(c.String())
	if err != nil || d < 0 {
		errs.Add(c.Pos(), c.Errorf("%q is not a duration like 30s or 5m", c.String()))
		return 0
	}
	return d
}

func fieldString(c catalog.Config, name string) string {
	v, _ := c.Get(name)
	return v.String()
}

func fieldValue(c catalog.Config, name string, errs *diag.List) (any, bool) {
	v, ok := c.Get(name)
	if !ok {
		return nil, false
	}
	out, err := v.Value()
	if err != nil {
		errs.Add(v.Pos(), err)
		return nil, true
	}
	return record.Plain(out), true
}

func fieldHeaders(c catalog.Config, errs *diag.List) map[string]string {
	v, ok := c.Get("headers")
	if !ok {
		return nil
	}
	var m map[string]string
	if err := v.Decode(&m); err != nil {
		errs.Add(v.Pos(), err)
	}
	return m
}
