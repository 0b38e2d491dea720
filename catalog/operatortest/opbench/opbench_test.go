package opbench

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/catalog/operatortest"
	"github.com/sluicehq/sluice/internal/record"
	"github.com/sluicehq/sluice/internal/state"
)

// operators are the ones measured: filter and map as the yardstick, then
// the domain operators of issue 15.
var operators = []string{
	"filter", "map",
	"absence", "anomaly", "driving_events", "geofence", "heartbeat", "idle", "sequence", "sessionize", "spike",
	"threshold", "top_n", "trip", "velocity",
}

type task struct {
	store *state.Logged
	st    time.Time
}

func (t *task) Store() catalog.Store  { return t.store }
func (t *task) StreamTime() time.Time { return t.st }

type discard struct{}

func (discard) Next(context.Context, *record.Record) error       { return nil }
func (discard) To(context.Context, string, *record.Record) error { return nil }

var ident = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// stream makes the i-th record of an endless input from an operator's
// first documented example: the example's records over and over, each
// repetition shifted in time by the example's span plus a minute and given
// one of 1,000 grouping keys, so that state holds 1,000 keys as in a task
// of a real pipeline. Records are built fresh (a shallow copy of the
// example's value), as a decoded input record is; BenchmarkOperators/clone
// measures that alone.
type stream struct {
	in     []*record.Record
	span   time.Duration
	field  string // the `by` field to vary; "" varies the record key
	values []map[string]any
}

func newStream(ex catalog.Example) *stream {
	s := &stream{in: operatortest.Values(ex.Input...)}
	var lo, hi time.Time
	for _, r := range s.in {
		if lo.IsZero() || r.Timestamp.Before(lo) {
			lo = r.Timestamp
		}
		if r.Timestamp.After(hi) {
			hi = r.Timestamp
		}
		m, _ := r.Value.(map[string]any)
		s.values = append(s.values, m)
	}
	s.span = hi.Sub(lo) + time.Minute
	var conf map[string]any
	_ = yaml.Unmarshal([]byte(ex.Step), &conf)
	if by, ok := conf["by"].(string); ok && ident.MatchString(by) {
		s.field = by
	}
	return s
}

func (s *stream) record(i int) *record.Record {
	block, t := i/len(s.in), s.in[i%len(s.in)]
	r := &record.Record{Topic: t.Topic, Offset: int64(i), Timestamp: t.Timestamp.Add(time.Duration(block) * s.span)}
	key := fmt.Sprintf("k%03d", block%1000)
	if m := s.values[i%len(s.in)]; m != nil {
		c := make(map[string]any, len(m))
		for k, v := range m {
			c[k] = v
		}
		if _, ok := c[s.field]; ok && s.field != "" {
			c[s.field] = key
		}
		if _, ok := c["ts"]; ok {
			c["ts"] = r.Timestamp.UTC().Format(time.RFC3339Nano)
		}
		r.Value = c
	} else {
		r.Value = t.Value
	}
	if s.field == "" {
		r.Key = key
	}
	return r
}

// BenchmarkOperators measures each operator's cost per record on its
// first documented example's data: stateless ones through Process, stateful
// ones through ProcessTask with the state layer's changelogged store over
// memory (committed every 1,000 records, as a commit interval does) and
// OnWatermark every 100 records. dlq/op is the share of records the
// operator rejected (examples show bad and late records on purpose).
func BenchmarkOperators(b *testing.B) {
	reg := all.New()
	b.Run("clone", func(b *testing.B) {
		spec, _ := reg.Lookup("trip")
		s := newStream(spec.Examples[0])
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			_ = s.record(i)
			i++
		}
	})
	for _, name := range operators {
		b.Run(name, func(b *testing.B) {
			spec, ok := reg.Lookup(name)
			if !ok {
				b.Fatalf("%s is not registered", name)
			}
			ex := spec.Examples[0]
			op, err := operatortest.Build(reg, name, ex.Step)
			if err != nil {
				b.Fatal(err)
			}
			s := newStream(ex)
			ctx := context.Background()
			sop, stateful := op.(catalog.StatefulOperator)
			tk := &task{store: state.NewLogged(state.NewMemory(), 0)}
			commits := int64(0)
			rejected := 0
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r := s.record(i)
				i++
				if !stateful {
					if op.Process(ctx, r, discard{}) != nil {
						rejected++
					}
					continue
				}
				if r.Timestamp.After(tk.st) {
					tk.st = r.Timestamp
				}
				if sop.ProcessTask(ctx, tk, r, discard{}) != nil {
					rejected++
				}
				if i%100 == 0 {
					if err := sop.OnWatermark(ctx, tk, discard{}); err != nil {
						b.Fatal(err)
					}
				}
				if i%1000 == 0 {
					commits += int64(len(tk.store.Drain()))
					if err := tk.store.Committed(commits); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(rejected)/float64(i), "dlq/op")
		})
	}
}
