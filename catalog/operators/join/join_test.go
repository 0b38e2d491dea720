package join_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"

	"github.com/sluicehq/sluice/catalog/operators/join"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
	"github.com/sluicehq/sluice/internal/state"
)

func TestExamples(t *testing.T) {
	operatortest.RunExamples(t, operatortest.Registry(t, join.Register), "join")
}

func TestBuild(t *testing.T) {
	reg := operatortest.Registry(t, join.Register)
	if _, err := operatortest.Build(reg, "join", "table: customers\non: customer_id\n"); err == nil {
		t.Error("join without as was accepted")
	}
	op, err := operatortest.Build(reg, "join", "table: customers\non: customer_id\nas: c\n")
	if err != nil {
		t.Fatal(err)
	}
	// Inner join with an empty table drops the record.
	if res := operatortest.Process(context.Background(), op, operatortest.Values(map[string]any{"customer_id": "c1"})); len(res.Out) != 0 || len(res.DLQ) != 0 {
		t.Errorf("inner join on an empty table: out %v, dlq %v", res.Out, res.DLQ)
	}
}

type task struct {
	store *state.Memory
	st    time.Time
}

func (t *task) Store() catalog.Store  { return t.store }
func (t *task) StreamTime() time.Time { return t.st }

type sink struct{ out []*record.Record }

func (s *sink) Next(_ context.Context, r *record.Record) error   { s.out = append(s.out, r); return nil }
func (s *sink) To(context.Context, string, *record.Record) error { return nil }

// A stream-stream join pairs each record once, with every match of the
// other side in range, and keeps nothing once the stream time has passed
// within + grace.
func TestStreamStreamPairsAndExpires(t *testing.T) {
	reg := operatortest.Registry(t, join.Register)
	built, err := operatortest.Build(reg, "join", "stream: orders\non: id\nas: order\nwithin: 10s\ngrace: 0s\n")
	if err != nil {
		t.Fatal(err)
	}
	op := built.(catalog.SideInputOperator)
	ctx := context.Background()
	tk := &task{store: state.NewMemory()}
	out := &sink{}
	at := func(s int) time.Time { return time.Date(2026, 1, 1, 0, 0, s, 0, time.UTC) }
	side := func(s int, total float64) {
		tk.st = at(s)
		r := &record.Record{Topic: "orders", Value: map[string]any{"total": total}, Timestamp: at(s)}
		r.SetRawKey([]byte("k"))
		if err := op.ProcessSide(ctx, tk, r, out); err != nil {
			t.Fatal(err)
		}
	}
	main := func(s int) {
		tk.st = at(s)
		if err := op.ProcessTask(ctx, tk, &record.Record{Value: map[string]any{"id": "k", "n": float64(s)}, Timestamp: at(s)}, out); err != nil {
			t.Fatal(err)
		}
	}
	side(0, 1)
	side(5, 2)
	main(8)     // pairs with both orders
	side(12, 3) // pairs with the payment at 8 (4s apart)
	main(30)    // nothing within 10s
	var got []string
	for _, r := range out.out {
		v := r.Value.(map[string]any)
		got = append(got, fmt.Sprintf("%v+%v", v["n"], v["order"].(map[string]any)["total"]))
	}
	if strings.Join(got, " ") != "8+1 8+2 8+3" {
		t.Errorf("pairs %v, want [8+1 8+2 8+3]", got)
	}
	tk.st = catalog.EndOfTime
	if err := op.OnWatermark(ctx, tk, out); err != nil {
		t.Fatal(err)
	}
	if n := tk.store.Len(); n != 2 {
		t.Errorf("%d keys left after the end of time, want only the sequence counter and the stream time", n)
	}
	// The stream time the task expired at is kept for a restarted task.
	stored, ok, err := op.(catalog.StreamTimeRecorder).StoredStreamTime(tk)
	if err != nil || !ok || !stored.Equal(catalog.EndOfTime) {
		t.Errorf("stored stream time %v, %v, %v; want the end of time", stored, ok, err)
	}
}

