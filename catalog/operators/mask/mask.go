// Package mask provides the mask operator, which redacts or hashes sensitive
// fields (card numbers, e-mail addresses, other PCI and PII data) before
// records leave a pipeline.
package mask

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/diag"
	"github.com/sluicehq/sluice/internal/record"
)

// Register adds the mask operator to r.
func Register(r *catalog.Registry) error {
	return r.Register(catalog.Spec{
		Name:        "mask",
		Summary:     "Redacts or hashes sensitive fields such as card numbers and e-mail addresses.",
		Description: description,
		Config:      schema,
		Examples:    examples,
		New:         New,
	})
}

const description = "`mask` hides the values of the listed `fields` so that card numbers, e-mail addresses " +
	"and other personal data do not reach sink topics in clear.\n\n" +
	"Fields are named by path: `customer.email` reaches the `email` field of the `customer` " +
	"object. A path that crosses an array applies to every element (`payments.card` masks the card " +
	"of every payment), and a field that holds an array has each element masked. Field names that " +
	"contain a dot cannot be addressed.\n\n" +
	"`with` chooses how:\n\n" +
	"- `redact` (default): the value becomes `\"****\"`.\n" +
	"- `hash`: the value becomes the lowercase hex SHA-256 of its text, so equal inputs give equal " +
	"outputs and masked fields can still be joined and counted. With `salt_env`, it is an " +
	"HMAC-SHA256 keyed with the contents of that environment variable instead, which stops " +
	"dictionary attacks on short values such as phone numbers; the variable is read once when the " +
	"pipeline is built, and building fails when it is unset or empty.\n" +
	"- `last4`: the value's text keeps its last four characters and every other character becomes " +
	"`*` (`4111111111111111` becomes `************1111`). Values of four characters or fewer are " +
	"masked entirely, since keeping them would show them whole.\n\n" +
	"The text of a value is the string itself, a number as written in JSON (`4111111111111111`), " +
	"`true` or `false`, and for an object its JSON encoding with sorted keys. Masked values are " +
	"always strings.\n\n" +
	"Missing and null fields are left alone, and so is a value that is not an object: `mask` never " +
	"sends records to the DLQ. Neither the salt nor any value is ever logged."

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["fields"],
  "properties": {
    "fields": {
      "description": "Paths of the fields to mask; dots reach into nested objects (customer.email).",
      "type": "array",
      "minItems": 1,
      "items": {"type": "string", "minLength": 1}
    },
    "with": {
      "description": "redact replaces the value with \"****\"; hash with the hex SHA-256 (or HMAC-SHA256 with salt_env) of its text; last4 keeps the last four characters.",
      "enum": ["redact", "hash", "last4"],
      "default": "redact"
    },
    "salt_env": {
      "description": "hash only: the name of an environment variable whose contents key an HMAC-SHA256. It must be set and non-empty when the pipeline is built.",
      "type": "string",
      "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"
    }
  }
}`

var examples = []catalog.Example{
	{
		Title:   "Redact card numbers",
		Summary: "The card number is replaced, wherever it is present.",
		Step:    "fields: [card_number, customer.email]",
		Input: []any{
			map[string]any{"id": 1, "card_number": "4111111111111111", "customer": map[string]any{"email": "a@example.com", "tier": "gold"}},
			map[string]any{"id": 2},
		},
		Output: []any{
			map[string]any{"id": 1, "card_number": "****", "customer": map[string]any{"email": "****", "tier": "gold"}},
			map[string]any{"id": 2},
		},
	},
	{
		Title:   "Keep the last four digits",
		Summary: "Receipts can show which card was used without showing the card; numbers are masked by their JSON text.",
		Step:    "{fields: [card], with: last4}",
		Input:   []any{map[string]any{"card": "4111-1111-1111-1234"}, map[string]any{"card": 5500000000000004}},
		Output:  []any{map[string]any{"card": "***************1234"}, map[string]any{"card": "************0004"}},
	},
	{
		Title:   "Hash e-mail addresses",
		Summary: "Equal addresses give equal hashes, so masked records can still be joined and counted.",
		Step:    "{fields: [payments.email], with: hash}",
		Input: []any{map[string]any{"payments": []any{
			map[string]any{"email": "alice@example.com"},
			map[string]any{"email": "alice@example.com", "amount": 3},
		}}},
		Output: []any{map[string]any{"payments": []any{
			map[string]any{"email": "ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976"},
			map[string]any{"email": "ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976", "amount": 3},
		}}},
	},
}

type method int

const (
	redact method = iota
	hashed
	last4
)

type operator struct {
	paths  [][]string
	with   method
	hashes sync.Pool // of hash.Hash (SHA-256 or HMAC-SHA256)
	bufs   sync.Pool // of *[]byte scratch space
}

// New builds a mask operator from its config.
func New(_ *catalog.Build, conf catalog.Config) (catalog.Operator, error) {
	if !conf.IsMap() {
		return nil, conf.Errorf("mask needs a mapping such as {fields: [card_number]}, got a %s", conf.KindName())
	}
	op := &operator{}
	var (
		haveFields, haveWith bool
		withConf, saltConf   catalog.Config
		saltField            *catalog.Field
	)
	given := map[string]bool{}
	for _, f := range conf.Fields() {
		v := f.Value
		if given[f.Name] {
			return nil, diag.Errorf(f.NamePos, "%s is given twice", f.Name)
		}
		given[f.Name] = true
		switch f.Name {
		case "fields":
			haveFields = true
			if !v.IsList() || len(v.Items()) == 0 {
				return nil, v.Errorf("fields must be a non-empty list of field paths")
			}
			seen := map[string]bool{}
			for _, it := range v.Items() {
				p := it.String()
				if !it.IsScalar() || p == "" {
					return nil, it.Errorf("a field must be a path such as customer.email, got a %s", it.KindName())
				}
				segs := strings.Split(p, ".")
				for _, s := range segs {
					if s == "" {
						return nil, it.Errorf("field path %q has an empty part", p)
					}
				}
				if seen[p] {
					return nil, it.Errorf("field %q is listed twice", p)
				}
				seen[p] = true
				op.paths = append(op.paths, segs)
			}
		case "with":
			haveWith, withConf = true, v
			switch s := v.String(); {
			case !v.IsScalar():
				return nil, v.Errorf("with must be redact, hash or last4, got a %s", v.KindName())
			case s == "redact":
				op.with = redact
			case s == "hash":
				op.with = hashed
			case s == "last4":
				op.with = last4
			default:
				return nil, v.Errorf("unknown method %q: use redact, hash or last4", s)
			}
		case "salt_env":
			fc := f
			saltField, saltConf = &fc, v
			if !v.IsScalar() || v.String() == "" {
				return nil, v.Errorf("salt_env must name an environment variable")
			}
		default:
			return nil, diag.Errorf(f.NamePos, "unknown option %q: mask takes fields, with and salt_env", f.Name)
		}
	}
	if !haveFields {
		return nil, conf.Errorf("mask needs fields: the paths of the fields to mask")
	}
	if saltField != nil && op.with != hashed {
		if !haveWith {
			return nil, diag.Errorf(saltField.NamePos, "salt_env only applies to with: hash (the default is redact)")
		}
		return nil, diag.Errorf(saltField.NamePos, "salt_env only applies to with: hash, and this step has with: %s", withConf.String())
	}
	if op.with == hashed {
		newHash := sha256.New
		if saltField != nil {
			// Read once, here; the salt is never logged or put in messages.
			salt := os.Getenv(saltConf.String())
			if salt == "" {
				return nil, saltConf.Errorf("environment variable %s is not set or is empty; it must hold the hash salt", saltConf.String())
			}
			key := []byte(salt)
			newHash = func() hash.Hash { return hmac.New(sha256.New, key) }
		}
		op.hashes.New = func() any { return newHash() }
	}
	op.bufs.New = func() any { b := make([]byte, 0, 64); return &b }
	return op, nil
}

// Process masks r's fields in place.
func (o *operator) Process(ctx context.Context, r *record.Record, out catalog.Output) error {
	if obj, ok := r.Value.(map[string]any); ok {
		for _, p := range o.paths {
			o.walk(obj, p)
		}
	}
	return out.Next(ctx, r)
}

// walk masks the field at path p under v, visiting every element of the
// arrays it crosses.
func (o *operator) walk(v any, p []string) {
	switch t := v.(type) {
	case map[string]any:
		fv, ok := t[p[0]]
		if !ok || fv == nil {
			return
		}
		if len(p) == 1 {
			t[p[0]] = o.maskValue(fv)
			return
		}
		o.walk(fv, p[1:])
	case []any:
		for _, e := range t {
			o.walk(e, p)
		}
	}
}

// maskValue returns the masked form of a field's value. Arrays keep their
// shape with each element masked; nulls stay null.
func (o *operator) maskValue(v any) any {
	switch t := v.(type) {
	case nil:
		return nil
	case []any:
		for i, e := range t {
			t[i] = o.maskValue(e)
		}
		return t
	}
	if o.with == redact {
		return "****"
	}
	bp := o.bufs.Get().(*[]byte)
	text := appendText((*bp)[:0], v)
	var s string
	if o.with == hashed {
		h := o.hashes.Get().(hash.Hash)
		h.Reset()
		h.Write(text)
		var sum [sha256.Size]byte
		s = hex.EncodeToString(h.Sum(sum[:0]))
		o.hashes.Put(h)
	} else {
		s = lastFour(text)
	}
	clear(text) // do not leave clear text in pooled memory
	*bp = text[:0]
	o.bufs.Put(bp)
	return s
}

// appendText appends the text a value is masked by.
func appendText(dst []byte, v any) []byte {
	switch t := v.(type) {
	case string:
		return append(dst, t...)
	case bool:
		return strconv.AppendBool(dst, t)
	case float64:
		return appendNumber(dst, t)
	case int:
		return strconv.AppendInt(dst, int64(t), 10)
	case int64:
		return strconv.AppendInt(dst, t, 10)
	default:
		out, err := record.AppendJSON(dst, v)
		if err != nil {
			// Not a JSON value: mask its Go form rather than fail.
			return append(dst, []byte(strings.TrimSpace(record.KeyString(v)))...)
		}
		return out
	}
}

// appendNumber writes f as JSON does for integers of up to 21 digits, and in
// the shortest exact form otherwise.
func appendNumber(dst []byte, f float64) []byte {
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		return strconv.AppendFloat(dst, f, 'f', -1, 64)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}

// lastFour keeps the last four characters of text, replacing the others
// with '*'; texts of four characters or fewer are masked whole.
func lastFour(text []byte) string {
	n := utf8.RuneCount(text)
	if n <= 4 {
		return strings.Repeat("*", n)
	}
	i := 0
	for k := 0; k < n-4; k++ {
		_, size := utf8.DecodeRune(text[i:])
		i += size
	}
	var b strings.Builder
	b.Grow(n - 4 + len(text) - i)
	for k := 0; k < n-4; k++ {
		b.WriteByte('*')
	}
	b.Write(text[i:])
	return b.String()
}
