package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/pipeline"
	"github.com/sluicehq/sluice/internal/record"
)

func compilePlan(t *testing.T, source, steps string) *pipeline.Plan {
	t.Helper()
	src := fmt.Sprintf(`apiVersion: sluice/v1
kind: Pipeline
metadata: {name: diff}
spec:
  source: %s
  steps:
%s
  sink: {topic: out}
`, source, steps)
	p, err := (&pipeline.Compiler{Registry: all.New()}).Compile("diff.yaml", []byte(src))
	if err != nil {
		t.Fatalf("compiling:\n%s\n%v", src, err)
	}
	return p
}

// differentialInputs are record values that exercise the partial decoder's
// edges: valid and invalid JSON, values that are not objects, nested and
// duplicated fields, escapes, unicode and unusual numbers.
func differentialInputs() [][]byte {
	in := []string{
		`{"vehicle_id":"truck-00042","speed":23.7,"lat":52.370216,"lon":4.895168,"heading":271,"fuel":0.62,"driver":{"id":"d-17","shift":"early"},"engine_on":true,"sent_us":1790000000000000,"note":"xxxx"}`,
		`{"vehicle_id":"v1","speed":12.5,"lat":52.1,"fuel":0.1}`,
		`{"vehicle_id":"v2","speed":-1,"lat":52.1}`,
		`{"vehicle_id":"v3","speed":3}`,
		`{"vehicle_id":"v4","speed":"fast","lat":1}`,
		`{"vehicle_id":"v5","speed":1e3,"lat":-0,"fuel":-0.0}`,
		`{"vehicle_id":"v6","speed":1E-3,"lat":1.5e+300,"fuel":123456789012345678901234567890}`,
		`{"vehicle_id":"v7","speed":1e-400,"lat":0.1}`,
		`{"vehicle_id":"v8","speed":1e400,"lat":0.1}`,
		`{"vehicle_id":"v9","speed":5,"lat":1,"note":-1e400}`,
		`{"vehicle_id":"dup","vehicle_id":"dup2","speed":1,"speed":2,"lat":3}`,
		`{"speed":1,"lat":2,"speed":"late string"}`,
		`{"\u0073peed":40,"lat":1,"vehicle_id":"escaped key"}`,
		`{"vehicle_id":"ünïcödé ✓ 🚀 \u00e9\ud83d\ude80 \ud800","speed":1,"lat":2}`,
		`{"vehicle_id":"bad ` + "\xff\xfe" + ` utf8","speed":1,"lat":2,"other":"` + "\xc3" + `"}`,
		`{"` + "\xff" + `":1,"speed":1,"lat":2}`,
		`{"vehicle_id":"ctl \n\t\"q\" \\ \/ \u2028","speed":1,"lat":2}`,
		`{"vehicle_id":{"nested":[1,{"a":null}]},"speed":1,"lat":[1,2],"driver":{"id":"d-1","shift":{"x":true}}}`,
		`{"vehicle_id":null,"speed":0,"lat":false,"fuel":true,"driver":null}`,
		`{"speed":1,"lat":1,"deep":` + strings.Repeat("[", 700) + strings.Repeat("]", 700) + `}`,
		`{}`,
		` { "speed" : 2 , "lat" : 3 , "vehicle_id" : "spaces" } `,
		`[1,2,3]`,
		`"a string"`,
		`42`,
		`null`,
		`true`,
		``,
		`{"speed":1,"lat":2`,
		`{"speed":1,"lat":2,}`,
		`{"speed":01,"lat":2}`,
		`{"speed":1,"lat":2} trailing`,
		`{"speed":1,"lat":2}{"speed":3}`,
		`{"speed":1,"lat":"ctl` + "\x01" + `"}`,
		`{"speed":1,"lat":2,"x":"\q"}`,
		`{"speed":.5,"lat":2}`,
		`{"speed":tru,"lat":2}`,
		"\xef\xbb\xbf{\"speed\":1,\"lat\":2}",
		`{speed:1}`,
	}
	out := make([][]byte, 0, len(in)+300)
	for _, s := range in {
		out = append(out, []byte(s))
	}
	// Random records built from the same pieces.
	rng := rand.New(rand.NewPCG(1, 2))
	keys := []string{"vehicle_id", "speed", "lat", "lon", "fuel", "driver", "note", "sent_us", "key", "value", "x"}
	vals := []string{`1`, `-0`, `1e3`, `2.5E-2`, `"s"`, `"é\u00e9"`, `null`, `true`, `false`, `[]`, `{}`, `{"id":"d","n":[1,"2"]}`, `[1,[2,[3]]]`, `"` + "\xff" + `"`, `1e400`, `0.1`}
	for range 300 {
		var b strings.Builder
		b.WriteByte('{')
		for i := range rng.IntN(8) {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%q:%s", keys[rng.IntN(len(keys))], vals[rng.IntN(len(vals))])
		}
		b.WriteByte('}')
		s := b.String()
		if rng.IntN(10) == 0 { // break some of them
			s = s[:rng.IntN(len(s)+1)]
		}
		out = append(out, []byte(s))
	}
	return out
}

