package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/runtime"
)

const (
	joinCustomers = 50 // c0..c49 are in the table; c49 is deleted again
	joinUnknown   = 10 // c50..c59 never are
)

// customerRows is the table: a row per customer, c0 updated once (the
// second row wins) and c49 deleted by a tombstone.
func customerRows(topic string) []*kgo.Record {
	var out []*kgo.Record
	for i := range joinCustomers {
		out = append(out, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "c%d", i), Value: fmt.Appendf(nil, `{"name":"n%d","tier":%d}`, i, i%3)})
	}
	return append(out,
		&kgo.Record{Topic: topic, Key: []byte("c0"), Value: []byte(`{"name":"n0","tier":9}`)},
		&kgo.Record{Topic: topic, Key: []byte("c49")})
}

// wantRow is the row order i must be joined with, nil for none.
func wantRow(i int) map[string]any {
	c := i % (joinCustomers + joinUnknown)
	switch {
	case c == 0:
		return map[string]any{"name": "n0", "tier": 9.0}
	case c >= joinCustomers-1:
		return nil
	}
	return map[string]any{"name": fmt.Sprintf("n%d", c), "tier": float64(c % 3)}
}

// orders are n orders of customers c0..c59 in turn, keyed by key(i).
func orders(topic string, n int, key func(i int) string) []*kgo.Record {
	out := make([]*kgo.Record, n)
	for i := range n {
		c := i % (joinCustomers + joinUnknown)
		out[i] = &kgo.Record{Topic: topic, Key: []byte(key(i)), Value: fmt.Appendf(nil, `{"order":%d,"customer_id":"c%d"}`, i, c)}
	}
	return out
}

