// Package fieldpath addresses fields of decoded JSON objects by dotted paths
// (pos.lat), for the operators that select, drop, rename and explode fields.
//
// A path is split on every dot, so a field whose own name contains a dot
// cannot be addressed by a path.
package fieldpath

import (
	"strings"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/internal/diag"
)

// Path is a parsed dotted path: ["pos", "lat"] for pos.lat.
type Path []string

func (p Path) String() string { return strings.Join(p, ".") }

// Parse splits s into a path, reporting a malformed one at pos.
func Parse(s string, pos diag.Pos) (Path, error) {
	if s == "" {
		return nil, diag.Errorf(pos, "field name is empty")
	}
	p := Path(strings.Split(s, "."))
	for _, part := range p {
		if part == "" {
			return nil, diag.Errorf(pos, "field path %q has an empty part; separate nested names with single dots, like pos.lat", s)
		}
	}
	return p, nil
}

// ParseConfig parses a scalar config node as a path.
func ParseConfig(conf catalog.Config) (Path, error) {
	if !conf.IsScalar() {
		return nil, conf.Errorf("expected a field name, got a %s", conf.KindName())
	}
	return Parse(conf.String(), conf.Pos())
}

// Contains reports whether q is p or lies inside it (p is a prefix of q).
func (p Path) Contains(q Path) bool {
	if len(q) < len(p) {
		return false
	}
	for i := range p {
		if p[i] != q[i] {
			return false
		}
	}
	return true
}

// Overlaps reports whether one of p and q contains the other.
func (p Path) Overlaps(q Path) bool { return p.Contains(q) || q.Contains(p) }

// parent returns the object holding the path's last name, or false when an
// object on the way is missing or is not an object.
func (p Path) parent(obj map[string]any) (map[string]any, bool) {
	for _, name := range p[:len(p)-1] {
		next, ok := obj[name].(map[string]any)
		if !ok {
			return nil, false
		}
		obj = next
	}
	return obj, true
}

// Get returns the value at p and whether it is present.
func (p Path) Get(obj map[string]any) (any, bool) {
	parent, ok := p.parent(obj)
	if !ok {
		return nil, false
	}
	v, ok := parent[p[len(p)-1]]
	return v, ok
}

// Delete removes the value at p and returns it; a missing path is not an
// error.
func (p Path) Delete(obj map[string]any) (any, bool) {
	parent, ok := p.parent(obj)
	if !ok {
		return nil, false
	}
	name := p[len(p)-1]
	v, ok := parent[name]
	if ok {
		delete(parent, name)
	}
	return v, ok
}

// Set stores v at p, creating missing objects on the way. It fails with
// reason "type" when a value on the way exists but is not an object, rather
// than overwrite it.
func (p Path) Set(obj map[string]any, v any) error {
	for i, name := range p[:len(p)-1] {
		cur, present := obj[name]
		next, ok := cur.(map[string]any)
		switch {
		case ok:
		case !present || cur == nil:
			next = map[string]any{}
			obj[name] = next
		default:
			return catalog.Rejectf(catalog.ReasonType, "cannot set %s: %s is %s, not an object",
				p, p[:i+1], article(catalog.TypeName(cur)))
		}
		obj = next
	}
	obj[p[len(p)-1]] = v
	return nil
}

func article(typ string) string {
	switch typ {
	case "array", "object":
		return "an " + typ
	case "null":
		return typ
	}
	return "a " + typ
}

// ParseList reads a step value that is a non-empty list of field paths, as
// select and drop take, rejecting paths listed twice; every bad item is
// reported at its position.
func ParseList(conf catalog.Config) ([]Path, error) {
	if !conf.IsList() || len(conf.Items()) == 0 {
		kind := "a " + conf.KindName()
		if conf.IsList() {
			kind = "an empty list"
		}
		return nil, conf.Errorf("expected a list of field names, got %s", kind)
	}
	var paths []Path
	seen := map[string]bool{}
	var errs diag.List
	for _, item := range conf.Items() {
		p, err := ParseConfig(item)
		if err != nil {
			errs.Add(item.Pos(), err)
			continue
		}
		if seen[p.String()] {
			errs.Add(item.Pos(), item.Errorf("field %s is listed twice", p))
			continue
		}
		seen[p.String()] = true
		paths = append(paths, p)
	}
	return paths, errs.Err()
}