// encodedSink takes values encoded by the join (catalog.EncodedOutput), as
// the output of a last step before a JSON sink does.
type encodedSink struct {
	vals    []string
	encoded int
}

func (s *encodedSink) Next(_ context.Context, r *record.Record) error {
	b, err := record.EncodeJSON(r.Value)
	s.vals = append(s.vals, string(b))
	return err
}
func (s *encodedSink) To(context.Context, string, *record.Record) error { return nil }
func (s *encodedSink) NextEncoded(_ context.Context, _ *record.Record, value []byte) error {
	s.encoded++
	s.vals = append(s.vals, string(value))
	return nil
}

// A stream-table join that is the last step writes the joined value itself
// from the stored row; it must be what the sink would have encoded from the
// joined record, byte for byte, for rows and records of every kind.
func TestEncodedJoinIsTheSinksEncoding(t *testing.T) {
	reg := operatortest.Registry(t, join.Register)
	rows := map[string]string{
		"a": `{"name":"Ann","n":4,"f":4.0,"x":1.5e300,"big":123456789012345678901234567890,"tags":["x",{"y":null}],"s":"é\n\"<>\u2028"}`,
		"b": `{}`,
		"c": `"just a string"`,
		"d": `[1,2.5,true]`,
		"e": `null`, // a tombstone: no row
		"f": `{"deep":` + strings.Repeat(`[`, 300) + strings.Repeat(`]`, 300) + `}`,
	}
	inputs := []map[string]any{
		{"id": "a", "v": 1, "w": 2.0},
		{"id": "b", "zz": "last", "AA": "first", "c": map[string]any{"k": []any{1, "two"}}},
		{"id": "c", "c": "replaced by the row"},
		{"id": "d"},
		{"id": "e"},
		{"id": "f"},
		{"id": "missing"},
	}
	for _, step := range []string{"table: t\non: id\nas: c\n", "table: t\non: id\nas: c\ntype: left\n"} {
		run := func(out catalog.Output) {
			built, err := operatortest.Build(reg, "join", step)
			if err != nil {
				t.Fatal(err)
			}
			op := built.(catalog.SideInputOperator)
			tk := loadRows(t, op, rows, out)
			for _, in := range inputs {
				r := &record.Record{Value: record.CloneValue(in)}
				if err := op.ProcessTask(t.Context(), tk, r, out); err != nil {
					t.Fatal(err)
				}
			}
		}
		var plain, enc encodedSink
		run(&struct{ catalog.Output }{&plain}) // without NextEncoded
		run(&enc)
		if enc.encoded < 4 {
			t.Errorf("%s: %d outputs encoded by the join, want the 4 with rows of normal depth", step, enc.encoded)
		}
		if fmt.Sprint(plain.vals) != fmt.Sprint(enc.vals) {
			t.Errorf("%s: outputs through Next\n%s\nwritten by the join\n%s", step, strings.Join(plain.vals, "\n"), strings.Join(enc.vals, "\n"))
		}
	}
}