// checkEnriched requires exactly one output per order, each with the row its
// customer has in the final table.
func checkEnriched(t *testing.T, outs []*kgo.Record, n int) {
	t.Helper()
	seen := make([]bool, n)
	bad := 0
	for _, r := range outs {
		var v struct {
			Order    int            `json:"order"`
			Customer map[string]any `json:"customer"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil || v.Order < 0 || v.Order >= n {
			t.Fatalf("output %s: %v", r.Value, err)
		}
		if seen[v.Order] {
			t.Fatalf("order %d joined twice", v.Order)
		}
		seen[v.Order] = true
		if want := wantRow(v.Order); !reflect.DeepEqual(v.Customer, want) {
			if bad++; bad <= 10 {
				t.Errorf("order %d joined with %v, want %v", v.Order, v.Customer, want)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d orders joined with the wrong row", bad, n)
	}
	if len(outs) != n {
		t.Fatalf("%d outputs, want %d", len(outs), n)
	}
}

// TestJoinStreamTable runs a stream-table left join in runner processes
// (runtimes). With one runner, the table and the stream are both written
// before the pipeline starts, so that a task which processed its stream
// before its table partition was read would join orders with no row or an
// old one. With two, the stream is written once both hold partitions, so
// each must hold the table partitions of its stream partitions. Every
// order must meet its customer's final row, exactly once.
func TestJoinStreamTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		// keyedByCustomer: the orders topic is keyed and partitioned by
		// customer_id, so the join reads it directly; otherwise it is
		// keyed by order and repartitioned by customer_id.
		keyedByCustomer    bool
		orderParts, tParts int32
		runners            int
		delivery, store    string
	}{
		{"copartitioned-two-runners", true, 3, 3, 2, "exactly-once", "memory"},
		{"repartitioned", false, 4, 3, 1, "exactly-once", "disk"},
		{"at-least-once", true, 2, 2, 1, "at-least-once", "memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			brokers := kafkatest.Brokers(t)
			in, table, out := "orders-"+tc.name, "customers-"+tc.name, "enriched-"+tc.name
			kafkatest.CreateTopic(t, brokers, in, tc.orderParts)
			kafkatest.CreateTopic(t, brokers, table, tc.tParts)
			const n = 3000
			key := func(i int) string { return fmt.Sprintf("o%d", i) }
			source := fmt.Sprintf("{topic: %s}", in)
			if tc.keyedByCustomer {
				key = func(i int) string { return fmt.Sprintf("c%d", i%(joinCustomers+joinUnknown)) }
				source = fmt.Sprintf("{topic: %s, key: customer_id, partitioned_by_key: true}", in)
			}
			kafkatest.Produce(t, brokers, customerRows(table)...)
			if tc.runners == 1 {
				kafkatest.Produce(t, brokers, orders(in, n, key)...)
			}

			name := "enrich-" + tc.name
			p := plan(t, name, fmt.Sprintf(`  source: %s
  steps:
    - join: {table: %s, on: customer_id, as: customer, type: left}
  sink: {topic: %s}
  state: {store: %s}
  delivery: %s
`, source, table, out, tc.store, tc.delivery))
			var rts []*runtime.Runtime
			for i := range tc.runners {
				rt := newRuntime(t, brokers, runtime.StateDir(t.TempDir()), runtime.InstanceID(fmt.Sprint(i)))
				if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "r1"}}); err != nil {
					t.Fatal(err)
				}
				rts = append(rts, rt)
			}
			if tc.runners > 1 {
				kafkatest.Eventually(t, 20*time.Second, "every runner holding partitions", func() bool {
					held := 0
					for _, rt := range rts {
						st := statusOf(t, rt, name)
						if st.State != runtime.Running || len(st.Partitions) == 0 {
							return false
						}
						held += len(st.Partitions)
					}
					return held == int(tc.orderParts)
				})
				kafkatest.Produce(t, brokers, orders(in, n, key)...)
			}
			outs := readAfterCommit(t, brokers, p, out) // anything beyond n is a duplicate
			checkEnriched(t, outs, n)

			held := 0
			for _, rt := range rts {
				st := statusOf(t, rt, name)
				if st.Restarts > 0 || st.DeadLetter > 0 {
					t.Errorf("status %+v", st)
				}
				held += len(st.Partitions)
			}
			if held != int(tc.orderParts) {
				t.Errorf("the runners hold %d partitions of %s, want %d", held, in, tc.orderParts)
			}
			if !tc.keyedByCustomer {
				// The repartition topic is co-partitioned with the table,
				// and so is the join's changelog.
				adm := kadm.NewClient(kafkatest.Client(t, brokers))
				td, err := adm.ListTopics(context.Background(), name+"-join-repartition", name+"-join-changelog")
				if err != nil {
					t.Fatal(err)
				}
				for topic, d := range td {
					if len(d.Partitions) != int(tc.tParts) {
						t.Errorf("%s has %d partitions, want %d (the table's)", topic, len(d.Partitions), tc.tParts)
					}
				}
				if len(td) != 2 {
					t.Errorf("topics %v", td.Names())
				}
			}
		})
	}
}

// TestJoinTransactionalTable: a table written in transactions (by an
// exactly-once pipeline, say) ends in a transaction marker, which a
// read_committed consumer does not hand out. Its tasks must still see
// their table partitions reach the end looked up, marker included, rather
// than wait for the consumer to go quiet, which a busy pipeline never
// does.
func TestJoinTransactionalTable(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in, table, out := kafkatest.Topic(t, "orders"), kafkatest.Topic(t, "customers"), kafkatest.Topic(t, "enriched")
	kafkatest.CreateTopic(t, brokers, in, 2)
	kafkatest.CreateTopic(t, brokers, table, 2)
	txn := kafkatest.Client(t, brokers, kgo.TransactionalID("table-writer"))
	ctx := context.Background()
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctx, customerRows(table)...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	const n = 600
	kafkatest.Produce(t, brokers, orders(in, n, func(i int) string { return fmt.Sprintf("c%d", i%(joinCustomers+joinUnknown)) })...)

	name := kafkatest.Topic(t, "enrich")
	p := plan(t, name, fmt.Sprintf(`  source: {topic: %s, key: customer_id, partitioned_by_key: true}
  steps:
    - join: {table: %s, on: customer_id, as: customer, type: left}
  sink: {topic: %s}
`, in, table, out))
	logs := &logBuffer{}
	rt := newRuntime(t, brokers, runtime.Logger(slog.New(slog.NewTextHandler(logs, nil))))
	if err := rt.Apply(ctx, []runtime.Pipeline{{Plan: p, Revision: "r1"}}); err != nil {
		t.Fatal(err)
	}
	checkEnriched(t, readAfterCommit(t, brokers, p, out), n)
	if got := strings.Count(logs.String(), "tables caught up"); got != 2 || strings.Contains(logs.String(), "short of their end") {
		t.Errorf("%d tasks saw their table partition reach its end, want 2; log:\n%s", got, logs.String())
	}
}

// TestJoinPartitionMismatch: a join whose stream and table have different
// partition counts cannot pair partition p with partition p; the pipeline
// fails with both counts in its status instead of joining wrongly.
func TestJoinPartitionMismatch(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	kafkatest.CreateTopic(t, brokers, "orders", 4)
	kafkatest.CreateTopic(t, brokers, "customers", 3)
	p := plan(t, "enrich", `  source: {topic: orders, key: customer_id, partitioned_by_key: true}
  steps:
    - join: {table: customers, on: customer_id, as: customer}
  sink: {topic: out}
`)
	rt := newRuntime(t, brokers)
	if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "r1"}}); err != nil {
		t.Fatal(err)
	}
	want := "stage 0 reads topics partition by partition together, so they need the same partition count, but customers has 3, orders has 4 partitions"
	kafkatest.Eventually(t, 10*time.Second, "the pipeline failing with both counts", func() bool {
		st := statusOf(t, rt, "enrich")
		return st.State == runtime.Failed && strings.Contains(st.Error, want)
	})
}

// TestJoinWaitsForTable: a table topic that does not exist yet makes the
// pipeline wait, naming it, like a missing source.
func TestJoinWaitsForTable(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	kafkatest.CreateTopic(t, brokers, "orders", 2)
	p := plan(t, "enrich", `  source: {topic: orders}
  steps:
    - join: {table: customers, on: customer_id, as: customer}
  sink: {topic: out}
`)
	rt := newRuntime(t, brokers)
	if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "r1"}}); err != nil {
		t.Fatal(err)
	}
	kafkatest.Eventually(t, 10*time.Second, "the pipeline waiting for its table", func() bool {
		st := statusOf(t, rt, "enrich")
		return st.State == runtime.Waiting && strings.Contains(st.Error, "side input topic customers does not exist yet")
	})
}

// TestJoinStreamStream runs a windowed stream-stream join in runner
// processes: payments pair with the order of the same id (the other
// stream, co-partitioned by order id) when their event times are at most
// an hour apart. Orders come first for even ids and payments first for
// odd ones, and a second runner joins half-way; every payment must be
// paired with its order exactly once, and nothing else come out.
func TestJoinStreamStream(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	kafkatest.CreateTopic(t, brokers, "payments", 3)
	kafkatest.CreateTopic(t, brokers, "orders", 3)
	const n = 2000
	base := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	order := func(i int) *kgo.Record {
		return &kgo.Record{Topic: "orders", Key: fmt.Appendf(nil, "o%d", i), Timestamp: base.Add(time.Duration(i) * time.Second),
			Value: fmt.Appendf(nil, `{"order_id":"o%d","total":%d}`, i, i)}
	}
	payment := func(i int) *kgo.Record {
		ts := base.Add(time.Duration(i)*time.Second + 10*time.Minute).Format(time.RFC3339)
		return &kgo.Record{Topic: "payments", Key: fmt.Appendf(nil, "o%d", i),
			Value: fmt.Appendf(nil, `{"order_id":"o%d","amount":%d,"ts":%q}`, i, i, ts)}
	}
	batch := func(from, to int) []*kgo.Record {
		var out []*kgo.Record
		for i := from; i < to; i++ {
			if i%2 == 0 {
				out = append(out, order(i), payment(i))
			} else {
				out = append(out, payment(i), order(i))
			}
		}
		return out
	}
	p := plan(t, "pay", `  source: {topic: payments, timestamp: ts, key: order_id, partitioned_by_key: true}
  steps:
    - join: {stream: orders, on: order_id, as: order, within: 1h, grace: 10m}
    - map: {order_id: order_id, paid: amount, ordered: order.total}
  sink: {topic: matched}
`)
	apply := func(rt *runtime.Runtime) {
		if err := rt.Apply(context.Background(), []runtime.Pipeline{{Plan: p, Revision: "r1"}}); err != nil {
			t.Fatal(err)
		}
	}
	rt1 := newRuntime(t, brokers, runtime.InstanceID("a"))
	apply(rt1)
	kafkatest.Produce(t, brokers, batch(0, n/2)...)
	kafkatest.ReadCommitted(t, brokers, "matched", n/4, 30*time.Second)
	rt2 := newRuntime(t, brokers, runtime.InstanceID("b"))
	apply(rt2)
	kafkatest.Produce(t, brokers, batch(n/2, n)...)
	outs := readAfterCommit(t, brokers, p, "matched") // anything beyond n is a duplicate
	seen := map[string]bool{}
	for _, r := range outs {
		var v struct {
			OrderID string  `json:"order_id"`
			Paid    float64 `json:"paid"`
			Ordered float64 `json:"ordered"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("output %s: %v", r.Value, err)
		}
		if seen[v.OrderID] {
			t.Fatalf("order %s paired twice", v.OrderID)
		}
		seen[v.OrderID] = true
		if want := fmt.Sprintf("o%d", int(v.Paid)); v.OrderID != want || v.Ordered != v.Paid {
			t.Errorf("payment of %s paired wrongly: %s", v.OrderID, r.Value)
		}
	}
	if len(outs) != n {
		t.Fatalf("%d pairs, want %d", len(outs), n)
	}
	for _, rt := range []*runtime.Runtime{rt1, rt2} {
		if st := statusOf(t, rt, "pay"); st.DeadLetter > 0 || len(st.Partitions) == 0 {
			t.Errorf("status %+v", st)
		}
	}
}
