package gitops

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/pgcluster"
)

// outage is how long the control plane and its database stay down.
const outage = 60 * time.Second

// TestControlPlaneOutage stops the control plane and its database for a
// minute. The runners keep processing everything produced meanwhile, one
// of them even after a restart (from its cache), and once both are back
// the fleet's status converges.
func TestControlPlaneOutage(t *testing.T) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sluice-outage-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755) // PostgreSQL runs as postgres when we are root
	t.Cleanup(func() { os.RemoveAll(dir) })
	pgOpts := pgcluster.Options{Dir: filepath.Join(dir, "pg")}
	pg, err := pgcluster.Start(ctx, pgOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop(context.Background()) })
	if err := pg.CreateDatabase(ctx, "sluice", ""); err != nil {
		t.Fatal(err)
	}
	pgOpts.Port = pg.Port() // the same URL after a restart

	brokers := kafkatest.Brokers(t)
	kafkatest.CreateTopic(t, brokers, "clicks", 4)
	p := startPlatform(t, pg.URL("sluice"), brokers)
	a1 := p.startAgent("runner-1", filepath.Join(dir, "agent-1"), true)
	a2 := p.startAgent("runner-2", filepath.Join(dir, "agent-2"), true)
	digest := p.waitRunners(2, "clicks", func(string) bool { return true }, 90*time.Second)
	f := feed(t, brokers, "clicks", 4, 40)
	kafkatest.Eventually(t, 60*time.Second, "outputs before the outage", func() bool { return len(outputs(t, brokers, "clicks.clean")) > 0 })

	// Down: the control plane, then its database.
	p.cp.Stop(t)
	if err := pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	// A runner restarted while the control plane is down resumes from its
	// cache of assignments and bundles.
	a2.Kill()
	a2 = p.startAgent("runner-2", a2.dataDir, false)
	kafkatest.Eventually(t, 30*time.Second, "runner-2 to start clicks from its cache", func() bool {
		return strings.Contains(a2.Output(), `"pipeline started"`) && strings.Contains(a2.Output(), digest[:12])
	})
	time.Sleep(outage - time.Since(down))
	f.stop()
	sent := f.count()
	// Exactly once: every click produced, before and during the outage,
	// comes out once.
	deadline := time.Now().Add(60 * time.Second)
	got := len(outputs(t, brokers, "clicks.clean"))
	for got != sent && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		got = len(outputs(t, brokers, "clicks.clean"))
	}
	if got != sent {
		t.Fatalf("%d outputs for %d inputs, 60 s after the feed stopped", got, sent)
	}
	if !a1.Alive() || !a2.Alive() {
		t.Fatal("a runner exited during the outage")
	}

	// Up again: the same database and address.
	if pg, err = pgcluster.Start(ctx, pgOpts); err != nil {
		t.Fatal(err)
	}
	p.startControlPlane()
	kafkatest.Eventually(t, 90*time.Second, "both runners to report again, on the current generation", func() bool {
		live := 0
		for _, r := range p.runners() {
			if r.Live && len(r.Report.Pipelines) == 1 && r.Report.Pipelines[0].Digest == digest && !r.Report.Cached {
				live++
			}
		}
		return live == 2
	})
	var deps struct {
		Items []struct{ Status string } `json:"items"`
	}
	kafkatest.Eventually(t, 30*time.Second, "the deployment to be Synced", func() bool {
		p.api("GET", "/deployments", nil, &deps)
		return len(deps.Items) == 1 && deps.Items[0].Status == "Synced"
	})
}
