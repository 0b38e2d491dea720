package catalog

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/internal/diag"
	"github.com/sluicehq/sluice/internal/expression"
)

// Source is a parsed YAML file, kept so that every node can be traced back
// to its line and column.
type Source struct {
	Name  string
	Lines []string
}

// NewSource returns a Source for the named file's contents.
func NewSource(name string, data []byte) *Source {
	return &Source{Name: name, Lines: strings.Split(string(data), "\n")}
}

// Config is one step's configuration as written in the pipeline file: a YAML
// node that remembers where it came from, so that constructors can report
// errors at the exact token.
type Config struct {
	src  *Source
	node *yaml.Node
}

// NewConfig wraps node from src.
func NewConfig(src *Source, node *yaml.Node) Config {
	return Config{src: src, node: resolveAlias(node)}
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// Source returns the file the node came from.
func (c Config) Source() *Source { return c.src }

// Node returns the underlying YAML node.
func (c Config) Node() *yaml.Node { return c.node }

// Pos returns where the node starts.
func (c Config) Pos() diag.Pos {
	name := ""
	if c.src != nil {
		name = c.src.Name
	}
	if c.node == nil {
		return diag.Pos{File: name}
	}
	return diag.Pos{File: name, Line: c.node.Line, Column: c.node.Column}
}

// Errorf returns an error positioned at this node.
func (c Config) Errorf(format string, args ...any) error {
	return diag.Errorf(c.Pos(), format, args...)
}

// IsScalar, IsMap and IsList report the node's kind.
func (c Config) IsScalar() bool { return c.node != nil && c.node.Kind == yaml.ScalarNode }

// IsMap reports whether the node is a mapping.
func (c Config) IsMap() bool { return c.node != nil && c.node.Kind == yaml.MappingNode }

// IsList reports whether the node is a sequence.
func (c Config) IsList() bool { return c.node != nil && c.node.Kind == yaml.SequenceNode }

// String returns a scalar's text (an expression, a name, a duration).
func (c Config) String() string {
	if c.node == nil {
		return ""
	}
	return c.node.Value
}

// Field is one key of a mapping, in file order.
type Field struct {
	Name    string
	NamePos diag.Pos
	Value   Config
}

// Fields returns a mapping's keys in the order they were written.
func (c Config) Fields() []Field {
	if !c.IsMap() {
		return nil
	}
	out := make([]Field, 0, len(c.node.Content)/2)
	for i := 0; i+1 < len(c.node.Content); i += 2 {
		k := c.node.Content[i]
		out = append(out, Field{
			Name:    k.Value,
			NamePos: Config{src: c.src, node: k}.Pos(),
			Value:   NewConfig(c.src, c.node.Content[i+1]),
		})
	}
	return out
}

// Get returns the value of a mapping's key.
func (c Config) Get(name string) (Config, bool) {
	for _, f := range c.Fields() {
		if f.Name == name {
			return f.Value, true
		}
	}
	return Config{src: c.src}, false
}

// Items returns a sequence's elements.
func (c Config) Items() []Config {
	if !c.IsList() {
		return nil
	}
	out := make([]Config, len(c.node.Content))
	for i, n := range c.node.Content {
		out[i] = NewConfig(c.src, n)
	}
	return out
}

// Decode decodes the node into v with YAML rules; errors name the position.
func (c Config) Decode(v any) error {
	if c.node == nil {
		return c.Errorf("missing value")
	}
	if err := c.node.Decode(v); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			// yaml.v3 says "line N: cannot unmarshal ..."; the position is
			// ours to give, so keep only the message.
			msg := te.Errors[0]
			if i := strings.Index(msg, ": "); strings.HasPrefix(msg, "line ") && i > 0 {
				msg = msg[i+2:]
			}
			return c.Errorf("%s", msg)
		}
		return c.Errorf("%v", err)
	}
	return nil
}

// Value returns the node as a plain value (map[string]any, []any, string,
// int, float64, bool, nil), the form JSON Schema validation works on.
func (c Config) Value() (any, error) {
	var v any
	if err := c.Decode(&v); err != nil {
		return nil, err
	}
	// YAML types timestamp-looking scalars as times; JSON has no time type,
	// and users mean the text they wrote.
	return plainStrings(c.node, v), nil
}

// plainStrings re-reads scalars YAML typed as timestamps as the strings that
// were written, since JSON has no time type.
func plainStrings(n *yaml.Node, v any) any {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!timestamp" {
			return n.Value
		}
		return v
	case yaml.MappingNode:
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			m[k] = plainStrings(n.Content[i+1], m[k])
		}
		return m
	case yaml.SequenceNode:
		a, ok := v.([]any)
		if !ok {
			return v
		}
		for i := range a {
			if i < len(n.Content) {
				a[i] = plainStrings(n.Content[i], a[i])
			}
		}
		return a
	case yaml.AliasNode:
		return plainStrings(n.Alias, v)
	}
	return v
}

// Expr compiles the scalar as an expression. Errors point at the exact token
// inside the pipeline file, not just at the start of the expression.
func (c Config) Expr(want expression.Type) (*expression.Program, error) {
	if !c.IsScalar() {
		return nil, c.Errorf("expected an expression, got a %s", c.KindName())
	}
	p, err := expression.Compile(c.node.Value, want)
	if err != nil {
		var ee *expression.Error
		if errors.As(err, &ee) {
			return nil, diag.Errorf(c.PosAt(ee.Line, ee.Column), "%s", ee.Msg)
		}
		return nil, c.Errorf("%v", err)
	}
	return p, nil
}

// PosAt maps a 1-based line and column inside a scalar's text (an
// expression, an inline script) to a position in the file, allowing for
// quotes and block-scalar indentation.
func (c Config) PosAt(line, col int) diag.Pos {
	p := c.Pos()
	switch c.node.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		// Block scalars start on the line after the indicator; the column is
		// the block's indentation (set by its first non-empty line) plus the
		// column inside the line.
		indent := 0
		if c.src != nil {
			for i := p.Line; i < len(c.src.Lines); i++ { // Lines[p.Line] is the line after the indicator
				if l := c.src.Lines[i]; strings.TrimSpace(l) != "" {
					indent = len(l) - len(strings.TrimLeft(l, " "))
					break
				}
			}
		}
		p.Line += line
		p.Column = indent + col
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if line == 1 {
			p.Column += col // one for the quote, minus one for 1-based col
		} else {
			p.Line += line - 1
			p.Column = col
		}
	default:
		if line == 1 {
			p.Column += col - 1
		} else {
			p.Line += line - 1
			p.Column = col
		}
	}
	return p
}

// KindName names the node's kind for error messages.
func (c Config) KindName() string {
	if c.node == nil {
		return "nothing"
	}
	switch c.node.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	}
	return fmt.Sprint(c.node.Kind)
}
