// Package parse provides the parse operator, which turns text (a whole raw
// value or one string field) into structure: JSON, one CSV line, or a raw
// string wrapped in an object.
package parse

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/diag"
	"github.com/sluicehq/sluice/internal/record"
)

// Register adds the parse operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:        "parse",
		Summary:     "Parses text, the whole value or one string field, as JSON, one CSV line or raw text.",
		Description: description,
		Config:      schema,
		Examples:    examples,
		New:         New,
	})
}

const description = "`parse` turns text into structure. Use it after a source with `format: raw` (whose " +
	"values are strings), or to unpack a field that holds an embedded JSON document or CSV line.\n\n" +
	"Without `field`, the whole value is parsed and must be a string. With `field`, that top-level " +
	"field of an object value is parsed and the result is stored under `into` (by default the same " +
	"field). Without `field` but with `into`, the result becomes the only field of a new object " +
	"value: `{<into>: result}`.\n\n" +
	"Formats:\n\n" +
	"- `json`: one JSON document.\n" +
	"- `csv`: one CSV line (quoted cells may span lines) becomes an object keyed by `columns`, in " +
	"order. Cells stay strings: convert them in a later `map` step, e.g. `kmh: float(speed)`. The " +
	"line must have exactly as many cells as there are columns. `delimiter` is one character " +
	"(default `,`). With `header: true`, a line whose cells are exactly the column names (the header " +
	"row of a CSV file streamed line by line) is dropped instead of parsed.\n" +
	"- `raw`: the text is kept as it is. Without `field`, the value becomes `{<into>: text}` " +
	"(`into` defaults to `value` here), which lets later steps treat raw lines as objects; with " +
	"`field`, the field's text is copied to `into`.\n\n" +
	"Bad records go to the DLQ: text that is not valid in the format gets reason `decode`; a value " +
	"(or field) that is not a string, or a value that is not an object when `field` is set, gets " +
	"reason `type`. When `field` is missing from the object or null, the record is passed on unchanged."

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["format"],
  "properties": {
    "format": {
      "description": "What the text is: json (one JSON document), csv (one CSV line, needs columns) or raw (kept as text).",
      "enum": ["json", "csv", "raw"]
    },
    "field": {
      "description": "Top-level string field to parse. Without it the whole value is parsed and must be a string.",
      "type": "string",
      "minLength": 1
    },
    "into": {
      "description": "Field that receives the result. Defaults to field; without field, the value becomes {into: result} (for raw, into defaults to \"value\").",
      "type": "string",
      "minLength": 1
    },
    "columns": {
      "description": "csv only, required: the names of the cells, in order. Cells are kept as strings.",
      "type": "array",
      "items": {"type": "string", "minLength": 1},
      "minItems": 1
    },
    "delimiter": {
      "description": "csv only: the one-character cell separator.",
      "type": "string",
      "default": ","
    },
    "header": {
      "description": "csv only: drop lines whose cells are exactly the column names (header rows).",
      "type": "boolean",
      "default": false
    }
  }
}`

var examples = []catalog.Example{
	{
		Title:   "Parse a raw JSON value",
		Summary: "A source with format raw delivers strings; parse turns them into objects. Text that is not JSON goes to the DLQ.",
		Step:    "format: json",
		Input:   []any{`{"id": 1, "speed": 12.5}`, `{"id": 2,`},
		Output:  []any{map[string]any{"id": 1, "speed": 12.5}},
		DLQ:     []catalog.Reason{catalog.ReasonDecode},
	},
	{
		Title:   "Unpack an embedded JSON field",
		Summary: "The payload field holds a JSON document as a string; the parsed document goes to body.",
		Step:    "{format: json, field: payload, into: body}",
		Input: []any{
			map[string]any{"id": "a", "payload": `{"temp": 21}`},
			map[string]any{"id": "b", "payload": 42},
		},
		Output: []any{map[string]any{"id": "a", "payload": `{"temp": 21}`, "body": map[string]any{"temp": 21}}},
		DLQ:    []catalog.Reason{catalog.ReasonType},
	},
	{
		Title:   "Parse CSV lines",
		Summary: "Each raw value is one CSV line; the header row is dropped and a line with the wrong number of cells goes to the DLQ.",
		Step: `format: csv
columns: [vehicle, speed, note]
header: true`,
		Input:  []any{"vehicle,speed,note", `v1,12.5,"slow, then fast"`, "v2,3"},
		Output: []any{map[string]any{"vehicle": "v1", "speed": "12.5", "note": "slow, then fast"}},
		DLQ:    []catalog.Reason{catalog.ReasonDecode},
	},
	{
		Title:   "Wrap raw lines",
		Summary: "Raw text becomes an object so that later steps can add fields next to it.",
		Step:    "{format: raw, into: line}",
		Input:   []any{"GET /index.html 200"},
		Output:  []any{map[string]any{"line": "GET /index.html 200"}},
	},
}

type format int

const (
	formatJSON format = iota
	formatCSV
	formatRaw
)

type operator struct {
	format    format
	field     string
	into      string
	columns   []string
	delimiter rune
	header    bool
	csv       sync.Pool // of *csvParser
}

// New builds a parse operator from its config.
func New(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	if !conf.IsMap() {
		return nil, conf.Errorf("parse needs a mapping such as {format: json}, got a %s", conf.KindName())
	}
	op := &operator{delimiter: ','}
	var formatConf catalog.Config
	var csvOnly []catalog.Field // options that only apply to csv
	haveFormat, haveColumns := false, false
	given := map[string]bool{}
	for _, f := range conf.Fields() {
		v := f.Value
		if given[f.Name] {
			return nil, diag.Errorf(f.NamePos, "%s is given twice", f.Name)
		}
		given[f.Name] = true
		switch f.Name {
		case "format":
			haveFormat, formatConf = true, v
			if !v.IsScalar() {
				return nil, v.Errorf("format must be json, csv or raw, got a %s", v.KindName())
			}
			switch v.String() {
			case "json":
				op.format = formatJSON
			case "csv":
				op.format = formatCSV
			case "raw":
				op.format = formatRaw
			default:
				return nil, v.Errorf("unknown format %q: use json, csv or raw", v.String())
			}
		case "field", "into":
			if !v.IsScalar() || v.String() == "" {
				return nil, v.Errorf("%s must be a field name", f.Name)
			}
			if f.Name == "field" {
				op.field = v.String()
			} else {
				op.into = v.String()
			}
		case "columns":
			csvOnly, haveColumns = append(csvOnly, f), true
			if !v.IsList() || len(v.Items()) == 0 {
				return nil, v.Errorf("columns must be a non-empty list of names")
			}
			seen := map[string]bool{}
			for _, it := range v.Items() {
				name := it.String()
				if !it.IsScalar() || name == "" {
					return nil, it.Errorf("a column must be a name, got a %s", it.KindName())
				}
				if seen[name] {
					return nil, it.Errorf("column %q is listed twice", name)
				}
				seen[name] = true
				op.columns = append(op.columns, name)
			}
		case "delimiter":
			csvOnly = append(csvOnly, f)
			d := v.String()
			r, size := utf8.DecodeRuneInString(d)
			if !v.IsScalar() || size == 0 || size != len(d) || r == utf8.RuneError {
				return nil, v.Errorf("delimiter must be exactly one character, got %q", d)
			}
			if r == '"' || r == '\r' || r == '\n' {
				return nil, v.Errorf("delimiter cannot be %q", d)
			}
			op.delimiter = r
		case "header":
			csvOnly = append(csvOnly, f)
			b, ok := scalarBool(v)
			if !ok {
				return nil, v.Errorf("header must be true or false, got %q", v.String())
			}
			op.header = b
		default:
			return nil, diag.Errorf(f.NamePos, "unknown option %q: parse takes format, field, into, columns, delimiter and header", f.Name)
		}
	}
	if !haveFormat {
		return nil, conf.Errorf("parse needs a format: json, csv or raw")
	}
	if op.format == formatCSV && !haveColumns {
		return nil, formatConf.Errorf("format csv needs columns: the names of the cells, in order")
	}
	if op.format != formatCSV && len(csvOnly) > 0 {
		return nil, diag.Errorf(csvOnly[0].NamePos, "%s only applies to format csv, and this step has format %s", csvOnly[0].Name, formatConf.String())
	}
	if op.into == "" {
		switch {
		case op.field != "":
			op.into = op.field
		case op.format == formatRaw:
			op.into = "value"
		}
	}
	return op, nil
}

// scalarBool reads a YAML boolean. (Config.Decode's messages keep a stray
// "N: " line prefix from yaml.v3, so booleans are read here.)
func scalarBool(c catalog.Config) (bool, bool) {
	if !c.IsScalar() {
		return false, false
	}
	v, err := c.Value()
	b, ok := v.(bool)
	return b, ok && err == nil
}

// Process parses r's value or field.
func (o *operator) Process(ctx context.Context, r *record.Record, out catalog.Output) error {
	if o.field == "" {
		s, ok := r.Value.(string)
		if !ok {
			return catalog.Rejectf(catalog.ReasonType, "expected a string value, got %s (read the topic with source format raw, or set field)", catalog.TypeName(r.Value))
		}
		v, drop, err := o.parse(s)
		if err != nil {
			return catalog.Reject(catalog.ReasonDecode, err)
		}
		if drop {
			return nil
		}
		if o.into != "" {
			v = map[string]any{o.into: v}
		}
		r.Value = v
		return out.Next(ctx, r)
	}
	obj, err := catalog.ObjectValue(r)
	if err != nil {
		return err
	}
	fv, present := obj[o.field]
	if !present || fv == nil {
		return out.Next(ctx, r)
	}
	s, ok := fv.(string)
	if !ok {
		return catalog.Rejectf(catalog.ReasonType, "field %q: expected a string, got %s", o.field, catalog.TypeName(fv))
	}
	v, drop, err := o.parse(s)
	if err != nil {
		return catalog.Reject(catalog.ReasonDecode, fmt.Errorf("field %q: %w", o.field, err))
	}
	if drop {
		return nil
	}
	obj[o.into] = v
	return out.Next(ctx, r)
}

// parse parses s in the configured format; drop is set for CSV header rows.
// Errors describe why s is not valid in the format.
func (o *operator) parse(s string) (v any, drop bool, err error) {
	switch o.format {
	case formatJSON:
		v, err := record.DecodeJSON([]byte(s))
		if err != nil {
			return nil, false, err
		}
		return v, false, nil
	case formatCSV:
		return o.parseCSV(s)
	default:
		return s, false, nil
	}
}

// csvParser is per-call CSV state, pooled: a csv.Reader allocates a 4 KiB
// buffer, which is too much to pay per record.
type csvParser struct {
	src strings.Reader
	r   *csv.Reader
}

func (o *operator) parseCSV(s string) (any, bool, error) {
	p, _ := o.csv.Get().(*csvParser)
	if p == nil {
		p = &csvParser{}
		p.r = csv.NewReader(&p.src)
		p.r.Comma = o.delimiter
		p.r.FieldsPerRecord = -1
		p.r.ReuseRecord = true
	}
	p.src.Reset(s)
	cells, err := p.r.Read()
	if err == nil {
		// A value is one line; a second line means the input was split wrong.
		if _, err2 := p.r.Read(); err2 != io.EOF {
			// The reader may hold buffered text: do not reuse it.
			return nil, false, fmt.Errorf("invalid CSV: the value holds more than one line")
		}
	}
	if err != nil {
		// After an error the reader may hold buffered text: do not reuse it.
		if err == io.EOF {
			return nil, false, fmt.Errorf("invalid CSV: the value is empty")
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, false, fmt.Errorf("invalid CSV: %v (column %d)", pe.Err, pe.Column)
		}
		return nil, false, fmt.Errorf("invalid CSV: %v", err)
	}
	// Both reads ended cleanly at the end of s: nothing is buffered.
	defer o.csv.Put(p)
	if len(cells) != len(o.columns) {
		return nil, false, fmt.Errorf("invalid CSV: the line has %d cells but columns lists %d names", len(cells), len(o.columns))
	}
	if o.header && o.isHeader(cells) {
		return nil, true, nil
	}
	m := make(map[string]any, len(cells))
	for i, c := range cells {
		m[o.columns[i]] = c
	}
	return m, false, nil
}

func (o *operator) isHeader(cells []string) bool {
	for i, c := range cells {
		if c != o.columns[i] {
			return false
		}
	}
	return true
}
