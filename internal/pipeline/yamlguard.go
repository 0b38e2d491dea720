package pipeline

import (
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/internal/diag"
)

// Limits on a YAML file, checked before any parser sees it. The YAML
// libraries have no useful limits of their own: tens of thousands of
// nested [ or { in 80 KB cost goccy/go-yaml (which positions syntax
// errors) gigabytes. Real pipelines and tests are a few levels deep and a
// few kilobytes long.
const (
	// MaxFileBytes is the largest pipeline or test file.
	MaxFileBytes = 1 << 20
	// MaxDepth is the deepest nesting of mappings and sequences.
	MaxDepth = 100
)

// checkLimits rejects data over MaxFileBytes or nested deeper than
// MaxDepth, positioned where the limit is passed.
func checkLimits(name string, data []byte) error {
	if len(data) > MaxFileBytes {
		line, col := offsetPos(data, MaxFileBytes)
		return diag.Errorf(diag.Pos{File: name, Line: line, Column: col},
			"file is %d bytes, over the limit of %d (1 MiB); split it into several files", len(data), MaxFileBytes)
	}
	if line, col, ok := tooDeep(data, MaxDepth); ok {
		return diag.Errorf(diag.Pos{File: name, Line: line, Column: col},
			"YAML nested deeper than %d levels; a pipeline needs a few", MaxDepth)
	}
	return nil
}

// offsetPos is the 1-based line and column of byte offset off.
func offsetPos(data []byte, off int) (line, col int) {
	line, col = 1, 1
	for _, c := range data[:off] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// tooDeep scans YAML for nesting deeper than max without parsing it, in
// one pass, and returns where it first goes deeper. It counts, on each
// line, the block levels opened by indentation, the compact ones opened on
// the line ("- - x", "? "), and the open flow collections ([ and {),
// skipping comments, quoted scalars and block scalars. It errs on the side
// of counting a level too many, which only matters near max.
func tooDeep(data []byte, max int) (line, col int, deep bool) {
	var (
		indents     []int // block indentation levels
		flow        int   // open flow collections
		quote       byte  // the quote of a scalar open across lines
		blockScalar = -1  // indentation a block scalar's lines exceed
	)
	for n, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSuffix(l, "\r")
		indent := len(l) - len(strings.TrimLeft(l, " "))
		if blockScalar >= 0 {
			if strings.TrimSpace(l) == "" || indent > blockScalar {
				continue
			}
			blockScalar = -1
		}
		i := indent
		if quote == 0 && flow == 0 {
			if rest := strings.TrimSpace(l); rest == "" || rest[0] == '#' {
				continue
			}
			for len(indents) > 0 && indents[len(indents)-1] > indent {
				indents = indents[:len(indents)-1]
			}
			if len(indents) == 0 || indents[len(indents)-1] < indent {
				indents = append(indents, indent)
			}
		}
		compact := 0
		valueStart := quote == 0
	scan:
		for i < len(l) {
			c := l[i]
			if quote != 0 {
				switch {
				case quote == '"' && c == '\\':
					i += 2
				case c == quote && quote == '\'' && i+1 < len(l) && l[i+1] == '\'':
					i += 2 // '' inside single quotes
				case c == quote:
					quote = 0
					i++
				default:
					i++
				}
				continue
			}
			spaceAfter := i+1 >= len(l) || l[i+1] == ' ' || l[i+1] == '\t'
			if valueStart {
				switch {
				case c == ' ' || c == '\t':
				case (c == '-' || c == '?') && spaceAfter && flow == 0:
					compact++
				case c == '[' || c == '{':
					flow++
				case c == '"' || c == '\'':
					quote = c
					valueStart = false
				case (c == '|' || c == '>') && flow == 0:
					blockScalar = indent
					break scan
				case c == '#':
					break scan
				case c == '&' || c == '!' || c == '*':
					for i < len(l) && l[i] != ' ' {
						i++
					}
					continue
				default:
					valueStart = false
				}
			} else {
				switch {
				case c == '#' && (l[i-1] == ' ' || l[i-1] == '\t'):
					break scan
				case c == ':' && spaceAfter:
					valueStart = true
					compact++ // a mapping opened on this line ("- a: b")
				case flow > 0 && (c == '[' || c == '{'):
					flow++
				case flow > 0 && c == ',':
					valueStart = true
				}
			}
			if flow > 0 && (c == ']' || c == '}') {
				flow--
			}
			if len(indents)+compact+flow > max {
				return n + 1, i + 1, true
			}
			i++
		}
	}
	return 0, 0, false
}

// trapHint returns advice for a YAML syntax error on line (1-based) of
// lines when the line's value is a plain scalar that YAML reads as syntax:
// an expression containing ": " (a ternary), or starting with a character
// YAML reserves. For a flow mapping or sequence ({...}, [...]) it names
// the entry to quote. It returns "" when it has nothing useful to say, and
// the 1-based column where the value starts.
func trapHint(lines []string, line int) (hint string, col int) {
	if line < 1 || line > len(lines) {
		return "", 0
	}
	raw := lines[line-1]
	l := strings.TrimLeft(raw, " ")
	for strings.HasPrefix(l, "- ") {
		l = strings.TrimLeft(l[2:], " ")
	}
	k := strings.Index(l, ": ")
	if k < 0 || strings.ContainsAny(l[:k], `"'{[`) {
		return "", 0
	}
	value := strings.TrimLeft(l[k+2:], " ")
	col = len(raw) - len(value) + 1
	value = strings.TrimSpace(value)
	if value == "" {
		return "", 0
	}
	if value[0] == '{' || value[0] == '[' {
		flow := value
		// A flow collection may go on over the next lines.
		for next := line; flowEnd(flow) < 0 && next < len(lines) && next < line+50; next++ {
			flow += " " + strings.TrimSpace(lines[next])
		}
		switch end := flowEnd(flow); {
		case end < 0:
			return "", col
		case end < len(flow)-1:
			// An expression that starts with a collection: {a} == b.
			return "; quote the expression: " + quoteYAML(value), col
		}
		value = flow
		for _, e := range flowEntries(value[1 : len(value)-1]) {
			if j := strings.Index(e, ": "); j >= 0 && value[0] == '{' {
				e = strings.TrimSpace(e[j+2:])
			}
			if e != "" && (e[0] == '\'' || e[0] == '"') {
				continue // quoted: never the trap
			}
			// Inside a flow collection any '?' ends a plain scalar too
			// (a ?? b, a ? b : c).
			if isTrap(e) || strings.ContainsAny(e, "[]{}?") {
				return fmt.Sprintf("; inside %c...%c quote the expression: %s, or write the step in block form",
					value[0], value[len(value)-1], quoteYAML(e)), col
			}
		}
		return "", col
	}
	if isTrap(value) {
		return "; quote the expression: " + quoteYAML(value), col
	}
	return "", col
}

// isTrap reports whether a plain scalar is one YAML does not read as text.
func isTrap(v string) bool {
	if v == "" {
		return false
	}
	return strings.ContainsRune("*&!{[%@`|>", rune(v[0])) || strings.Contains(v, ": ")
}

// flowEnd returns the index of the bracket that closes the flow collection
// v starts with, or -1 when it is not closed.
func flowEnd(v string) int {
	depth := 0
	var quote byte
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// flowEntries splits the inside of a flow collection at its top-level
// commas.
func flowEntries(s string) []string {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '[' || c == '{' || c == '(':
			depth++
		case c == ']' || c == '}' || c == ')':
			depth--
		case c == ',' && depth == 0:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

// quoteYAML writes v as a single-quoted YAML scalar.
func quoteYAML(v string) string {
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}
