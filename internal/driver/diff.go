package driver

import (
	"fmt"
	"sort"
	"strings"

	"github.com/sluicehq/sluice/internal/record"
)

// diff describes how got differs from want, one field per line with its
// dotted path, in a stable order, so scripts and people can read it.
func diff(want, got any) string {
	var lines []string
	diffAt("", record.Plain(want), record.Plain(got), &lines)
	return strings.Join(lines, "\n")
}

func diffAt(path string, want, got any, lines *[]string) {
	wm, wok := want.(map[string]any)
	gm, gok := got.(map[string]any)
	if wok && gok {
		keys := map[string]bool{}
		for k := range wm {
			keys[k] = true
		}
		for k := range gm {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			p := k
			if path != "" {
				p = path + "." + k
			}
			w, inW := wm[k]
			g, inG := gm[k]
			switch {
			case !inG:
				*lines = append(*lines, fmt.Sprintf("  - %s: %s (missing)", p, show(w)))
			case !inW:
				*lines = append(*lines, fmt.Sprintf("  + %s: %s (not expected)", p, show(g)))
			default:
				diffAt(p, w, g, lines)
			}
		}
		return
	}
	if record.EqualJSON(want, got) {
		return
	}
	if path == "" {
		*lines = append(*lines, "  -want "+show(want), "  +got  "+show(got))
		return
	}
	*lines = append(*lines, fmt.Sprintf("  ~ %s: want %s, got %s", path, show(want), show(got)))
}
