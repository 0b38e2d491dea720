package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluicehq/sluice/internal/kafkatest"
)

// The crash acceptance test: 200,000 records through a runner subprocess
// that is killed with SIGKILL at 5 random moments while it processes and
// restarted each time. Under exactly-once a read_committed reader sees
// every expected output exactly once; under at-least-once none is missing.
func TestCrash(t *testing.T) {
	for _, tc := range []struct {
		delivery string
		exact    bool
	}{{"exactly-once", true}, {"at-least-once", false}} {
		t.Run(tc.delivery, func(t *testing.T) { crashTest(t, tc.delivery, tc.exact) })
	}
}

func crashTest(t *testing.T, delivery string, exact bool) {
	n, kills := 200000, 5
	if testing.Short() {
		n = 100000
	}
	brokers := kafkatest.Brokers(t)
	suffix := fmt.Sprint(time.Now().UnixNano() % 1e9)
	name := "crash-" + suffix
	in, out := "crash-in-"+suffix, "crash-out-"+suffix
	group := "sluice-" + name
	kafkatest.CreateTopic(t, brokers, in, 4)
	// A fifth of the input is there at the start; the rest arrives in
	// steps over about fifteen seconds, as a stream does. A runner can then
	// never finish the input before its kill, however fast it is, and the
	// kills land while records are still arriving.
	upfront := n / 5
	produceIDs(t, brokers, in, upfront)
	produced := make(chan error, 1)
	go func() {
		const steps = 60
		for i := range steps {
			time.Sleep(250 * time.Millisecond)
			from, to := upfront+(n-upfront)*i/steps, upfront+(n-upfront)*(i+1)/steps
			if err := produceRangeErr(brokers, in, from, to); err != nil {
				produced <- err
				return
			}
		}
		produced <- nil
	}()

	dir := writePipeline(t, name, in, out, delivery)
	args := []string{"--brokers", strings.Join(brokers, ","), "--instance-id", "crash-test", "--commit-interval", "100ms",
		"--session-timeout", "2s", "--shutdown-timeout", "20s"}
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	var all []*runner
	logs := func() string {
		if len(all) == 0 {
			return ""
		}
		r := all[len(all)-1]
		st := "(no answer)"
		if addr := r.loggedAddr(); addr != "" && r.running() {
			if b, err := json.MarshalIndent(r.status(addr), "", "  "); err == nil {
				st = string(b)
			}
		}
		return "last runner's /status: " + st + "\nlast runner's output:\n" + tail(r.out.String(), 4096)
	}

	// The kills come at random points of the input, each a random moment
	// (within one commit interval) after the runner got there, so they hit
	// every phase of a transaction: processing, producing, committing.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	start := time.Now()
	prev := int64(0)
	for k := 1; k <= kills; k++ {
		r := startRunner(t, fmt.Sprintf("runner #%d", k), dir, args...)
		all = append(all, r)
		// Wait until this runner has committed progress of its own, past
		// its kill point, then kill it a random moment later.
		at := prev + 1 + rng.Int64N(max(1, (int64(n)*6/10-prev)/int64(kills-k+1)))
		deadline := time.Now().Add(60 * time.Second)
		for {
			c := committed(adm, group, in)
			if c >= at {
				break
			}
			if !r.running() {
				t.Fatalf("runner #%d exited (%v)\n%s", k, r.err, logs())
			}
			if time.Now().After(deadline) {
				t.Fatalf("runner #%d made no progress in 60s (committed %d of %d)\n%s", k, c, n, logs())
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(100 * time.Millisecond))))
		r.kill()
		c := committed(adm, group, in)
		if c < 0 {
			// A transaction that commits offsets may be pending; its fate
			// is decided when the next runner fences it.
			c = prev
		}
		t.Logf("kill -9 #%d at %v (kill point %d): %d of %d records committed", k, time.Since(start).Round(time.Millisecond), at, c, n)
		if c >= int64(n) {
			t.Fatalf("runner #%d finished all records before it was killed: make the test bigger", k)
		}
		prev = max(prev, c)
	}

	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	t.Logf("produced %d records to %s (4 partitions) in %v", n, in, time.Since(start).Round(time.Millisecond))

	last := startRunner(t, "runner (final)", dir, args...)
	all = append(all, last)
	waitConsumed(t, adm, group, in, n, 3*time.Minute, logs)
	t.Logf("%d records consumed and committed in %v with %d kills", n, time.Since(start).Round(time.Millisecond), kills)
	last.stop(30 * time.Second)

	counts, total := readOutputs(t, brokers, out, n)
	checkOutputs(t, counts, total, exact)
}