// runStage processes every input through stage 0 of p and returns the
// emitted messages as text, DLQ headers included.
func runStage(t *testing.T, p *pipeline.Plan, inputs [][]byte, opts ...engine.StageOption) (out []string, fields []string) {
	t.Helper()
	st := textStage(t, p, &out, opts...)
	for i, v := range inputs {
		m := engine.Message{Topic: "in", Partition: 1, Offset: int64(i), Key: []byte("k"), Value: v,
			Headers: []record.Header{{Key: "h", Value: []byte("hv")}}, Timestamp: time.UnixMilli(1_700_000_000_000)}
		if v == nil {
			m.Value = nil
		}
		if err := st.Process(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	// Close every window, so that final results come out too.
	if err := st.Advance(context.Background(), 1, catalog.EndOfTime); err != nil {
		t.Fatal(err)
	}
	return out, st.DecodesFields()
}

// textStage builds stage 0 of p at revision r1, appending what it emits
// to out as messageText.
func textStage(t *testing.T, p *pipeline.Plan, out *[]string, opts ...engine.StageOption) *engine.Stage {
	t.Helper()
	st, err := engine.NewStage(p, 0, func(_ context.Context, m engine.Message) error {
		*out = append(*out, messageText(m))
		return nil
	}, append(opts, engine.WithRevision("r1"))...)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// messageText is an emitted message as the differential tests compare
// them: topic, key, value, timestamp and headers.
func messageText(m engine.Message) string {
	var h []string
	for _, x := range m.Headers {
		h = append(h, x.Key+"="+string(x.Value))
	}
	return fmt.Sprintf("%s key=%q value=%q ts=%d headers=%q", m.Topic, m.Key, m.Value, m.Timestamp.UnixMilli(), h)
}

// TestDecodeOnlyReadFields runs pipelines whose steps read only some fields
// with and without decoding only those, over the same inputs, and requires
// identical outputs and dead letters (with their error texts).
func TestDecodeOnlyReadFields(t *testing.T) {
	tests := []struct {
		name   string
		source string
		steps  string
		fields []string // what the stage decodes; nil: whole values
	}{
		{"filter and map", "{topic: in}", `    - filter: speed >= 0 && lat != nil
    - map: {vehicle: vehicle_id, kmh: speed * 3.6, low_fuel: fuel < 0.2, sent_us: sent_us}`,
			[]string{"fuel", "lat", "sent_us", "speed", "vehicle_id"}},
		{"map only", "{topic: in}", `    - map: {v: vehicle_id, pos: {lat: lat, lon: lon}, d: driver.id, n: 2}`,
			[]string{"driver", "lat", "lon", "vehicle_id"}},
		{"map then filter", "{topic: in}", `    - map: {v: vehicle_id, s: speed}
    - filter: s != nil`, []string{"speed", "vehicle_id"}},
		{"two filters and select", "{topic: in}", `    - filter: lat != nil
    - filter: speed != nil
    - select: [vehicle_id, driver.id]`, []string{"driver", "lat", "speed", "vehicle_id"}},
		{"map with metadata", "{topic: in}", `    - map: {k: key, h: headers.h, t: timestamp, p: partition, o: offset, s: speed}`,
			[]string{"headers", "key", "offset", "partition", "speed", "timestamp"}},
		{"source key and timestamp", "{topic: in, key: vehicle_id, timestamp: sent_us}", `    - map: {s: speed}`,
			[]string{"sent_us", "speed", "vehicle_id"}},
		{"let and closures", "{topic: in}", `    - map: {a: 'let x = speed; x ?? 0', b: 'lat ?? 0'}`, []string{"lat", "speed", "x"}},
		// Steps that keep values (engine.ValueKeeper): outputs are the
		// input's bytes, so only what the steps read is decoded.
		{"filter only", "{topic: in}", `    - filter: speed >= 0`, []string{"speed"}},
		{"filter, rekey and route", "{topic: in}", `    - filter: speed >= 0
    - rekey: driver.id
    - route: [{when: fuel < 0.2, to: low}]`, []string{"driver", "fuel", "speed"}},
		{"keeper with a source key", "{topic: in, key: vehicle_id}", `    - filter: lat != nil`, []string{"lat", "vehicle_id"}},
		// These need whole values.
		{"map of value", "{topic: in}", `    - map: {v: value}`, nil},
		{"filter on value then map", "{topic: in}", `    - filter: value != nil
    - map: {s: speed}`, nil},
		{"env", "{topic: in}", `    - map: {s: '$env.speed'}`, nil},
		{"set keeps the rest", "{topic: in}", `    - set: {s: speed}
    - map: {s: s}`, nil},
		{"raw source", "{topic: in, format: raw}", `    - map: {line: value}`, nil},
		{"keeper reading the value", "{topic: in}", `    - filter: value.speed > 0`, nil},
		// Stateful steps. A window emits values of its own: it needs the
		// fields of its key and aggregate inputs, whatever comes after.
		{"window count", "{topic: in}", `    - window: {tumbling: 1m, grace: 0s, emit: update, aggregates: {n: count}}`, []string{}},
		{"window by and aggregates", "{topic: in, key: vehicle_id, partitioned_by_key: true}", `    - filter: speed != nil
    - window:
        by: vehicle_id
        tumbling: 1m
        grace: 0s
        emit: update
        aggregates: {s: {sum: speed}, m: {max: lat}, c: {count: fuel}, d: {count_distinct: driver.id}}
    - map: {s: s, w: window}`, []string{"driver", "fuel", "lat", "speed", "vehicle_id"}},
		{"window final", "{topic: in}", `    - window:
        hopping: {size: 2m, advance: 1m}
        grace: 0s
        aggregates: {first: {first: note}, last: {collect: lon, last: 2}, p: {percentiles: speed, at: [50]}}`,
			[]string{"lon", "note", "speed"}},
		{"session window", "{topic: in}", `    - window: {session: {gap: 1m}, grace: 0s, emit: update, aggregates: {a: {avg: speed}, x: {min: x}}}`,
			[]string{"speed", "x"}},
		{"top_n of a field", "{topic: in}", `    - top_n: {tumbling: 1m, grace: 0s, emit: update, n: 2, rank: speed, value: vehicle_id}`,
			[]string{"speed", "vehicle_id"}},
		{"top_n of whole values", "{topic: in}", `    - top_n: {tumbling: 1m, grace: 0s, n: 2, rank: speed}`, nil},
		{"window of value", "{topic: in}", `    - window: {tumbling: 1m, grace: 0s, emit: update, aggregates: {v: {last: value}}}`, nil},
		{"dedupe", "{topic: in, key: vehicle_id, partitioned_by_key: true}", `    - dedupe: {by: vehicle_id, within: 1m}`, []string{"vehicle_id"}},
		// A stream-table join passes its input on with the row added: the
		// steps after it read from its input too.
		{"table join then map", "{topic: in, key: vehicle_id, partitioned_by_key: true}", `    - join: {table: t, on: vehicle_id, as: row, type: left}
    - map: {v: vehicle_id, r: row, s: speed}`, []string{"row", "speed", "vehicle_id"}},
		// As the last step after keepers (engine.FieldSetter), it
		// appends the row to the input's bytes: it reads whether the
		// input has the field already.
		{"table join", "{topic: in, key: vehicle_id, partitioned_by_key: true}", `    - join: {table: t, on: vehicle_id, as: row, type: left}`,
			[]string{"row", "vehicle_id"}},
		{"filter then table join", "{topic: in, key: vehicle_id, partitioned_by_key: true}", `    - filter: speed > 0
    - join: {table: t, on: vehicle_id, as: row, type: left}`, []string{"row", "speed", "vehicle_id"}},
		{"stream join then map", "{topic: in, key: vehicle_id, partitioned_by_key: true}", `    - join: {stream: s, on: vehicle_id, as: o, within: 1m, grace: 0s}
    - map: {v: vehicle_id}`, nil},
	}
	inputs := differentialInputs()
	inputs = append(inputs, nil) // a tombstone
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := compilePlan(t, tt.source, tt.steps)
			if len(p.Stages) != 1 {
				t.Fatalf("%d stages, want 1:\n%s", len(p.Stages), p.Describe())
			}
			fast, fields := runStage(t, p, inputs)
			slices.Sort(fields)
			if (fields == nil) != (tt.fields == nil) || fmt.Sprint(fields) != fmt.Sprint(tt.fields) {
				t.Errorf("the stage decodes %q, want %q", fields, tt.fields)
			}
			full, none := runStage(t, p, inputs, engine.WithFullDecode())
			if none != nil {
				t.Fatalf("WithFullDecode still decodes only %q", none)
			}
			requireSameMessages(t, "decoding some fields", fast, "with whole values", full)
		})
	}
}

