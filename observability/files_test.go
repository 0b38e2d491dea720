package observability

import (
	"encoding/json"
	"io/fs"
	"os/exec"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// The alert rules have the shape Prometheus loads, every rule is complete,
// and, where promtool is installed (`make setup` installs the Debian
// package prometheus), `promtool check rules` accepts the file.
func TestAlertRules(t *testing.T) {
	b, err := fs.ReadFile(Files, "prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, g := range doc.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: a name and rules are required", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" || names[r.Alert] {
				t.Errorf("rule %q: missing or duplicate alert name", r.Alert)
			}
			names[r.Alert] = true
			if _, err := time.ParseDuration(r.For); err != nil {
				t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") || r.Expr == "" {
				t.Errorf("%s: unbalanced or empty expr %q", r.Alert, r.Expr)
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: severity, summary and description are required", r.Alert)
			}
		}
	}
	for _, want := range []string{"SluiceLagStalled", "SluiceLagStopped", "SluiceTimeLagHigh", "SluiceDLQRateHigh", "SluiceRestoreStuck"} {
		if !names[want] {
			t.Errorf("no %s rule", want)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool is not installed (make setup installs it): checked the structure only")
		return
	}
	out, err := exec.Command(promtool, "check", "rules", "prometheus/alerts.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// Dashboards are valid Grafana JSON: unique panel ids, every panel placed
// and querying Prometheus, the pipeline dashboard filtered by $pipeline.
func TestDashboards(t *testing.T) {
	for _, name := range []string{"grafana/pipeline.json", "grafana/fleet.json"} {
		b, err := fs.ReadFile(Files, name)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Title, UID string
			Panels     []struct {
				ID      int            `json:"id"`
				Type    string         `json:"type"`
				Title   string         `json:"title"`
				GridPos map[string]int `json:"gridPos"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
			Templating struct {
				List []struct{ Name string } `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
			t.Errorf("%s: title, uid and panels are required", name)
		}
		ids := map[int]bool{}
		for _, p := range d.Panels {
			if ids[p.ID] || p.Title == "" || p.GridPos["w"] == 0 || len(p.Targets) == 0 {
				t.Errorf("%s: panel %d %q: duplicate id, no title, no place or no query", name, p.ID, p.Title)
			}
			ids[p.ID] = true
			for _, tg := range p.Targets {
				if strings.Count(tg.Expr, "(") != strings.Count(tg.Expr, ")") {
					t.Errorf("%s: panel %q: unbalanced %q", name, p.Title, tg.Expr)
				}
				if name == "grafana/pipeline.json" && !strings.Contains(tg.Expr, `pipeline="$pipeline"`) {
					t.Errorf("%s: panel %q does not filter by $pipeline: %q", name, p.Title, tg.Expr)
				}
			}
		}
	}
}

// Every sluice_* series the files query is one of ours or the runtime's
// (internal/runtime's tests check the latter against its registry).
func TestQueriedSeriesAreKnown(t *testing.T) {
	m, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, n := range m.Names() {
		known[n] = true
	}
	series, err := QueriedSeries()
	if err != nil {
		t.Fatal(err)
	}
	ours := 0
	for _, s := range series {
		if known[s] {
			ours++
		}
	}
	if ours < len(known)-1 {
		t.Errorf("the files use %d of the %d lag series: %v", ours, len(known), series)
	}
}
