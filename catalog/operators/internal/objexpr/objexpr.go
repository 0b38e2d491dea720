// Package objexpr compiles the `field: expression` mappings that the map and
// set operators take, where a nested mapping builds a nested object, and
// evaluates them on records.
package objexpr

import (
	"sync"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/diag"
	"github.com/sluicehq/sluice/internal/expression"
	"github.com/sluicehq/sluice/internal/record"
)

// Template is a compiled mapping. It is safe for concurrent use.
type Template struct {
	fields []field
	leaves int
	vals   sync.Pool // *[]any of length leaves
}

type field struct {
	name string
	prog *expression.Program // nil for a nested object
	sub  []field
}

// Compile compiles a mapping node. Every problem is reported, each at its
// own position.
func Compile(conf catalog.Config) (*Template, error) {
	if !conf.IsMap() {
		return nil, conf.Errorf("expected a mapping of field names to expressions, got a %s", conf.KindName())
	}
	t := &Template{}
	var errs diag.List
	t.fields = t.compile(conf, &errs)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	n := t.leaves
	t.vals.New = func() any { s := make([]any, n); return &s }
	return t, nil
}

func (t *Template) compile(conf catalog.Config, errs *diag.List) []field {
	fs := conf.Fields()
	if len(fs) == 0 {
		errs.Add(conf.Pos(), conf.Errorf("the mapping is empty; name at least one field"))
		return nil
	}
	out := make([]field, 0, len(fs))
	for _, f := range fs {
		v := f.Value
		switch {
		case v.IsMap():
			out = append(out, field{name: f.Name, sub: t.compile(v, errs)})
		case v.IsScalar() && v.Node().Tag == "!!null" && v.String() == "":
			errs.Add(f.NamePos, diag.Errorf(f.NamePos, "field %q has no expression; write nil for a null value", f.Name))
		case v.IsScalar():
			p, err := v.Expr(expression.Any)
			if err != nil {
				errs.Add(v.Pos(), err)
				continue
			}
			t.leaves++
			out = append(out, field{name: f.Name, prog: p})
		default:
			errs.Add(v.Pos(), v.Errorf("field %q: expected an expression or a mapping, got a %s", f.Name, v.KindName()))
		}
	}
	return out
}

// Values holds the results of one evaluation until they are written.
type Values struct{ s *[]any }

// Eval evaluates every expression on r, in order, before anything is
// written, so that each expression sees the record as it was before the
// step. Results are converted to decoded JSON form (see record.Plain).
// Release the Values after writing them.
func (t *Template) Eval(r *record.Record) (Values, error) {
	vs := t.vals.Get().(*[]any)
	i := 0
	if err := evalFields(t.fields, r, *vs, &i); err != nil {
		t.Release(Values{vs})
		return Values{}, err
	}
	return Values{vs}, nil
}

func evalFields(fs []field, r *record.Record, vals []any, i *int) error {
	for _, f := range fs {
		if f.prog == nil {
			if err := evalFields(f.sub, r, vals, i); err != nil {
				return err
			}
			continue
		}
		v, err := f.prog.Eval(r)
		if err != nil {
			return err
		}
		vals[*i] = record.Plain(v)
		*i++
	}
	return nil
}

// Release returns vals' storage for reuse.
func (t *Template) Release(vals Values) {
	clear(*vals.s) // do not keep record values alive in the pool
	t.vals.Put(vals.s)
}

// Write stores the values into dst. With merge, a nested mapping adds to an
// object already in dst instead of replacing it (set); without, every nested
// object is new (map).
func (t *Template) Write(dst map[string]any, vals Values, merge bool) {
	i := 0
	writeFields(t.fields, dst, *vals.s, &i, merge)
}

func writeFields(fs []field, dst map[string]any, vals []any, i *int, merge bool) {
	for _, f := range fs {
		if f.prog != nil {
			dst[f.name] = vals[*i]
			*i++
			continue
		}
		sub, ok := dst[f.name].(map[string]any)
		if !merge || !ok {
			sub = make(map[string]any, len(f.sub))
			dst[f.name] = sub
		}
		writeFields(f.sub, sub, vals, i, merge)
	}
}

// Flat returns the field names and their expressions, in the mapping's
// order, for a mapping without nested objects; false for one with.
func (t *Template) Flat() (names []string, progs []*expression.Program, ok bool) {
	for _, f := range t.fields {
		if f.prog == nil {
			return nil, nil, false
		}
		names = append(names, f.name)
		progs = append(progs, f.prog)
	}
	return names, progs, true
}

// Len returns the number of top-level fields.
func (t *Template) Len() int { return len(t.fields) }

// Fields reports the top-level fields of an object value that the
// mapping's expressions can read, or all when one reads the whole value
// (see expression.Program.Fields).
func (t *Template) Fields() (names []string, all bool) {
	var walk func(fs []field) bool
	walk = func(fs []field) bool {
		for _, f := range fs {
			if f.prog == nil {
				if walk(f.sub) {
					return true
				}
				continue
			}
			n, all := f.prog.Fields()
			if all {
				return true
			}
			names = append(names, n...)
		}
		return false
	}
	if walk(t.fields) {
		return nil, true
	}
	return names, false
}
