package all

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/catalog/operatortest"
)

var want = []string{"absence", "aggregate", "anomaly", "dedupe", "driving_events", "drop", "explode", "filter", "geofence", "heartbeat", "idle", "join", "map", "mask", "parse", "rekey", "rename", "route", "script", "select", "sequence", "sessionize", "set", "spike", "threshold", "top_n", "trip", "velocity", "window"}

func TestNew(t *testing.T) {
	if got := strings.Join(New().Names(), " "); got != strings.Join(want, " ") {
		t.Fatalf("operators: %s\nwant:      %s", got, strings.Join(want, " "))
	}
}

// Every registry is fresh: changing one must not change the next.
func TestNewIsFresh(t *testing.T) {
	a := New()
	if err := registrars[0](a); err == nil {
		t.Fatal("registering aggregate twice should fail")
	}
	b := New()
	if len(b.Names()) != len(want) {
		t.Fatalf("second registry has %d operators", len(b.Names()))
	}
}

// The standard registry's examples all run, together, as the docs show them.
func TestExamples(t *testing.T) {
	reg := New()
	for _, name := range reg.Names() {
		t.Run(name, func(t *testing.T) { operatortest.RunExamples(t, reg, name) })
	}
}