// requireSameMessages fails t unless got and want, runStage's messages
// from two ways of running one stage, are the same.
func requireSameMessages(t *testing.T, gotWay string, got []string, wantWay string, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d messages %s, %d %s", len(got), gotWay, len(want), wantWay)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("message %d:\n%s: %s\n%s: %s", i, gotWay, got[i], wantWay, want[i])
		}
	}
}

// A stage whose steps keep values writes each output with the input's
// bytes, whitespace, key order and number spelling included; a stage with
// a step that changes values encodes them again (sorted keys, no spaces).
// A keeper stage's tombstone stays a tombstone.
func TestKeepersPassBytes(t *testing.T) {
	in := []byte(`{ "speed" : 5,"b":1, "a":1e2, "fuel": 0.1 }`)
	canonical := `{"a":100.0,"b":1,"fuel":0.1,"speed":5}` // 1e2 is a float, 5 an int
	for _, tt := range []struct {
		name, steps string
		want        []string // output topic and value
	}{
		{"filter", `    - filter: speed > 0`, []string{"out " + string(in)}},
		{"filter and route", `    - filter: speed > 0
    - route: [{when: fuel < 0.2, to: low}]`, []string{"low " + string(in)}},
		{"rekey", `    - rekey: b`, []string{"out " + string(in)}},
		{"filter and set", `    - filter: speed > 0
    - set: {b: b}`, []string{"out " + canonical}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := compilePlan(t, "{topic: in}", tt.steps)
			st, got := recordingStage(t, p)
			if err := st.Process(context.Background(), engine.Message{Topic: "in", Value: in}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(*got, tt.want) {
				t.Fatalf("outputs %q, want %q", *got, tt.want)
			}
		})
	}
	p := compilePlan(t, "{topic: in}", `    - rekey: '"k"'`)
	var vals [][]byte
	st, err := engine.NewStage(p, 0, func(_ context.Context, m engine.Message) error {
		vals = append(vals, m.Value)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Process(context.Background(), engine.Message{Topic: "in"}); err != nil {
		t.Fatal(err)
	}
	if len(vals) != 1 || vals[0] != nil {
		t.Fatalf("tombstone through rekey: %q", vals)
	}
}

// A stream-table join that is the last step after keepers appends the row
// to the input's bytes (engine.FieldSetter); an input that has the field
// already, or a step after the join, makes the stage encode the joined
// value again.
func TestTableJoinAppendsToInputBytes(t *testing.T) {
	in := []byte(`{ "vehicle_id":"v1", "speed" : 5, "n": 4.0 }`)
	for _, tt := range []struct {
		name, steps string
		in, want    string
	}{
		{"filter and join", `    - filter: speed > 0
    - join: {table: t, on: vehicle_id, as: row}`, string(in), `{ "vehicle_id":"v1", "speed" : 5, "n": 4.0,"row":{"x":1}}`},
		{"left join without a row", `    - join: {table: t, on: vehicle_id, as: row, type: left}`,
			`{"vehicle_id":"v2"}`, `{"vehicle_id":"v2","row":null}`},
		{"routed before the join", `    - route: [{when: speed > 1, to: fast}]
    - join: {table: t, on: vehicle_id, as: row}`, string(in), "fast " + string(in)},
		{"the field is there", `    - join: {table: t, on: vehicle_id, as: row}`,
			`{"vehicle_id":"v1","row":0,"speed":5}`, `{"row":{"x":1},"speed":5,"vehicle_id":"v1"}`},
		{"a step after the join", `    - join: {table: t, on: vehicle_id, as: row}
    - set: {a: 1}`, string(in), `{"a":1,"n":4.0,"row":{"x":1},"speed":5,"vehicle_id":"v1"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := compilePlan(t, "{topic: in, key: vehicle_id, partitioned_by_key: true}", tt.steps)
			st, got := recordingStage(t, p)
			ctx := context.Background()
			if err := st.Process(ctx, engine.Message{Topic: "t", Key: []byte("v1"), Value: []byte(`{"x":1}`)}); err != nil {
				t.Fatal(err)
			}
			if err := st.Process(ctx, engine.Message{Topic: "in", Key: []byte("v1"), Value: []byte(tt.in)}); err != nil {
				t.Fatal(err)
			}
			want := []string{tt.want}
			if !strings.HasPrefix(tt.want, "fast ") {
				want[0] = "out " + tt.want
			}
			if !slices.Equal(*got, want) {
				t.Fatalf("outputs %q, want %q", *got, want)
			}
		})
	}
}

// recordingStage builds stage 0 of p, whose messages are noted in got as
// "topic value".
func recordingStage(t *testing.T, p *pipeline.Plan) (st *engine.Stage, got *[]string) {
	t.Helper()
	got = new([]string)
	st, err := engine.NewStage(p, 0, func(_ context.Context, m engine.Message) error {
		*got = append(*got, m.Topic+" "+string(m.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st, got
}
