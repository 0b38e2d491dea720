package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/record"
	"github.com/sluicehq/sluice/internal/runtime"
)

// A runner whose heartbeats do not reach the coordinator for longer than
// the session timeout (a long GC pause, a CPU-starved host, a slow
// network) is removed from its group, and franz-go tells it so with an
// ErrGroupSession in its next poll. The client rejoins by itself; the
// pipeline must go on without counting a failure or a restart, and under
// exactly-once without losing or repeating a record. At least once, an
// offset commit sent before the removal and refused after it is part of
// the same removal: its records are processed again. With state, the
// stores of the lost tasks drop the aborted transaction's writes and are
// caught up again: the dedupe case sends the first half again after the
// removal, and any of it coming out twice would show state gone wrong.
// The group's
// coordinator is kfake's, so this test always runs on it (it needs to hold
// a heartbeat back), also when KAFKA_BROKERS names a real broker.
func TestKickedFromGroup(t *testing.T) {
	for _, tc := range []struct {
		name, delivery, steps string
	}{
		{"exactly-once", "exactly-once", ""},
		{"at-least-once", "at-least-once", ""},
		{"exactly-once with state", "exactly-once", "    - dedupe: {by: n, within: 1h}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			delivery := tc.delivery
			c, brokers := faultyCluster(t)
			kafkatest.CreateTopic(t, brokers, "in", 3)
			const n = 2000
			kafkatest.Produce(t, brokers, numbered("in", 0, n/2)...)
			reg := prometheus.NewRegistry()
			rt := newRuntime(t, brokers, runtime.Registerer(reg)) // session timeout 1s
			p := runtime.Pipeline{Revision: "r1", Plan: plan(t, "doubler", fmt.Sprintf(`  source: {topic: in}
  delivery: %s
  steps:
%s    - map: {n: n, twice: n * 2}
  sink: {topic: out}
`, delivery, tc.steps))}
			if err := rt.Apply(context.Background(), []runtime.Pipeline{p}); err != nil {
				t.Fatal(err)
			}
			waitAssigned(t, rt, "doubler", 3, 30*time.Second)
			kafkatest.Eventually(t, 30*time.Second, "the first half processed", func() bool {
				return statusOf(t, rt, "doubler").Processed >= n/2
			})
			adm := kadm.NewClient(kafkatest.Client(t, brokers))
			first := groupMember(t, adm, "sluice-doubler")

			// Hold the next heartbeat for three session timeouts: the
			// coordinator removes the member meanwhile, and the heartbeat
			// then answers that it is unknown.
			var held atomic.Bool
			c.ControlKey(kmsg.Heartbeat.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
				if held.CompareAndSwap(false, true) {
					c.SleepControl(func() { time.Sleep(3 * time.Second) })
				}
				return nil, nil, false
			})
			kafkatest.Eventually(t, 10*time.Second, "a heartbeat held", held.Load)
			second := false // the second half is produced
			if delivery == "at-least-once" {
				// Records that come while the heartbeat is held are
				// processed, and the offset commit after them waits
				// behind the heartbeat (franz-go sends both on one
				// connection) until the member is gone: the coordinator
				// refuses it, and the runner must take that as the
				// removal it is, not as a failure.
				kafkatest.Produce(t, brokers, numbered("in", n/2, n/2)...)
				second = true
				kafkatest.Eventually(t, 10*time.Second, "the second half processed", func() bool {
					return statusOf(t, rt, "doubler").Processed >= n
				})
			}
			kafkatest.Eventually(t, 30*time.Second, "the member removed and a new one in the group", func() bool {
				m := groupMember(t, adm, "sluice-doubler")
				return m != "" && m != first
			})
			waitAssigned(t, rt, "doubler", 3, 30*time.Second)
			if tc.steps != "" {
				kafkatest.Produce(t, brokers, numbered("in", 0, n/2)...) // all duplicates
			}
			if !second {
				kafkatest.Produce(t, brokers, numbered("in", n/2, n/2)...)
			}

			// Read once the group has committed every input: what was
			// produced before a commit was acknowledged before it.
			// Reading until n outputs would stop early at least once,
			// where the records processed again come out twice, and
			// could leave a partition half read. Exactly once, anything
			// beyond n would be a duplicate.
			outs := readAfterCommit(t, brokers, p.Plan, "out")
			if delivery == "exactly-once" {
				checkDoubled(t, outs, 0, n)
			} else {
				checkAtLeastDoubled(t, outs, n)
			}
			s := statusOf(t, rt, "doubler")
			if s.State != runtime.Running || s.Restarts != 0 || s.Error != "" {
				t.Errorf("after being removed from its group: %+v, want running with no restarts and no error", s)
			}
			if lost := groupLost(t, reg); lost < 1 {
				t.Errorf("sluice_pipeline_group_lost_total = %v, want the removal counted", lost)
			}
		})
	}
}

