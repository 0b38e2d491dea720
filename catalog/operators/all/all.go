// Package all builds the standard operator registry: every operator that
// ships with Sluice. It is the one place that decides what is compiled in;
// tests that need fewer operators narrow the result with Registry.Only.
package all

import (
	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/aggregate"
	"github.com/sluicehq/sluice/catalog/operators/anomaly"
	"github.com/sluicehq/sluice/catalog/operators/dedupe"
	"github.com/sluicehq/sluice/catalog/operators/drivingevents"
	"github.com/sluicehq/sluice/catalog/operators/drop"
	"github.com/sluicehq/sluice/catalog/operators/explode"
	"github.com/sluicehq/sluice/catalog/operators/filter"
	"github.com/sluicehq/sluice/catalog/operators/geofence"
	"github.com/sluicehq/sluice/catalog/operators/heartbeat"
	"github.com/sluicehq/sluice/catalog/operators/idle"
	"github.com/sluicehq/sluice/catalog/operators/join"
	mapop "github.com/sluicehq/sluice/catalog/operators/map"
	"github.com/sluicehq/sluice/catalog/operators/mask"
	"github.com/sluicehq/sluice/catalog/operators/parse"
	"github.com/sluicehq/sluice/catalog/operators/rekey"
	"github.com/sluicehq/sluice/catalog/operators/rename"
	"github.com/sluicehq/sluice/catalog/operators/route"
	"github.com/sluicehq/sluice/catalog/operators/script"
	selectop "github.com/sluicehq/sluice/catalog/operators/select"
	"github.com/sluicehq/sluice/catalog/operators/sequence"
	"github.com/sluicehq/sluice/catalog/operators/sessionize"
	"github.com/sluicehq/sluice/catalog/operators/set"
	"github.com/sluicehq/sluice/catalog/operators/spike"
	"github.com/sluicehq/sluice/catalog/operators/threshold"
	"github.com/sluicehq/sluice/catalog/operators/trip"
	"github.com/sluicehq/sluice/catalog/operators/velocity"
	"github.com/sluicehq/sluice/catalog/operators/window"
)

// registrars lists every operator package's Register function.
var registrars = []func(*catalog.Registry) error{
	aggregate.Register,
	anomaly.Register,
	dedupe.Register,
	drivingevents.Register,
	drop.Register,
	explode.Register,
	filter.Register,
	geofence.Register,
	heartbeat.Register,
	idle.Register,
	join.Register,
	mapop.Register,
	mask.Register,
	parse.Register,
	rekey.Register,
	rename.Register,
	route.Register,
	script.Register,
	selectop.Register,
	sequence.Register,
	sequence.RegisterAbsence,
	sessionize.Register,
	set.Register,
	spike.Register,
	threshold.Register,
	trip.Register,
	velocity.Register,
	window.Register,
	window.RegisterTopN,
}

// New returns a fresh registry with every standard operator. Each call builds
// a new one, so callers may change theirs freely. A failure to register is a
// programming mistake in an operator package (a bad schema, a duplicate
// name) that the package's own tests catch, so it panics.
func New() *catalog.Registry {
	r := catalog.NewRegistry()
	for _, register := range registrars {
		if err := register(r); err != nil {
			panic("catalog/operators/all: " + err.Error())
		}
	}
	return r
}
