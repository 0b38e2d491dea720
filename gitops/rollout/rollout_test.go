package rollout_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/gitops/deploy"
	"github.com/sluicehq/sluice/gitops/rollout"
	"github.com/sluicehq/sluice/gitops/validate"
	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/internal/database"
	"github.com/sluicehq/sluice/internal/pgcluster/pgtest"
	"github.com/sluicehq/sluice/observability"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fixture is a project with one fleet on a fresh database, and runners
// registered through the real bootstrap path.
type fixture struct {
	t       *testing.T
	ctx     context.Context
	pool    *pgxpool.Pool
	store   *deploy.Store
	rec     *rollout.Reconciler
	project uuid.UUID
	fleet   uuid.UUID
	runners []deploy.Runner
	commits int
}

func newFixture(t *testing.T, strategy string, runners int) *fixture {
	t.Helper()
	ctx := context.Background()
	pool, err := database.Open(ctx, pgtest.NewDatabase(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	f := &fixture{t: t, ctx: ctx, pool: pool, store: deploy.New(pool, all.New())}
	org, _ := uuid.NewV7()
	f.project, _ = uuid.NewV7()
	f.fleet, _ = uuid.NewV7()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"INSERT INTO organizations (id, name) VALUES ($1, 'acme')", []any{org}},
		{"INSERT INTO projects (id, org_id, name) VALUES ($1, $2, 'shop')", []any{f.project, org}},
		{"INSERT INTO fleets (id, project_id, name, module, strategy, bake_seconds) VALUES ($1, $2, 'prod', 'local', $3, 0)", []any{f.fleet, f.project, strategy}},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	var tok deploy.BootstrapToken
	f.tx(func(tx pgx.Tx) (err error) {
		tok, err = deploy.MintBootstrapToken(ctx, tx, f.fleet, runners, time.Hour, nil)
		return err
	})
	for i := range runners {
		resp, err := f.store.Register(ctx, tok.Secret, agentproto.RegisterRequest{Name: fmt.Sprintf("r%d", i+1)})
		if err != nil {
			t.Fatal(err)
		}
		r, err := f.store.Authenticate(ctx, resp.Credential)
		if err != nil {
			t.Fatal(err)
		}
		f.runners = append(f.runners, r)
	}
	// The token had exactly that many uses.
	if _, err := f.store.Register(ctx, tok.Secret, agentproto.RegisterRequest{Name: "extra"}); err == nil {
		t.Fatal("a spent bootstrap token registered another runner")
	}
	f.rec, err = rollout.New(pool, rollout.LiveFor(time.Minute), rollout.StatusEvery(0))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) tx(fn func(pgx.Tx) error) {
	f.t.Helper()
	if err := pgx.BeginFunc(f.ctx, f.pool, fn); err != nil {
		f.t.Fatal(err)
	}
}

const pipelineYAML = `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: orders}
spec:
  source: {topic: orders}
  steps:
    - set: {version: %d}
  sink: {topic: orders.out}
`

// push records a commit of the pipeline at version v.
func (f *fixture) push(v int) deploy.Summary {
	f.t.Helper()
	files := map[string][]byte{"pipelines/orders.yaml": fmt.Appendf(nil, pipelineYAML, v)}
	prev, err := f.store.Previous(f.ctx, f.project)
	if err != nil {
		f.t.Fatal(err)
	}
	res, err := validate.Check(f.ctx, all.New(), files, prev)
	if err != nil || res.Failed {
		f.t.Fatalf("validate: %v %v", err, res.Lines)
	}
	f.commits++
	var sum deploy.Summary
	f.tx(func(tx pgx.Tx) (err error) {
		sum, err = f.store.RecordCommit(f.ctx, tx, f.project, deploy.Commit{SHA: fmt.Sprintf("%040d", f.commits), Parent: fmt.Sprintf("%040d", f.commits-1), Message: fmt.Sprint("v", v)}, res.Pipelines)
		return err
	})
	return sum
}

// assigned is the digest each runner is told to run for orders.
func (f *fixture) assigned() []string {
	f.t.Helper()
	var out []string
	for _, r := range f.runners {
		a, err := f.store.Assignments(f.ctx, r)
		if err != nil {
			f.t.Fatal(err)
		}
		d := ""
		for _, p := range a.Pipelines {
			if p.Name == "orders" {
				d = p.Digest
				if want := "sluice.acme.shop.orders"; p.Group != want {
					f.t.Errorf("group %q, want %q", p.Group, want)
				}
			}
		}
		out = append(out, d)
	}
	return out
}

// report makes every runner report what it is assigned, with counts.
func (f *fixture) report(processed, dead func(i int) uint64) {
	f.t.Helper()
	for i, r := range f.runners {
		a, err := f.store.Assignments(f.ctx, r)
		if err != nil {
			f.t.Fatal(err)
		}
		rep := agentproto.StatusReport{Generation: a.Generation}
		for _, p := range a.Pipelines {
			rep.Pipelines = append(rep.Pipelines, agentproto.PipelineStatus{Name: p.Name, Digest: p.Digest, State: "running",
				Processed: processed(i), DeadLetter: dead(i)})
		}
		if err := f.store.Report(f.ctx, r, rep); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fixture) pass() {
	f.t.Helper()
	if err := f.rec.Pass(f.ctx); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) rolloutState(id uuid.UUID) (phase, status, reason string) {
	f.t.Helper()
	if err := f.pool.QueryRow(f.ctx, "SELECT phase, status, reason FROM rollouts WHERE id = $1", id).Scan(&phase, &status, &reason); err != nil {
		f.t.Fatal(err)
	}
	return
}

func (f *fixture) events(id uuid.UUID) string {
	rows, _ := f.pool.Query(f.ctx, "SELECT message FROM rollout_events WHERE rollout_id = $1 ORDER BY id", id)
	msgs, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	return strings.Join(msgs, "\n")
}

func zero(int) uint64 { return 0 }

// A canary whose new revision sends everything to the DLQ is rolled back:
// only the canary ever ran it, the rollout says why, and every runner is
// told to run the previous revision again.
func TestCanaryRollsBackOnDLQ(t *testing.T) {
	f := newFixture(t, "canary", 3)
	first := f.push(1)
	if len(first.Rollouts) != 1 || first.Changed[0] != "orders" {
		t.Fatalf("first push: %+v", first)
	}
	for range 6 {
		f.pass()
		f.report(zero, zero)
	}
	if phase, status, _ := f.rolloutState(first.Rollouts[0].ID); phase != deploy.PhaseSucceeded || status != deploy.StatusSynced {
		t.Fatalf("first rollout %s/%s, want Succeeded/Synced\n%s", phase, status, f.events(first.Rollouts[0].ID))
	}
	v1 := f.assigned()
	if v1[0] == "" || v1[0] != v1[1] || v1[1] != v1[2] {
		t.Fatalf("after the first rollout runners run %v", v1)
	}

	bad := f.push(2)
	id := bad.Rollouts[0].ID
	f.pass() // promotes the canary
	got := f.assigned()
	if got[0] == v1[0] || got[1] != v1[0] || got[2] != v1[0] {
		t.Fatalf("during the canary runners are told %v; want only r1 on the new revision", got)
	}
	// The canary runs it; every record goes to the DLQ.
	var n uint64
	for range 3 {
		n += 50
		f.report(func(int) uint64 { return n }, func(i int) uint64 {
			if i == 0 {
				return n
			}
			return 0
		})
		f.pass()
	}
	phase, status, reason := f.rolloutState(id)
	if phase != deploy.PhaseRolledBack || status != deploy.StatusDegraded {
		t.Fatalf("rollout %s/%s, want RolledBack/Degraded\n%s", phase, status, f.events(id))
	}
	if !strings.Contains(reason, "runner r1") || !strings.Contains(reason, "DLQ") || !strings.Contains(reason, "100%") {
		t.Errorf("reason %q does not say which runner and why", reason)
	}
	if got := f.assigned(); got[0] != v1[0] || got[1] != v1[0] || got[2] != v1[0] {
		t.Errorf("after the rollback runners are told %v, want the previous revision %s everywhere", got, v1[0])
	}
	if ev := f.events(id); !strings.Contains(ev, "promoting canary runner r1") || !strings.Contains(ev, "rolling back") {
		t.Errorf("events do not tell the story:\n%s", ev)
	}
	// The revert commit brings back the good bundle: a new revision, but
	// runners already run those bytes, so no rollout restarts anything.
	revert := f.push(1)
	if len(revert.Changed) != 1 || len(revert.Rollouts) != 0 {
		t.Errorf("the revert's push: %+v; want a new revision and no rollout", revert)
	}
	if got := f.assigned(); got[0] != v1[0] {
		t.Errorf("after the revert runners are told %v", got)
	}
	// Once every runner reports the previous revision again, the
	// deployment is Synced to it and still says why.
	var depStatus, msg string
	if err := f.pool.QueryRow(f.ctx, "SELECT status, message FROM deployments WHERE fleet_id = $1", f.fleet).Scan(&depStatus, &msg); err != nil ||
		depStatus != deploy.StatusSynced || !strings.HasPrefix(msg, "rolled back: runner r1") {
		t.Errorf("deployment %q %q (%v), want Synced with the rollback's reason", depStatus, msg, err)
	}
}

// A healthy rolling update promotes one runner at a time and ends Synced
// with every runner on the new revision; an unchanged push starts nothing.
func TestRollingUpdate(t *testing.T) {
	f := newFixture(t, "rolling", 2)
	f.push(1)
	for range 6 {
		f.pass()
		f.report(zero, zero)
	}
	sum := f.push(2)
	id := sum.Rollouts[0].ID
	f.pass()
	if got := f.assigned(); got[0] == got[1] {
		t.Fatalf("a rolling update moved both runners at once: %v", got)
	}
	for range 8 {
		f.report(zero, zero)
		f.pass()
	}
	if phase, status, _ := f.rolloutState(id); phase != deploy.PhaseSucceeded || status != deploy.StatusSynced {
		t.Fatalf("rollout %s/%s\n%s", phase, status, f.events(id))
	}
	if got := f.assigned(); got[0] != got[1] {
		t.Errorf("after the rollout runners run %v", got)
	}
	if again := f.push(2); len(again.Changed) != 0 || len(again.Rollouts) != 0 || again.Unchanged != 1 {
		t.Errorf("an unchanged commit: %+v", again)
	}
}

// A runner credential reads only its own fleet's bundles.
func TestBundleScopedToFleet(t *testing.T) {
	f := newFixture(t, "all-at-once", 1)
	f.push(1)
	a, err := f.store.Assignments(f.ctx, f.runners[0])
	if err != nil || len(a.Pipelines) != 1 {
		t.Fatalf("assignments %+v %v", a, err)
	}
	data, err := f.store.Bundle(f.ctx, f.runners[0], a.Pipelines[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agentproto.DecodeBundle(data, a.Pipelines[0].Digest); err != nil {
		t.Fatal(err)
	}
	other := newFixture(t, "all-at-once", 1)
	// The same digest exists in the other database's project too: the
	// check is by the runner's fleet, not by knowing the digest.
	other.push(1)
	if _, err := f.store.Bundle(f.ctx, deploy.Runner{ID: other.runners[0].ID, FleetID: other.fleet, ProjectID: other.project}, a.Pipelines[0].Digest); err == nil {
		t.Error("a runner of another fleet read the bundle")
	}
}

// pushFiles records a commit of the given pipeline files.
func (f *fixture) pushFiles(files map[string][]byte) deploy.Summary {
	f.t.Helper()
	prev, err := f.store.Previous(f.ctx, f.project)
	if err != nil {
		f.t.Fatal(err)
	}
	res, err := validate.Check(f.ctx, all.New(), files, prev)
	if err != nil || res.Failed {
		f.t.Fatalf("validate: %v %v", err, res.Lines)
	}
	f.commits++
	var sum deploy.Summary
	f.tx(func(tx pgx.Tx) (err error) {
		sum, err = f.store.RecordCommit(f.ctx, tx, f.project, deploy.Commit{SHA: fmt.Sprintf("%040d", f.commits)}, res.Pipelines)
		return err
	})
	return sum
}

const withoutJoin = `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: orders}
spec:
  source: {topic: orders}
  steps:
    - set: {seen: true}
  sink: {topic: orders.out}
`

const withJoin = `apiVersion: sluice/v1
kind: Pipeline
metadata: {name: orders}
spec:
  source: {topic: orders}
  steps:
    - join: {table: customers, on: customer_id, as: customer, type: left}
  sink: {topic: orders.out}
`

// Adding a join changes the pipeline's consumer-group protocol, which old
// and new members cannot share: the rollout first takes the pipeline off
// every runner, and starts the new revision only once none runs the old.
func TestGroupProtocolChangeStopsOldMembersFirst(t *testing.T) {
	f := newFixture(t, "rolling", 2)
	f.pushFiles(map[string][]byte{"pipelines/orders.yaml": []byte(withoutJoin)})
	for range 6 {
		f.pass()
		f.report(zero, zero)
	}
	old := f.assigned()
	sum := f.pushFiles(map[string][]byte{"pipelines/orders.yaml": []byte(withJoin)})
	id := sum.Rollouts[0].ID
	f.pass()
	if phase, _, _ := f.rolloutState(id); phase != deploy.PhaseStopping {
		t.Fatalf("phase %s, want Stopping\n%s", phase, f.events(id))
	}
	if got := f.assigned(); got[0] != "" || got[1] != "" {
		t.Fatalf("while stopping, runners are told %v; want the pipeline on none", got)
	}
	// One runner still reports the old revision: nothing starts yet.
	f.pass()
	if phase, _, _ := f.rolloutState(id); phase != deploy.PhaseStopping {
		t.Fatalf("phase %s before the old members stopped", phase)
	}
	f.report(zero, zero) // both now report no pipeline
	f.pass()
	got := f.assigned()
	if got[0] == "" || got[0] == old[0] || got[1] != got[0] {
		t.Fatalf("after stopping, runners are told %v; want the new revision everywhere (old %v)", got, old)
	}
	for range 6 {
		f.report(zero, zero)
		f.pass()
	}
	if phase, status, _ := f.rolloutState(id); phase != deploy.PhaseSucceeded || status != deploy.StatusSynced {
		t.Fatalf("rollout %s/%s\n%s", phase, status, f.events(id))
	}
	if ev := f.events(id); !strings.Contains(ev, "stopping the old members of orders first") {
		t.Errorf("events do not say why it stopped first:\n%s", ev)
	}
}

// reportLag makes every runner report what it is assigned, with processed
// records and the lag status lag(i).
func (f *fixture) reportLag(lag func(i int) observability.Status, age int64) {
	f.t.Helper()
	f.reportLagRunning(lag, age, 0)
}

// reportLagRunning is reportLag for a lag sampled running after the
// pipeline entered its state (zero: neither time is reported).
func (f *fixture) reportLagRunning(lag func(i int) observability.Status, age int64, running time.Duration) {
	f.t.Helper()
	var since, sampled time.Time
	if running > 0 {
		since = time.Now()
		sampled = since.Add(running)
	}
	for i, r := range f.runners {
		a, err := f.store.Assignments(f.ctx, r)
		if err != nil {
			f.t.Fatal(err)
		}
		rep := agentproto.StatusReport{Generation: a.Generation}
		for _, p := range a.Pipelines {
			l := &observability.PipelineLag{SampledAt: sampled, Status: lag(i), EventAgeMs: age, Slowest: &observability.Slowest{Topic: "orders", Status: lag(i), Reason: "lag 500 and rising"}}
			rep.Pipelines = append(rep.Pipelines, agentproto.PipelineStatus{Name: p.Name, Digest: p.Digest, State: "running", Processed: 100, Since: since, Lag: l})
		}
		if err := f.store.Report(f.ctx, r, rep); err != nil {
			f.t.Fatal(err)
		}
	}
}

// The lag gates: a canary whose group stalls is rolled back at once; one
// whose lag grows all through the bake, from a healthy start, too. A lag
// only milliseconds behind fails neither, and neither does a verdict
// sampled within seconds of the new revision starting (its window still
// holds the gap between the revisions, when nothing committed).
func TestLagGates(t *testing.T) {
	for _, c := range []struct {
		name    string
		during  observability.Status
		age     int64
		running time.Duration
		want    string
	}{
		{"stalled", observability.StatusStalled, 60_000, 0, "stalled on the new revision"},
		{"growing", observability.StatusWarning, 60_000, 0, "lag kept growing during the bake"},
		{"stalled but fresh", observability.StatusStalled, 50, 0, ""},
		{"growing but fresh", observability.StatusWarning, 50, 0, ""},
		{"stalled, running long enough", observability.StatusStalled, 60_000, 30 * time.Second, "stalled on the new revision"},
		{"stalled, just started", observability.StatusStalled, 60_000, time.Second, ""},
		{"growing, just started", observability.StatusWarning, 60_000, time.Second, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, "canary", 2)
			f.push(1)
			for range 6 {
				f.pass()
				f.report(zero, zero)
			}
			if _, err := f.pool.Exec(f.ctx, "UPDATE fleets SET bake_seconds = 1"); err != nil {
				t.Fatal(err)
			}
			id := f.push(2).Rollouts[0].ID
			f.pass() // promotes the canary
			ok := func(int) observability.Status { return observability.StatusOK }
			f.reportLag(ok, 0)
			f.pass() // the bake begins, lag OK
			f.reportLagRunning(func(i int) observability.Status {
				if i == 0 {
					return c.during
				}
				return observability.StatusOK
			}, c.age, c.running)
			time.Sleep(1100 * time.Millisecond) // past the bake
			f.pass()
			phase, _, reason := f.rolloutState(id)
			if c.want == "" {
				if phase == deploy.PhaseRolledBack {
					t.Fatalf("a fresh lag rolled back: %q", reason)
				}
				return
			}
			if phase != deploy.PhaseRolledBack || !strings.Contains(reason, c.want) || !strings.Contains(reason, "lag 500 and rising") {
				t.Fatalf("rollout %s: %q; want RolledBack saying %q\n%s", phase, reason, c.want, f.events(id))
			}
		})
	}
}