// groupLost reads sluice_pipeline_group_lost_total for the one pipeline.
func groupLost(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "sluice_pipeline_group_lost_total" && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0 // no series before the first removal
}

// groupMember returns the ID of the group's only member ("" while it has
// none, or more than one).
func groupMember(t *testing.T, adm *kadm.Client, group string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("describing %s: %v", group, err)
	}
	g := gs[group]
	if g.Err != nil || len(g.Members) != 1 {
		return ""
	}
	return g.Members[0].MemberID
}

// checkAtLeastDoubled checks that outs hold {"n": i, "twice": 2i} for every
// i in [0, n), some maybe more than once (at least once).
func checkAtLeastDoubled(t *testing.T, outs []*kgo.Record, n int) {
	t.Helper()
	seen := make([]bool, n)
	for _, r := range outs {
		var v struct{ N, Twice int }
		if err := json.Unmarshal(r.Value, &v); err != nil || v.N < 0 || v.N >= n || v.Twice != 2*v.N {
			t.Fatalf("unexpected output %q (%v)", r.Value, err)
		}
		seen[v.N] = true
	}
	for i, ok := range seen {
		if !ok {
			t.Fatalf("no output for record %d (of %d outputs)", i, len(outs))
		}
	}
}

// A group error that does not pass by itself (here: the runner may not
// join the group) still fails the pipeline, visibly, instead of being
// taken for a removal to rejoin from.
func TestGroupDeniedFails(t *testing.T) {
	c, brokers := faultyCluster(t)
	kafkatest.CreateTopic(t, brokers, "in", 1)
	c.ControlKey(kmsg.JoinGroup.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.SetVersion(req.GetVersion())
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil, true
	})
	rt := newRuntime(t, brokers)
	p := runtime.Pipeline{Revision: "r1", Plan: plan(t, "denied", `  source: {topic: in}
  steps:
    - map: {n: n}
  sink: {topic: out}
`)}
	if err := rt.Apply(context.Background(), []runtime.Pipeline{p}); err != nil {
		t.Fatal(err)
	}
	kafkatest.Eventually(t, 30*time.Second, "the pipeline failed on the denied join", func() bool {
		s := statusOf(t, rt, "denied")
		return s.State == runtime.Failed && s.Restarts > 0 && strings.Contains(s.Error, "GROUP_AUTHORIZATION_FAILED")
	})
}

// faultyCluster is a kfake cluster like kafkatest.Brokers', for tests that
// inject faults through its control functions.
func faultyCluster(t *testing.T) (*kfake.Cluster, []string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()
}

