package embedded_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/embedded"
)

// freeAddr returns a loopback address with a port nothing listens on, so the
// test exercises a fixed address as the runner's --embedded-addr does.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func start(t *testing.T, addr string, opts ...embedded.Opt) *embedded.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := embedded.Start(ctx, addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// An ordinary client reaches the cluster on the address it was given, can
// create a topic through the admin API, and reads back what it produced
// with read_committed isolation (what the runner's outputs need).
func TestProduceConsumeOnGivenAddress(t *testing.T) {
	addr := freeAddr(t)
	c := start(t, addr)
	if got := c.Addrs(); len(got) != 1 || got[0] != addr {
		t.Fatalf("Addrs() = %v, want [%s]", got, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, 2, 1, nil, "events")
	if err == nil {
		err = resp["events"].Err
	}
	if err != nil {
		t.Fatalf("create topic: %v", err)
	}
	want := map[string]string{"a": "1", "b": "2", "c": "3"}
	for k, v := range want {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "events", Key: []byte(k), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}

	cons, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ConsumeTopics("events"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := map[string]string{}
	for len(got) < len(want) && ctx.Err() == nil {
		f := cons.PollFetches(ctx)
		f.EachRecord(func(r *kgo.Record) { got[string(r.Key)] = string(r.Value) })
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("key %s: got %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
}

// Without AutoCreateTopics a producer cannot create a topic by writing to
// it, as on a production cluster; with it, it can.
func TestAutoCreateTopics(t *testing.T) {
	for _, auto := range []bool{false, true} {
		var opts []embedded.Opt
		if auto {
			opts = append(opts, embedded.AutoCreateTopics())
		}
		c := start(t, "127.0.0.1:0", opts...)
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.AllowAutoTopicCreation(), kgo.RecordDeliveryTimeout(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = cl.ProduceSync(ctx, &kgo.Record{Topic: "missing", Value: []byte("x")}).FirstErr()
		cancel()
		cl.Close()
		switch {
		case auto && err != nil:
			t.Errorf("auto-create on: produce failed: %v", err)
		case !auto && err == nil:
			t.Error("auto-create off: produce to a missing topic succeeded")
		}
	}
}

// A port already in use is an error at Start, not a cluster nobody can reach.
func TestAddressInUse(t *testing.T) {
	c := start(t, "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c2, err := embedded.Start(ctx, c.Addrs()[0]); err == nil {
		c2.Close()
		t.Fatal("second cluster started on the same address")
	}
}

// A fetch that fills its response in the middle of a partition still
// lists that partition's aborted transactions: read_committed returns only
// committed records at any fetch size. Upstream kfake ended such a
// response at once, without the list, and clients took records of aborted
// transactions for committed ones: a runner reading its own repartition
// topics counted a crashed runner's aborted work (third_party/kfake).
func TestReadCommittedWithFullFetches(t *testing.T) {
	c := start(t, freeAddr(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, 1, 1, nil, "txns"); err != nil {
		t.Fatal(err)
	}
	producer := func(id string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.TransactionalID(id), kgo.DefaultProduceTopic("txns"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	produce := func(cl *kgo.Client, prefix string, n int) {
		for i := range n {
			cl.Produce(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%s-%d-%0200d", prefix, i, 0)}, func(_ *kgo.Record, err error) {
				if err != nil {
					t.Errorf("producing: %v", err)
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// a's transaction, aborted in the end, interleaves with ten of b's,
	// committed.
	a, b := producer("a"), producer("b")
	if err := a.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	committed := 0
	for round := range 10 {
		produce(a, "aborted", 50)
		if err := b.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		produce(b, "committed", 50)
		if err := b.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		committed += 50
	}
	if err := a.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int32{1 << 20, 16 << 10, 4 << 10} {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ConsumeTopics("txns"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxBytes(limit), kgo.FetchMaxPartitionBytes(limit))
		if err != nil {
			t.Fatal(err)
		}
		var got, aborted int
		for got+aborted < committed {
			fs := cl.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("fetch limit %d: read %d records of %d: %v", limit, got+aborted, committed, err)
			}
			fs.EachRecord(func(r *kgo.Record) {
				if bytes.HasPrefix(r.Value, []byte("aborted")) {
					aborted++
				} else {
					got++
				}
			})
		}
		cl.Close()
		if aborted > 0 {
			t.Errorf("fetch limit %d: read_committed returned %d records of the aborted transaction (and %d committed)", limit, aborted, got)
		}
	}
}

// TestFetchSessionsServePartitionsInTurn checks the cluster's fetch
// sessions (the kfake patch in third_party/kfake/SLUICE.md): a consumer
// whose fetches hold one partition's batch each gets every partition with
// a backlog in turn, as from Kafka, not one partition until its backlog is
// read. A stateful pipeline's workers (a partition each) idled otherwise.
func TestFetchSessionsServePartitionsInTurn(t *testing.T) {
	c := start(t, freeAddr(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const partitions, batches = 4, 8
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("backlog"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if _, err := kadm.NewClient(prod).CreateTopic(ctx, partitions, 1, nil, "backlog"); err != nil {
		t.Fatal(err)
	}
	// batches batches of 64 KiB per partition, each produced and flushed
	// on its own so that it is one batch.
	for range batches {
		for p := range int32(partitions) {
			for range 64 {
				prod.Produce(ctx, &kgo.Record{Partition: p, Value: bytes.Repeat([]byte("x"), 1000)}, nil)
			}
		}
		if err := prod.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A fetch of at most 32 KiB holds one batch: the first partition's,
	// which is returned whole although it is larger.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ConsumeTopics("backlog"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(32<<10), kgo.FetchMaxPartitionBytes(32<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var order []int32
	for len(order) < partitions {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("polling: %v", err)
		}
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) > 0 {
				order = append(order, p.Partition)
			}
		})
	}
	seen := map[int32]bool{}
	for _, p := range order[:partitions] {
		seen[p] = true
	}
	if len(seen) != partitions {
		t.Errorf("the first %d fetches returned partitions %v: want each of the %d partitions once", partitions, order[:partitions], partitions)
	}
}
