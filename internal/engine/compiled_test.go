package engine_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/internal/engine"
)

// TestCompiledStagesAgree runs stages of filters and flat maps compiled
// and through records (WithFullDecode turns the compiled path off) over
// inputs of every kind, good and bad, and requires the same messages: the
// same outputs byte for byte, and the same dead letters with the same
// reasons, which the compiled path leaves to the general one.
func TestCompiledStagesAgree(t *testing.T) {
	stages := []string{
		`    - filter: speed >= 0 && lat != nil
    - map: {vehicle: vehicle_id, kmh: speed * 3.6, low_fuel: fuel < 0.2, sent_us: sent_us}`,
		`    - filter: speed > 2`,
		`    - filter: id % 2 == 0`,
		`    - filter: speed`, // not a bool: dead letters
		`    - map: {d: driver.id, s: driver.shift, v: vehicle_id, n: nil, t: true, c: 2.5}`,
		`    - map: {v: vehicle_id, s: speed, id: id}
    - filter: s != nil && v != "v3"
    - map: {v: v, fast: 's > 10 ? "yes" : "no"', half: s / 2, neg: -s, id: 'id ?? -1'}`,
		`    - map: {name: vehicle_id + "!", n: speed + 1, m: id % 3, w: speed - fuel, big: fuel * 2}`,
		`    - filter: not (speed < 0) || lat == nil
    - filter: vehicle_id >= "v2"`,
		`    - map: {everything: driver, l: lat}`,
	}
	inputs := append(differentialInputs(), nil,
		[]byte(`{"id":4,"speed":7,"lat":1,"fuel":0.5,"vehicle_id":"v8"}`),
		[]byte(`{"id":5,"speed":7.5,"lat":1}`),
		[]byte(`{"id":4.0,"speed":7,"lat":1}`),
		[]byte(`{"id":9223372036854775807,"speed":9223372036854775807,"fuel":1}`),
		[]byte(`{"id":99999999999999999999,"speed":1,"lat":1}`),
		[]byte(`{"id":"4","speed":1,"lat":1}`),
		[]byte(`{"id":0,"speed":0,"lat":0,"fuel":0,"vehicle_id":""}`),
	)
	for i, steps := range stages {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			p := compilePlan(t, "{topic: in}", steps)
			st, err := engine.NewStage(p, 0, func(_ context.Context, _ engine.Message) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			if !st.RunsCompiled() {
				t.Fatalf("the stage does not run compiled:\n%s", steps)
			}
			compiled, _ := runStage(t, p, inputs)
			general, _ := runStage(t, p, inputs, engine.WithFullDecode())
			requireSameMessages(t, "compiled", compiled, "through records", general)
		})
	}
}

// TestStagesThatDoNotCompile names the shapes that run through records.
func TestStagesThatDoNotCompile(t *testing.T) {
	for _, tt := range []struct{ source, steps string }{
		{"{topic: in}", `    - map: {pos: {lat: lat, lon: lon}}`}, // nested
		{"{topic: in}", `    - map: {k: key, s: speed}`},          // metadata
		{"{topic: in}", `    - map: {s: lower(vehicle_id)}`},      // a function call
		{"{topic: in}", `    - filter: speed > 0
    - set: {b: 1}`}, // not a filter or map
		{"{topic: in, key: vehicle_id}", `    - filter: speed > 0`}, // a source key
		{"{topic: in, format: raw}", `    - filter: value != ""`},
		{"{topic: in}", `    - map: {v: vehicle_id}
    - filter: speed > 0`}, // reads a field the map dropped
		{"{topic: in}", `    - map: {a: lat}
    - map: {pos: {x: a}}`}, // a nested mapping after a flat one
	} {
		p := compilePlan(t, tt.source, tt.steps)
		st, err := engine.NewStage(p, 0, func(_ context.Context, _ engine.Message) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		if st.RunsCompiled() {
			t.Errorf("%s runs compiled", tt.steps)
		}
	}
}