// A pipeline busy with a record when it is removed from its group sees
// the removal only in its next poll. Under exactly-once, franz-go may
// have rejoined by then (it does not hold rebalances back until the
// poll), and the status must not go on saying the runner is out of the
// group. Under at-least-once the rejoin waits for the poll, and the
// offsets processed before it can no longer be committed: that must not
// fail the pipeline either (their records are processed again). A gate
// operator holds the record across the removal, so the order is forced;
// the removal is the coordinator answering a heartbeat with
// UNKNOWN_MEMBER_ID, which blocks nothing the pipeline waits for.
func TestKickedWhileBusy(t *testing.T) {
	for _, delivery := range []string{"exactly-once", "at-least-once"} {
		t.Run(delivery, func(t *testing.T) {
			c, brokers := faultyCluster(t)
			kafkatest.CreateTopic(t, brokers, "gate-in", 3)
			entered, release := make(chan struct{}, 100), make(chan struct{})
			metrics := prometheus.NewRegistry()
			rt := newRuntime(t, brokers, runtime.Registerer(metrics))
			p := runtime.Pipeline{Revision: "r1", Plan: planWith(t, gateRegistry(t, entered, release), "gated", `  source: {topic: gate-in}
  delivery: `+delivery+`
  steps:
    - gate: true
  sink: {topic: gate-out}
`)}
			if err := rt.Apply(context.Background(), []runtime.Pipeline{p}); err != nil {
				t.Fatal(err)
			}
			waitAssigned(t, rt, "gated", 3, 30*time.Second)
			kafkatest.Produce(t, brokers, numbered("gate-in", 0, 1)...)
			select {
			case <-entered:
			case <-time.After(30 * time.Second):
				t.Fatal("the record never reached the gate")
			}

			// The member is known to kfake, so franz-go rejoins under the
			// same member ID, once a SyncGroup after the kick is answered.
			kicked, synced := make(chan struct{}), make(chan struct{})
			var once sync.Once
			c.ControlKey(kmsg.Heartbeat.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
				c.ControlKey(kmsg.SyncGroup.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
					once.Do(func() { close(synced) })
					return nil, nil, false
				})
				close(kicked)
				resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
				resp.SetVersion(req.GetVersion())
				resp.ErrorCode = kerr.UnknownMemberID.Code
				return resp, nil, true
			})
			wait := kicked
			if delivery == "exactly-once" {
				wait = synced // back in the group before the record is done
			}
			select {
			case <-wait:
			case <-time.After(30 * time.Second):
				t.Fatal("no removal, or no rejoin after it")
			}
			// franz-go handles the heartbeat's answer, or runs the
			// assignment callback after the SyncGroup's, right after it.
			time.Sleep(500 * time.Millisecond)
			close(release)
			kafkatest.Eventually(t, 10*time.Second, "the removal seen by a poll", func() bool { return groupLost(t, metrics) >= 1 })
			kafkatest.Eventually(t, 10*time.Second, "the pipeline running with its partitions and no error", func() bool {
				s := statusOf(t, rt, "gated")
				return s.State == runtime.Running && len(s.Partitions) == 3 && s.Error == "" && s.Restarts == 0
			})
			kafkatest.ReadCommitted(t, brokers, "gate-out", 1, 30*time.Second)
		})
	}
}

// gateRegistry is the standard registry plus `gate`, an operator that
// signals entered on every record and waits for release to be closed.
func gateRegistry(t *testing.T, entered chan<- struct{}, release <-chan struct{}) *catalog.Registry {
	t.Helper()
	reg := all.New().Clone()
	if err := reg.Register(catalog.Spec{
		Name:    "gate",
		Summary: "Waits for the test to open it on every record (test only).",
		Config:  `{"type": "boolean"}`,
		New: func(*catalog.Build, catalog.Config) (catalog.Operator, error) {
			return catalog.OperatorFunc(func(ctx context.Context, r *record.Record, out catalog.Output) error {
				entered <- struct{}{}
				<-release
				return out.Next(ctx, r)
			}), nil
		},
	}); err != nil {
		t.Fatal(err)
	}
	return reg
}

// A produce the broker refuses with OUT_OF_ORDER_SEQUENCE_NUMBER (seen
// from kfake under load) fails the transaction; it is aborted, the records
// are processed again, and the pipeline goes on without a restart.
func TestProduceSequenceErrorRetried(t *testing.T) {
	c, brokers := faultyCluster(t)
	kafkatest.CreateTopic(t, brokers, "in", 3)
	kafkatest.CreateTopic(t, brokers, "out", 3)
	rt := newRuntime(t, brokers)
	p := runtime.Pipeline{Revision: "r1", Plan: throughputPipeline(t, "doubler", "in", "out")}
	if err := rt.Apply(context.Background(), []runtime.Pipeline{p}); err != nil {
		t.Fatal(err)
	}
	waitAssigned(t, rt, "doubler", 3, 30*time.Second)
	var refused atomic.Bool
	c.ControlKey(kmsg.Produce.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		if pr.TransactionID == nil || refused.Swap(true) {
			return nil, nil, false // only the first transactional produce is refused
		}
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		resp.SetVersion(pr.GetVersion())
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.OutOfOrderSequenceNumber.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	const n = 500
	kafkatest.Produce(t, brokers, numbered("in", 0, n)...)
	outs := readAfterCommit(t, brokers, p.Plan, "out") // anything beyond n is a duplicate
	checkDoubled(t, outs, 0, n)
	if !refused.Load() {
		t.Fatal("no produce was refused")
	}
	if s := statusOf(t, rt, "doubler"); s.Restarts != 0 || s.State != runtime.Running {
		t.Errorf("after a refused produce: %+v, want running with no restarts", s)
	}
}
