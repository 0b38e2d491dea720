package observability

import (
	"embed"
	"io/fs"
	"regexp"
	"sort"
)

// Files holds the dashboards and alert rules that ship with Sluice:
// grafana/pipeline.json (one pipeline, variable $pipeline),
// grafana/fleet.json (every pipeline the Prometheus scrapes) and
// prometheus/alerts.yaml.
//
//go:embed grafana/*.json prometheus/*.yaml
var Files embed.FS

var seriesName = regexp.MustCompile(`\bsluice_[a-z0-9_]+`)

// QueriedSeries lists the sluice_* series the files in Files query, so
// tests can check each against the metrics the runner registers.
func QueriedSeries() ([]string, error) {
	seen := map[string]bool{}
	err := fs.WalkDir(Files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(Files, path)
		for _, n := range seriesName.FindAllString(string(b), -1) {
			seen[n] = true
		}
		return err
	})
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, err
}
