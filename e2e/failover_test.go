package e2e

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/runtime"
)

// Two runner processes share a pipeline's partitions; one is killed with
// SIGKILL midway; the other takes its partitions over, and under
// exactly-once a read_committed reader sees every output exactly once.
func TestFailover(t *testing.T) {
	n := 200000
	if testing.Short() {
		n = 50000
	}
	brokers := kafkatest.Brokers(t)
	suffix := fmt.Sprint(time.Now().UnixNano() % 1e9)
	name := "failover-" + suffix
	in, out := "failover-in-"+suffix, "failover-out-"+suffix
	group := "sluice-" + name
	kafkatest.CreateTopic(t, brokers, in, 4)
	dir := writePipeline(t, name, in, out, "exactly-once")
	args := func(id string) []string {
		return []string{"--brokers", strings.Join(brokers, ","), "--instance-id", id, "--commit-interval", "100ms",
			"--session-timeout", "2s", "--shutdown-timeout", "20s"}
	}
	a := startRunner(t, "runner a", dir, args("failover-a")...)
	b := startRunner(t, "runner b", dir, args("failover-b")...)
	aAddr, bAddr := a.opsAddr(), b.opsAddr()
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	logs := func() string {
		return groupReport(adm, group, in) + "runner a's output:\n" + tail(a.out.String(), 2048) + "\nrunner b's output:\n" + tail(b.out.String(), 2048)
	}
	partitions := func(r *runner, addr string) ([]int32, uint64) {
		for _, s := range r.status(addr) {
			if s.Name == name && s.State == runtime.Running {
				return s.Partitions, s.Processed
			}
		}
		return nil, 0
	}

	// Both runners hold partitions before the records come.
	deadline := time.Now().Add(60 * time.Second)
	for {
		pa, _ := partitions(a, aAddr)
		pb, _ := partitions(b, bAddr)
		if len(pa) > 0 && len(pb) > 0 && len(pa)+len(pb) == 4 {
			t.Logf("runner a holds partitions %v, runner b %v", pa, pb)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runners did not share the 4 partitions within 60s: a %v, b %v\n%s", pa, pb, logs())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The records come while the runners work, and b is killed midway.
	start := time.Now()
	produced := make(chan error, 1)
	go func() { produced <- produceIDsErr(brokers, in, n) }()

	// Midway, once both have processed records, kill b.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	killAt := int64(n/4 + rng.IntN(n/4))
	deadline = time.Now().Add(60 * time.Second)
	for {
		_, procA := partitions(a, aAddr)
		_, procB := partitions(b, bAddr)
		if c := committed(adm, group, in); c >= killAt && procA > 0 && procB > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runners did not get %d records done within 60s\n%s", killAt, logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Duration(rng.Int64N(int64(100 * time.Millisecond))))
	_, procB := partitions(b, bAddr)
	b.kill()
	killed := time.Now()
	c := committed(adm, group, in)
	t.Logf("kill -9 runner b at %v, after it processed %d records; %d of %d records committed", killed.Sub(start).Round(time.Millisecond), procB, c, n)
	if c >= int64(n) {
		t.Fatalf("all records were done before the kill: make the test bigger")
	}

	// a takes b's partitions over and finishes.
	deadline = time.Now().Add(60 * time.Second)
	for {
		pa, _ := partitions(a, aAddr)
		if slices.Equal(pa, []int32{0, 1, 2, 3}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runner a holds %v 60s after b was killed, want all 4 partitions\n%s", pa, logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("runner a holds all 4 partitions %v after the kill", time.Since(killed).Round(time.Millisecond))
	if err := <-produced; err != nil {
		t.Fatalf("producing: %v", err)
	}
	t.Logf("produced %d records in %v", n, time.Since(start).Round(time.Millisecond))
	waitConsumed(t, adm, group, in, n, 3*time.Minute, logs)
	t.Logf("all %d records committed %v after the kill", n, time.Since(killed).Round(time.Millisecond))
	a.stop(30 * time.Second)

	counts, total := readOutputs(t, brokers, out, n)
	checkOutputs(t, counts, total, true)
}