// A stream-table join that is the last step after steps that keep values
// (engine.FieldSetter) gets its input's bytes, decoded only in the fields
// the stage reads: it appends the row to those bytes, keeping the input's
// members as they were written, and falls back to the whole value when the
// input has the field already or nothing takes encoded values. Either way
// the output is the joined value.
func TestJoinAppendsToInputBytes(t *testing.T) {
	reg := operatortest.Registry(t, join.Register)
	rows := map[string]string{
		"a": `{"f":4.0,"n":4,"name":"Ann"}`, // as stored: the encoder's bytes
		"d": `[1,2.5,true]`,
		"f": `{"deep":` + strings.Repeat(`[`, 300) + strings.Repeat(`]`, 300) + `}`,
	}
	inputs := []struct {
		raw, spliced string // spliced: the output written from raw, "" for none
	}{
		{`{"id":"a","v":1,"w":2.0}`, `{"id":"a","v":1,"w":2.0,"c":` + rows["a"] + `}`},
		{" { \"id\" : \"d\" , \"zz\":[1, 2] } \n", ` { "id" : "d" , "zz":[1, 2],"c":[1,2.5,true]}`},
		{`{"id":"f"}`, `{"id":"f","c":` + rows["f"] + `}`},
		{`{"id":"a","c":"replaced by the row"}`, ""},
		{`{"id":"missing"}`, `{"id":"missing","c":null}`}, // left only
	}
	fields := record.NewFieldSet("id", "c") // on and as
	for _, left := range []bool{false, true} {
		step := "table: t\non: id\nas: c\n"
		if left {
			step += "type: left\n"
		}
		built, err := operatortest.Build(reg, "join", step)
		if err != nil {
			t.Fatal(err)
		}
		if got := built.(interface{ SetsField() string }).SetsField(); got != "c" {
			t.Fatalf("SetsField() = %q, want c", got)
		}
		op := built.(catalog.SideInputOperator)
		tk := loadRows(t, op, rows, nil)
		for _, in := range inputs {
			if in.raw == `{"id":"missing"}` && !left {
				continue
			}
			full, err := record.DecodeJSON([]byte(in.raw))
			if err != nil {
				t.Fatal(err)
			}
			want := full.(map[string]any)
			want["c"] = nil
			if row, ok := rows[want["id"].(string)]; ok {
				if want["c"], err = record.DecodeJSON([]byte(row)); err != nil {
					t.Fatal(err)
				}
			}
			wantJSON, err := record.EncodeJSON(want)
			if err != nil {
				t.Fatal(err)
			}
			for _, encoded := range []bool{true, false} {
				part, ok := record.DecodeFields([]byte(in.raw), fields)
				if !ok {
					t.Fatalf("%s does not decode in part", in.raw)
				}
				r := &record.Record{Value: part}
				r.SetRawValue([]byte(in.raw))
				var sink encodedSink
				out := catalog.Output(&sink)
				if !encoded {
					out = &struct{ catalog.Output }{&sink}
				}
				if err := op.ProcessTask(t.Context(), tk, r, out); err != nil {
					t.Fatal(err)
				}
				if len(sink.vals) != 1 {
					t.Fatalf("%s (left %v, encoded %v): %d outputs, want 1", in.raw, left, encoded, len(sink.vals))
				}
				got := sink.vals[0]
				if encoded && in.spliced != "" {
					if sink.encoded != 1 || got != in.spliced {
						t.Errorf("%s (left %v): wrote %q (encoded %d), want the input's bytes with the row appended %q", in.raw, left, got, sink.encoded, in.spliced)
					}
					continue
				}
				if !encoded && r.RawValue() != nil {
					t.Errorf("%s (left %v): passed on with the input's bytes, which lack the row", in.raw, left)
				}
				v, err := record.DecodeJSON([]byte(got))
				if err != nil {
					t.Fatalf("%s (left %v, encoded %v): output %s: %v", in.raw, left, encoded, got, err)
				}
				if b, _ := record.EncodeJSON(v); string(b) != string(wantJSON) {
					t.Errorf("%s (left %v, encoded %v): output %s, want %s", in.raw, left, encoded, got, wantJSON)
				}
			}
		}
	}
}

// loadRows gives op the table rows (key -> JSON) in a new task.
func loadRows(t *testing.T, op catalog.SideInputOperator, rows map[string]string, out catalog.Output) *task {
	t.Helper()
	tk := &task{store: state.NewMemory()}
	for k, row := range rows {
		v, err := record.DecodeJSON([]byte(row))
		if err != nil {
			t.Fatal(err)
		}
		r := &record.Record{Topic: "t", Value: v}
		r.SetRawKey([]byte(k))
		if err := op.ProcessSide(t.Context(), tk, r, out); err != nil {
			t.Fatal(err)
		}
	}
	return tk
}
