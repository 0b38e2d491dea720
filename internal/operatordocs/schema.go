package operatordocs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// maxDepth bounds how deep nested objects are flattened, so that a recursive
// schema ($ref to an ancestor) cannot loop.
const maxDepth = 8

// field is one row of a configuration table.
type field struct {
	path     string
	typ      string
	def      string
	required bool
	desc     string
}

// configuration writes the "Configuration" section of an operator page from
// its config schema (decoded JSON): a table of fields, nested objects and
// list items flattened into dotted paths, or a sentence when the step value
// is a plain string (an expression, usually) rather than a mapping.
func configuration(b *bytes.Buffer, doc any) {
	s := schemaDoc{root: doc}
	m := s.resolve(doc)
	if m == nil {
		b.WriteString("The step value is not checked.\n\n")
		return
	}
	var rows []field
	var scalars []string // types the value may have instead of a mapping
	var scalarDescs []string
	own := typeList(m)
	if it := s.resolve(m["items"]); len(own) == 1 && own[0] == "array" && it != nil && s.objectLike(it) {
		// A list of mappings (route's cases): the table is about one item.
		if d := describe(m); d != "" {
			b.WriteString(d + "\n\n")
		}
		b.WriteString("The step value is a list; each item is a mapping with the fields below.")
		if d := describe(it); d != "" {
			b.WriteString(" " + d)
		}
		b.WriteString("\n\n")
		s.children(it, "", 0, &rows)
		table(b, rows)
		return
	}
	s.children(m, "", 0, &rows)
	for _, t := range own {
		if t != "object" {
			scalars = appendNew(scalars, s.typeName(map[string]any{"type": t, "items": m["items"]}))
		}
	}
	// Without a type of its own, each oneOf/anyOf branch is a form the value
	// may take; with one, the branches only refine it (script's source or
	// file), and describe says how.
	if len(own) == 0 {
		for _, br := range s.branches(m) {
			if s.objectLike(br) {
				continue
			}
			t := s.typeName(br)
			scalars = appendNew(scalars, t)
			if d := describe(br); d != "" {
				scalarDescs = append(scalarDescs, fmt.Sprintf("- As %s %s: %s", article(t), t, d))
			}
		}
	}

	switch {
	case len(rows) == 0 && len(scalars) > 0:
		fmt.Fprintf(b, "The step value is %s %s, not a mapping.", article(scalars[0]), joinWords(scalars, "or"))
		if d := describe(m); d != "" {
			b.WriteString(" " + d)
		}
		b.WriteString("\n\n")
		writeList(b, scalarDescs)
	case len(rows) == 0:
		fmt.Fprintf(b, "The step value is %s %s.", article(s.typeName(m)), s.typeName(m))
		if d := describe(m); d != "" {
			b.WriteString(" " + d)
		}
		b.WriteString("\n\n")
	default:
		if d := describe(m); d != "" {
			b.WriteString(d + "\n\n")
		}
		if len(scalars) > 0 {
			fmt.Fprintf(b, "The step value is %s %s, or a mapping with the fields below.\n\n",
				article(scalars[0]), joinWords(scalars, "or"))
			writeList(b, scalarDescs)
		}
		table(b, rows)
	}
}

func table(b *bytes.Buffer, rows []field) {
	b.WriteString("| Field | Type | Default | Required | Description |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		req := "no"
		if r.required {
			req = "yes"
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s |\n", cell(r.path), cell(r.typ), r.def, req, cell(r.desc))
	}
	b.WriteString("\n")
}

func writeList(b *bytes.Buffer, items []string) {
	if len(items) == 0 {
		return
	}
	b.WriteString(strings.Join(items, "\n") + "\n\n")
}

// schemaDoc is a decoded JSON Schema with its root, for resolving local $refs.
type schemaDoc struct{ root any }

// resolve returns s as a schema object, following local $refs; keywords
// beside a $ref (a description, a default) override the target's. The
// schema true is the empty object; false and non-schemas are nil.
func (d schemaDoc) resolve(s any) map[string]any {
	if s == true {
		return map[string]any{}
	}
	m, ok := s.(map[string]any)
	if !ok {
		return nil
	}
	for range maxDepth {
		ref, ok := m["$ref"].(string)
		if !ok {
			break
		}
		target, ok := pointer(d.root, ref).(map[string]any)
		if !ok {
			break
		}
		merged := make(map[string]any, len(target)+len(m))
		for k, v := range target {
			merged[k] = v
		}
		for k, v := range m {
			if k != "$ref" {
				merged[k] = v
			}
		}
		m = merged
	}
	return m
}

// pointer follows a document-local JSON pointer ("#/$defs/zone").
func pointer(root any, ref string) any {
	if ref == "#" {
		return root
	}
	if !strings.HasPrefix(ref, "#/") {
		return nil
	}
	cur := root
	for _, tok := range strings.Split(ref[2:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch c := cur.(type) {
		case map[string]any:
			cur = c[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	return cur
}

// branches returns the alternatives of a oneOf or anyOf, resolved.
func (d schemaDoc) branches(m map[string]any) []map[string]any {
	var out []map[string]any
	for _, kw := range []string{"oneOf", "anyOf"} {
		list, _ := m[kw].([]any)
		for _, br := range list {
			if r := d.resolve(br); r != nil {
				out = append(out, r)
			}
		}
	}
	return out
}

// objectKeywords only apply to mappings; a schema with one of them and no
// type (a oneOf branch that requires a field) is about a mapping.
var objectKeywords = []string{"properties", "required", "additionalProperties", "patternProperties",
	"minProperties", "maxProperties", "propertyNames", "dependentRequired"}

// objectLike reports whether m describes a mapping.
func (d schemaDoc) objectLike(m map[string]any) bool { return d.objectLikeAt(m, 0) }

func (d schemaDoc) objectLikeAt(m map[string]any, depth int) bool {
	for _, kw := range objectKeywords {
		if _, ok := m[kw]; ok {
			return true
		}
	}
	for _, t := range typeList(m) {
		if t == "object" {
			return true
		}
	}
	if depth < maxDepth {
		for _, br := range d.branches(m) {
			if d.objectLikeAt(br, depth+1) {
				return true
			}
		}
	}
	return false
}

// properties collects the fields of an object schema, including those of
// allOf parts and of oneOf/anyOf alternatives. A field is required when the
// object itself or an allOf part requires it, or every alternative that
// lists fields does.
func (d schemaDoc) properties(m map[string]any) (map[string]any, map[string]bool) {
	props := map[string]any{}
	req := map[string]bool{}
	add := func(p map[string]any) {
		pm, _ := p["properties"].(map[string]any)
		for k, v := range pm {
			if _, seen := props[k]; !seen {
				props[k] = v
			}
		}
	}
	add(m)
	for _, r := range stringList(m["required"]) {
		req[r] = true
	}
	allOf, _ := m["allOf"].([]any)
	for _, part := range allOf {
		if p := d.resolve(part); p != nil {
			add(p)
			for _, r := range stringList(p["required"]) {
				req[r] = true
			}
		}
	}
	counts := map[string]int{}
	n := 0
	for _, br := range d.branches(m) {
		if !d.objectLike(br) {
			continue
		}
		n++
		add(br)
		for _, r := range stringList(br["required"]) {
			counts[r]++
		}
	}
	for r, c := range counts {
		if c == n {
			req[r] = true
		}
	}
	return props, req
}

// children appends the rows for the fields of m (an object, a map of values
// or a list of objects) under prefix.
func (d schemaDoc) children(m map[string]any, prefix string, depth int, out *[]field) {
	if depth > maxDepth {
		return
	}
	props, req := d.properties(m)
	names := make([]string, 0, len(props))
	for n := range props {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		d.rows(props[n], join(prefix, n), req[n], depth+1, out)
	}
	// A map of named values (aggregate: {events: count()}) gets one row for
	// any of its entries when the values say something of their own.
	if ap := d.resolve(m["additionalProperties"]); len(ap) > 0 && m["additionalProperties"] != true {
		if describe(ap) != "" || d.objectLike(ap) {
			d.rows(ap, join(prefix, "<name>"), false, depth+1, out)
		}
	}
	// The fields of list items follow the list's own row as list[].field.
	if it := d.resolve(m["items"]); it != nil && d.objectLike(it) {
		d.children(it, prefix+"[]", depth+1, out)
	}
}

func (d schemaDoc) rows(s any, path string, required bool, depth int, out *[]field) {
	m := d.resolve(s)
	if m == nil {
		return
	}
	f := field{path: path, typ: d.typeName(m), required: required, desc: describe(m)}
	if def, ok := m["default"]; ok {
		f.def = "`" + cell(literal(def)) + "`"
	}
	*out = append(*out, f)
	d.children(m, path, depth, out)
}

// typeName says what values m accepts: "string", "array of string",
// "map of number", "integer or string".
func (d schemaDoc) typeName(m map[string]any) string { return d.typeNameAt(m, 0) }

// maxTypeDepth bounds how far typeName spells out element types, which
// keeps names readable and recursive schemas finite.
const maxTypeDepth = 2

func (d schemaDoc) typeNameAt(m map[string]any, depth int) string {
	if c, ok := m["const"]; ok {
		return "`" + jsonLiteral(c) + "`"
	}
	var names []string
	for _, t := range typeList(m) {
		switch t {
		case "array":
			if it := d.resolve(m["items"]); len(it) > 0 && depth < maxTypeDepth {
				inner := d.typeNameAt(it, depth+1)
				if hasTopLevelOr(inner) {
					inner = "(" + inner + ")"
				}
				t = "array of " + inner
			}
		case "object":
			if _, ok := m["properties"]; !ok {
				if ap := d.resolve(m["additionalProperties"]); len(ap) > 0 && m["additionalProperties"] != true && depth < maxTypeDepth {
					inner := d.typeNameAt(ap, depth+1)
					if hasTopLevelOr(inner) {
						inner = "(" + inner + ")"
					}
					t = "map of " + inner
				}
			}
		}
		names = appendNew(names, t)
	}
	if len(names) == 0 {
		enum, _ := m["enum"].([]any)
		for _, v := range enum {
			names = appendNew(names, jsonType(v))
		}
	}
	if len(names) == 0 && depth <= maxTypeDepth {
		for _, br := range d.branches(m) {
			for _, t := range splitOr(d.typeNameAt(br, depth+1)) {
				names = appendNew(names, t)
			}
		}
	}
	if len(names) == 0 {
		if _, ok := m["properties"]; ok {
			names = []string{"object"}
		}
	}
	if len(names) == 0 {
		return "any"
	}
	return strings.Join(names, " or ")
}

// splitOr splits a union type name at its top-level "or"s.
func splitOr(t string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(t); i++ {
		switch t[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ' ':
			if depth == 0 && strings.HasPrefix(t[i:], " or ") {
				out = append(out, t[start:i])
				start = i + len(" or ")
			}
		}
	}
	return append(out, t[start:])
}

// hasTopLevelOr reports whether a type name is a union outside parentheses.
func hasTopLevelOr(t string) bool { return len(splitOr(t)) > 1 }

// describe is m's description followed by its constraints in words.
func describe(m map[string]any) string {
	var parts []string
	if s, ok := m["description"].(string); ok && strings.TrimSpace(s) != "" {
		parts = append(parts, sentence(s))
	}
	if enum, ok := m["enum"].([]any); ok && len(enum) > 0 {
		vals := make([]string, len(enum))
		for i, v := range enum {
			vals[i] = "`" + literal(v) + "`"
		}
		parts = append(parts, "One of "+joinWords(vals, "or")+".")
	}
	bound := func(kw, format string) {
		if v, ok := m[kw]; ok {
			parts = append(parts, fmt.Sprintf(format, jsonLiteral(v)))
		}
	}
	bound("minimum", "At least %s.")
	bound("exclusiveMinimum", "Greater than %s.")
	bound("maximum", "At most %s.")
	bound("exclusiveMaximum", "Less than %s.")
	if v, ok := m["minItems"].(float64); ok && v == 1 {
		parts = append(parts, "Must not be empty.")
	} else {
		bound("minItems", "At least %s items.")
	}
	bound("maxItems", "At most %s items.")
	bound("maxLength", "At most %s characters.")
	for _, alt := range []struct{ kw, format string }{
		{"oneOf", "Exactly one of %s must be set."},
		{"anyOf", "At least one of %s must be set."},
	} {
		if names := requiredAlternatives(m[alt.kw]); len(names) > 1 {
			parts = append(parts, fmt.Sprintf(alt.format, joinWords(names, "or")))
		}
	}
	if p, ok := m["pattern"].(string); ok {
		parts = append(parts, "Matches `"+p+"`.")
	}
	if dep, _ := m["deprecated"].(bool); dep {
		parts = append(parts, "Deprecated.")
	}
	return strings.Join(parts, " ")
}

// requiredAlternatives returns the field names of a oneOf or anyOf whose
// every branch only requires one field: {"oneOf": [{"required": ["source"]},
// {"required": ["file"]}]}.
func requiredAlternatives(v any) []string {
	list, _ := v.([]any)
	var names []string
	for _, br := range list {
		m, _ := br.(map[string]any)
		req := stringList(m["required"])
		if len(req) != 1 {
			return nil
		}
		for k := range m {
			if k != "required" && k != "description" {
				return nil
			}
		}
		names = append(names, "`"+req[0]+"`")
	}
	return names
}

// sentence ends s with a full stop unless it ends with punctuation.
func sentence(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, "?") && !strings.HasSuffix(s, "!") && !strings.HasSuffix(s, ")") && !strings.HasSuffix(s, "`") {
		s += "."
	}
	return s
}

func typeList(m map[string]any) []string {
	switch t := m["type"].(type) {
	case string:
		return []string{t}
	case []any:
		return stringList(t)
	}
	return nil
}

func stringList(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64, int, int64, json.Number:
		return "number"
	case []any:
		return "array"
	default:
		return "object"
	}
}

// literal shows a value as a user writes it in YAML: strings bare unless
// that would be unclear, everything else as JSON.
func literal(v any) string {
	if s, ok := v.(string); ok && s != "" && strings.TrimSpace(s) == s {
		return s
	}
	return jsonLiteral(v)
}

func jsonLiteral(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func article(word string) string {
	word = strings.TrimLeft(word, "`\"(")
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}
