// Package rollout is the reconciler that moves fleets to the revisions
// their deployments target (DESIGN.md §5), in the style of Flux's
// controllers: each pass over a rollout runs ordered sub-steps (load, pick
// the next batch of runners, wait for them to report the target, bake
// under health gates, finish or roll back) and ends with one status
// write. Sub-steps return typed results saying whether to go on, wait or
// stop.
//
// Strategies are batches of runners: all-at-once is one batch of every
// live runner, canary is the first runner then the rest, rolling is one
// runner at a time. Each batch is promoted (its runners' desired state
// becomes the target), must report the target running, then bakes for the
// fleet's bake time while the gates hold: no pipeline failed and the dead
// letter ratio stays under the fleet's limit, the pipeline's lag does not
// stall, and it does not grow all through the bake. A failed gate rolls the
// fleet back to the stable revisions at once and asks the Reverter for a
// revert commit, so Git stays the source of truth.
//
// One reconciler runs across control-plane replicas: Run holds a
// PostgreSQL advisory lock while it works.
package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicehq/sluice/gitops/deploy"
	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/observability"
)

// lockKey is the advisory lock that makes one reconciler active.
const lockKey int64 = 0x51c0_0001

// Reverter writes a revert commit on the project's deploy branch: the tree
// of commit `to` on top of `bad`, when the branch still points at `bad`.
// It returns the new commit, or "" with a reason when it did not revert.
type Reverter interface {
	Revert(ctx context.Context, projectID uuid.UUID, bad, to, reason string) (string, error)
}

// Reconciler advances rollouts. Create it with New, run it with Run.
type Reconciler struct {
	pool     *pgxpool.Pool
	log      *slog.Logger
	reverter Reverter
	interval time.Duration
	// liveFor is how long after its last report a runner counts as live.
	liveFor time.Duration
	// convergeTimeout is how long a batch may take to report the target
	// before the rollout is marked Degraded (it keeps waiting).
	convergeTimeout time.Duration
	// minRecords is how many records a bake must see before the dead
	// letter ratio counts.
	minRecords uint64
	// statusEvery is how often deployment statuses are refreshed from
	// reports; lastStatus is when they last were.
	statusEvery time.Duration
	lastStatus  time.Time
}

// Opt configures a Reconciler.
type Opt func(*Reconciler)

// Interval sets how often active rollouts are looked at (default 250ms).
func Interval(d time.Duration) Opt { return func(r *Reconciler) { r.interval = d } }

// LiveFor sets how long a runner counts as live after its last report
// (default three heartbeats).
func LiveFor(d time.Duration) Opt { return func(r *Reconciler) { r.liveFor = d } }

// StatusEvery sets how often deployment statuses are refreshed from the
// runners' reports outside rollouts (default 2s; 0 refreshes on every
// pass). The refresh reads every live runner's report, so it runs less
// often than rollouts advance.
func StatusEvery(d time.Duration) Opt { return func(r *Reconciler) { r.statusEvery = d } }

// Logger sets the logger (default: discard).
func Logger(l *slog.Logger) Opt { return func(r *Reconciler) { r.log = l } }

// WithReverter sets what writes revert commits (default: none; a rollback
// then changes desired state only and says so in the rollout's events).
func WithReverter(rv Reverter) Opt { return func(r *Reconciler) { r.reverter = rv } }

// New returns a reconciler over pool.
func New(pool *pgxpool.Pool, opts ...Opt) (*Reconciler, error) {
	r := &Reconciler{pool: pool, log: slog.New(slog.DiscardHandler), interval: 250 * time.Millisecond,
		liveFor: 3 * agentproto.HeartbeatInterval, convergeTimeout: 2 * time.Minute, minRecords: 10, statusEvery: 2 * time.Second}
	for _, o := range opts {
		o(r)
	}
	if r.pool == nil {
		return nil, errors.New("rollout: a pool is required")
	}
	if r.interval <= 0 || r.liveFor <= 0 {
		return nil, errors.New("rollout: Interval and LiveFor must be positive")
	}
	return r, nil
}

// Run reconciles until ctx ends, while it holds the advisory lock.
func (r *Reconciler) Run(ctx context.Context) error {
	for {
		err := r.runLocked(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.log.Warn("rollout reconciler", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}

func (r *Reconciler) runLocked(ctx context.Context) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", lockKey).Scan(&got); err != nil {
		return err
	}
	if !got {
		return nil // another replica reconciles
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockKey)
	}()
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		if err := r.Pass(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("reconciling rollouts", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		// A connection that died loses the lock: stop and take it again.
		if err := conn.Ping(ctx); err != nil {
			return err
		}
	}
}

// Pass reconciles every active rollout once, then refreshes deployment
// statuses. Tests call it directly.
func (r *Reconciler) Pass(ctx context.Context) error {
	rows, err := r.pool.Query(ctx, "SELECT id FROM rollouts WHERE finished_at IS NULL ORDER BY id")
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if err := r.reconcile(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("rollout %s: %w", id, err))
		}
	}
	if time.Since(r.lastStatus) >= r.statusEvery {
		if err := r.refreshStatuses(ctx); err != nil {
			errs = append(errs, err)
		}
		r.lastStatus = time.Now()
	}
	return errors.Join(errs...)
}

// runnerState is a live runner and its last report.
type runnerState struct {
	id     uuid.UUID
	name   string
	gen    int64
	report agentproto.StatusReport
}

func (rs runnerState) pipeline(name string) (agentproto.PipelineStatus, bool) {
	for _, p := range rs.report.Pipelines {
		if p.Name == name {
			return p, true
		}
	}
	return agentproto.PipelineStatus{}, false
}

type item struct {
	pipeline   uuid.UUID
	name       string
	fromDigest string // "" when nothing ran before
	toDigest   string // "" when the pipeline is removed
	recreate   bool
}

// state is what one pass knows about one rollout.
type state struct {
	id, fleet, project uuid.UUID
	commit, fromCommit string
	strategy, phase    string
	status, reason     string
	paused             bool
	promoted           []uuid.UUID
	stepStarted        time.Time
	baseline           map[string]counts // runner/pipeline -> counts when its bake began
	bake               time.Duration
	maxDLQ             float64
	items              []item
	runners            []runnerState
	now                time.Time

	events   []string
	bump     bool // the fleet's desired state changed
	finished bool
	// rollback asks the pass to restore the stable revisions.
	rollback bool
}

type counts struct {
	Processed  uint64 `json:"p"`
	DeadLetter uint64 `json:"d"`
	Restarts   int    `json:"r"`
	// Lag is the pipeline's lag status when the bake began ("" when the
	// runner reported none).
	Lag string `json:"l,omitempty"`
}

func (s *state) event(format string, args ...any) {
	s.events = append(s.events, fmt.Sprintf(format, args...))
}

// reconcile runs the sub-steps for one rollout and writes its status once.
func (r *Reconciler) reconcile(ctx context.Context, id uuid.UUID) error {
	st, err := r.load(ctx, id)
	if err != nil || st == nil {
		return err
	}
	if !st.paused {
		r.advance(st)
	}
	return r.save(ctx, st)
}

func (r *Reconciler) load(ctx context.Context, id uuid.UUID) (*state, error) {
	st := &state{id: id, baseline: map[string]counts{}}
	var baseline []byte
	var bakeSeconds int
	err := r.pool.QueryRow(ctx, `SELECT ro.fleet_id, ro.project_id, ro.commit_sha, ro.from_commit, ro.strategy, ro.phase, ro.status, ro.reason,
			ro.paused, ro.promoted, ro.step_started, ro.baseline, f.bake_seconds, f.max_dlq_ratio, now()
		FROM rollouts ro JOIN fleets f ON f.id = ro.fleet_id WHERE ro.id = $1 AND ro.finished_at IS NULL`, id).
		Scan(&st.fleet, &st.project, &st.commit, &st.fromCommit, &st.strategy, &st.phase, &st.status, &st.reason,
			&st.paused, &st.promoted, &st.stepStarted, &baseline, &bakeSeconds, &st.maxDLQ, &st.now)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil // finished meanwhile
	}
	if err != nil {
		return nil, err
	}
	st.bake = time.Duration(bakeSeconds) * time.Second
	_ = json.Unmarshal(baseline, &st.baseline)
	rows, err := r.pool.Query(ctx, `SELECT ri.pipeline_id, p.name, coalesce(f.digest, ''), coalesce(t.digest, ''), ri.recreate
		FROM rollout_items ri JOIN pipelines p ON p.id = ri.pipeline_id
		LEFT JOIN revisions f ON f.id = ri.from_revision_id LEFT JOIN revisions t ON t.id = ri.to_revision_id
		WHERE ri.rollout_id = $1 ORDER BY p.name`, id)
	if err != nil {
		return nil, err
	}
	st.items, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (item, error) {
		var it item
		err := row.Scan(&it.pipeline, &it.name, &it.fromDigest, &it.toDigest, &it.recreate)
		return it, err
	})
	if err != nil {
		return nil, err
	}
	rows, err = r.pool.Query(ctx, `SELECT id, name, generation, report FROM runners
		WHERE fleet_id = $1 AND revoked_at IS NULL AND last_seen_at > now() - $2::interval ORDER BY name, id`,
		st.fleet, fmt.Sprintf("%d milliseconds", r.liveFor.Milliseconds()))
	if err != nil {
		return nil, err
	}
	st.runners, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (runnerState, error) {
		var rs runnerState
		var rep []byte
		if err := row.Scan(&rs.id, &rs.name, &rs.gen, &rep); err != nil {
			return rs, err
		}
		_ = json.Unmarshal(rep, &rs.report)
		return rs, nil
	})
	return st, err
}

// advance moves the rollout on as far as this pass can.
func (r *Reconciler) advance(st *state) {
	if st.phase == deploy.PhasePending {
		st.phase = deploy.PhaseRolling
		st.stepStarted = st.now
		if st.recreates() {
			st.phase = deploy.PhaseStopping
			st.event("stopping the old members of %s first: the new revision changes the consumer group's protocol", strings.Join(st.recreateNames(), ", "))
			st.bump = true
			return
		}
		r.promoteNext(st)
		return
	}
	if st.phase == deploy.PhaseStopping {
		for _, rs := range st.runners {
			for _, it := range st.items {
				if _, running := rs.pipeline(it.name); running && it.recreate {
					return // wait: an old member still runs it
				}
			}
		}
		st.event("old members stopped; starting the new revision everywhere")
		st.phase = deploy.PhaseRolling
		st.promoted = nil
		for _, rs := range st.runners {
			st.promoted = append(st.promoted, rs.id)
		}
		st.stepStarted = st.now
		st.bump = true
		return
	}
	if st.phase != deploy.PhaseRolling {
		return
	}
	// Wait for the promoted runners to run the target.
	batch := st.batch()
	for _, rs := range batch {
		if msg, ok := st.converged(rs); !ok {
			if st.now.Sub(st.stepStarted) > r.convergeTimeout && st.status != deploy.StatusDegraded {
				st.status = deploy.StatusDegraded
				st.reason = fmt.Sprintf("runner %s has not started the new revision after %s: %s", rs.name, r.convergeTimeout, msg)
				st.event("%s", st.reason)
			}
			return
		}
	}
	// Bake: the gates must hold for the bake time from when the batch
	// converged.
	bakeStart := st.stepStarted
	for _, rs := range batch {
		for _, it := range st.items {
			if it.toDigest == "" {
				continue
			}
			key := rs.id.String() + "/" + it.name
			p, _ := rs.pipeline(it.name)
			base, seen := st.baseline[key]
			if !seen {
				base := counts{Processed: p.Processed, DeadLetter: p.DeadLetter, Restarts: p.Restarts}
				if p.Lag != nil {
					base.Lag = p.Lag.Status.String()
				}
				st.baseline[key] = base
				bakeStart = st.now
				st.stepStarted = st.now
				continue
			}
			if reason := r.gate(st, rs, it, p, base); reason != "" {
				r.rollBack(st, reason)
				return
			}
		}
	}
	if st.status == deploy.StatusDegraded && st.reason != "" && strings.Contains(st.reason, "has not started") {
		st.status, st.reason = deploy.StatusProgressing, ""
	}
	if st.now.Sub(bakeStart) < st.bake {
		return
	}
	// The lag trend is judged over the whole bake: lag that grew all along
	// on a runner whose lag was fine when the bake began fails the step.
	for _, rs := range batch {
		for _, it := range st.items {
			p, _ := rs.pipeline(it.name)
			base := st.baseline[rs.id.String()+"/"+it.name]
			if it.toDigest != "" && lagCounts(p) && p.Lag.Status == observability.StatusWarning && base.Lag == observability.StatusOK.String() {
				r.rollBack(st, fmt.Sprintf("runner %s: pipeline %s's lag kept growing during the bake (%s)", rs.name, it.name, slowest(p.Lag)))
				return
			}
		}
	}
	if len(batch) > 0 {
		names := make([]string, len(batch))
		for i, rs := range batch {
			names[i] = rs.name
		}
		st.event("runner%s %s healthy for %s", plural(len(names)), strings.Join(names, ", "), st.bake)
	}
	if !r.promoteNext(st) {
		st.phase = deploy.PhaseSucceeded
		st.status = deploy.StatusSynced
		st.finished = true
		if len(st.runners) == 0 {
			st.event("rollout done: no runner is live; runners take the new revision when they connect")
		} else {
			st.event("rollout succeeded: every runner runs the new revision")
		}
	}
}

// gate checks one pipeline on one promoted runner during the bake and
// returns why it failed, or "".
func (r *Reconciler) gate(st *state, rs runnerState, it item, p agentproto.PipelineStatus, base counts) string {
	if p.State == "failed" {
		return fmt.Sprintf("runner %s: pipeline %s failed on the new revision: %s", rs.name, it.name, p.Error)
	}
	if p.Restarts > base.Restarts+2 {
		return fmt.Sprintf("runner %s: pipeline %s restarted %d times during the bake: %s", rs.name, it.name, p.Restarts-base.Restarts, p.Error)
	}
	if lagCounts(p) && p.Lag.Status == observability.StatusStalled {
		return fmt.Sprintf("runner %s: pipeline %s stalled on the new revision: its group commits without moving on while records wait (%s)", rs.name, it.name, slowest(p.Lag))
	}
	if p.Processed < base.Processed || p.DeadLetter < base.DeadLetter {
		return "" // the pipeline restarted its counters; judge on the next reports
	}
	processed, dead := p.Processed-base.Processed, p.DeadLetter-base.DeadLetter
	if processed >= r.minRecords && float64(dead) > st.maxDLQ*float64(processed) {
		return fmt.Sprintf("runner %s: pipeline %s sent %d of %d records (%.0f%%) to the DLQ during the bake, above the fleet's limit of %.0f%%",
			rs.name, it.name, dead, processed, 100*float64(dead)/float64(processed), 100*st.maxDLQ)
	}
	return ""
}

// promoteNext promotes the next batch of runners; false when every live
// runner is promoted already.
func (r *Reconciler) promoteNext(st *state) bool {
	var next []runnerState
	for _, rs := range st.runners {
		if !contains(st.promoted, rs.id) {
			next = append(next, rs)
		}
	}
	if len(next) == 0 {
		return false
	}
	switch st.strategy {
	case "canary":
		if len(st.promoted) == 0 {
			next = next[:1]
		}
	case "rolling":
		next = next[:1]
	}
	names := make([]string, len(next))
	for i, rs := range next {
		st.promoted = append(st.promoted, rs.id)
		names[i] = rs.name
	}
	what := "runners"
	if st.strategy == "canary" && len(st.promoted) == 1 {
		what = "canary runner"
	} else if len(names) == 1 {
		what = "runner"
	}
	st.event("promoting %s %s", what, strings.Join(names, ", "))
	st.stepStarted = st.now
	st.bump = true
	return true
}

// batch is the promoted runners that are live.
func (st *state) batch() []runnerState {
	var out []runnerState
	for _, rs := range st.runners {
		if contains(st.promoted, rs.id) {
			out = append(out, rs)
		}
	}
	return out
}

// converged reports whether a promoted runner runs every item's target,
// or what it runs instead.
func (st *state) converged(rs runnerState) (string, bool) {
	for _, it := range st.items {
		p, ok := rs.pipeline(it.name)
		switch {
		case it.toDigest == "" && ok:
			return fmt.Sprintf("it still runs %s, which was removed", it.name), false
		case it.toDigest == "":
		case !ok:
			if len(rs.report.Errors) > 0 {
				return strings.Join(rs.report.Errors, "; "), false
			}
			return fmt.Sprintf("it does not report %s yet", it.name), false
		case p.Digest != it.toDigest:
			return fmt.Sprintf("it runs %s at %s", it.name, short(p.Digest)), false
		}
	}
	return "", true
}

func (st *state) recreates() bool { return len(st.recreateNames()) > 0 }

func (st *state) recreateNames() []string {
	var out []string
	for _, it := range st.items {
		if it.recreate {
			out = append(out, it.name)
		}
	}
	return out
}

// rollBack marks the rollout for rollback: save restores the stable
// revisions in its transaction.
func (r *Reconciler) rollBack(st *state, reason string) {
	st.rollback = true
	st.phase = deploy.PhaseRolledBack
	st.status = deploy.StatusDegraded
	st.reason = reason
	st.finished = true
	st.bump = true
	st.event("health gate failed: %s", reason)
	st.event("rolling back to the previous revisions")
}

// save writes what the pass decided, in one transaction, then asks for a
// revert commit after a rollback.
func (r *Reconciler) save(ctx context.Context, st *state) error {
	baseline, _ := json.Marshal(st.baseline)
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		var finished any
		if st.finished {
			finished = st.now
		}
		tag, err := tx.Exec(ctx, `UPDATE rollouts SET phase = $2, status = $3, reason = $4, promoted = $5, step_started = $6,
			baseline = $7, finished_at = $8, updated_at = now() WHERE id = $1 AND finished_at IS NULL`,
			st.id, st.phase, st.status, st.reason, st.promoted, st.stepStarted, baseline, finished)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			st.events, st.rollback = nil, false
			return nil // superseded meanwhile
		}
		for _, e := range st.events {
			if err := deploy.AddEvent(ctx, tx, st.id, e); err != nil {
				return err
			}
		}
		switch {
		case st.rollback:
			if err := restoreStable(ctx, tx, st); err != nil {
				return err
			}
		case st.finished && st.phase == deploy.PhaseSucceeded:
			if _, err := tx.Exec(ctx, `UPDATE deployments d SET stable_revision_id = NULL, status = 'Synced', message = '', updated_at = now()
				FROM rollout_items ri WHERE ri.rollout_id = $1 AND d.pipeline_id = ri.pipeline_id AND d.fleet_id = $2`, st.id, st.fleet); err != nil {
				return err
			}
		}
		if st.bump {
			return deploy.BumpGeneration(ctx, tx, st.fleet)
		}
		return nil
	})
	if err != nil || !st.rollback {
		return err
	}
	r.revert(ctx, st)
	return nil
}

// restoreStable points the rollout's deployments back at what ran before.
func restoreStable(ctx context.Context, tx pgx.Tx, st *state) error {
	rows, err := tx.Query(ctx, "SELECT pipeline_id, from_revision_id FROM rollout_items WHERE rollout_id = $1", st.id)
	if err != nil {
		return err
	}
	type back struct {
		pipeline uuid.UUID
		from     *uuid.UUID
	}
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (back, error) {
		var b back
		err := row.Scan(&b.pipeline, &b.from)
		return b, err
	})
	if err != nil {
		return err
	}
	for _, b := range items {
		if b.from == nil {
			if _, err := tx.Exec(ctx, "DELETE FROM deployments WHERE fleet_id = $1 AND pipeline_id = $2", st.fleet, b.pipeline); err != nil {
				return err
			}
			continue
		}
		if _, err := tx.Exec(ctx, `UPDATE deployments SET revision_id = $3, stable_revision_id = NULL, status = 'Degraded', message = $4,
			updated_at = now(), version = version + 1 WHERE fleet_id = $1 AND pipeline_id = $2`, st.fleet, b.pipeline, b.from, "rolled back: "+st.reason); err != nil {
			return err
		}
	}
	return nil
}

// revert asks for a revert commit and records the outcome as an event.
func (r *Reconciler) revert(ctx context.Context, st *state) {
	msg := "no revert commit: this control plane has no git server"
	if r.reverter != nil && st.commit != "" && st.fromCommit != "" {
		sha, err := r.reverter.Revert(ctx, st.project, st.commit, st.fromCommit, st.reason)
		switch {
		case err != nil:
			msg = "the revert commit could not be written: " + err.Error()
		case sha == "":
			msg = "no revert commit: the branch has moved on since " + short(st.commit)
		default:
			msg = "revert commit " + short(sha) + " restores the files of " + short(st.fromCommit)
			_, _ = r.pool.Exec(ctx, "UPDATE rollouts SET revert_commit = $2 WHERE id = $1", st.id, sha)
		}
	} else if st.commit == "" || st.fromCommit == "" {
		msg = "no revert commit: the rollout did not come from a push"
	}
	_ = pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error { return deploy.AddEvent(ctx, tx, st.id, msg) })
	r.log.Info("rollout rolled back", "rollout", st.id, "reason", st.reason, "revert", msg)
}

// refreshStatuses sets each deployment's status from the live runners'
// reports, outside rollouts: Synced when every live runner runs its
// target, Degraded when one reports it failed, OutOfSync otherwise.
func (r *Reconciler) refreshStatuses(ctx context.Context) error {
	_, err := r.pool.Exec(ctx, `
	WITH live AS (
		SELECT u.fleet_id, u.report FROM runners u
		WHERE u.revoked_at IS NULL AND u.last_seen_at > now() - $1::interval
	), judged AS (
		SELECT d.id,
			bool_or(EXISTS (SELECT 1 FROM jsonb_array_elements(l.report->'pipelines') e
				WHERE e->>'name' = p.name AND e->>'state' = 'failed')) AS failed,
			bool_and(EXISTS (SELECT 1 FROM jsonb_array_elements(l.report->'pipelines') e
				WHERE e->>'name' = p.name AND e->>'digest' = v.digest)) AS synced
		FROM deployments d
		JOIN pipelines p ON p.id = d.pipeline_id
		JOIN revisions v ON v.id = d.revision_id
		JOIN live l ON l.fleet_id = d.fleet_id
		WHERE d.stable_revision_id IS NULL
		  AND NOT EXISTS (SELECT 1 FROM rollouts ro WHERE ro.fleet_id = d.fleet_id AND ro.finished_at IS NULL)
		GROUP BY d.id
	)
	UPDATE deployments d SET status = CASE WHEN j.failed THEN 'Degraded' WHEN j.synced THEN 'Synced' ELSE 'OutOfSync' END,
		updated_at = now()
	FROM judged j
	WHERE d.id = j.id AND d.status <> CASE WHEN j.failed THEN 'Degraded' WHEN j.synced THEN 'Synced' ELSE 'OutOfSync' END`,
		fmt.Sprintf("%d milliseconds", r.liveFor.Milliseconds()))
	return err
}

// lagGateAge is how far behind (the pipeline's oldest waiting record) a
// stalled or growing lag must be before it fails a rollout step: a lag of a
// record or two, milliseconds old, that the sampling window calls stalled
// is no reason to roll back.
const lagGateAge = 10 * time.Second

// lagCounts reports whether a pipeline's lag verdict may fail a rollout
// step: it is lagGateAge behind, and it was sampled at least lagGateAge
// after the pipeline entered its state on this runner. The sampler's
// window outlives a revision change, so right after the new revision
// starts it still holds the commits of the gap while no revision ran
// (the old one stopped, the new one starting) and calls that stalled;
// the new revision has not had a chance to commit yet. Both times come
// from the runner's clock; a report without them is judged as it is.
func lagCounts(p agentproto.PipelineStatus) bool {
	if p.Lag == nil || p.Lag.EventAgeMs < lagGateAge.Milliseconds() {
		return false
	}
	if p.Since.IsZero() || p.Lag.SampledAt.IsZero() {
		return true
	}
	return p.Lag.SampledAt.Sub(p.Since) >= lagGateAge
}

// slowest names a pipeline's slowest stage and why, for a gate's reason.
func slowest(l *observability.PipelineLag) string {
	if l.Slowest == nil {
		return "lag " + l.Status.String()
	}
	return fmt.Sprintf("stage %d (%s): %s", l.Slowest.Stage, l.Slowest.Topic, l.Slowest.Reason)
}

func contains(ids []uuid.UUID, id uuid.UUID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func short(s string) string {
	if len(s) > 7 {
		return s[:7]
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// ErrNothingToRollBack: the rollout was rolled back already or superseded.
var ErrNothingToRollBack = errors.New("this rollout has nothing to roll back")

// Rollback rolls a rollout back by hand: one in progress restores the
// previous revisions at once, as a failed gate does; one that succeeded is
// undone by a revert commit, which deploys like any push. Either way Git
// gets the revert, so later pushes build on what runs.
func (r *Reconciler) Rollback(ctx context.Context, projectID, rolloutID uuid.UUID, reason string) error {
	st, err := r.load(ctx, rolloutID)
	if err != nil {
		return err
	}
	if st != nil {
		if st.project != projectID {
			return ErrNothingToRollBack
		}
		r.rollBack(st, reason)
		st.events = st.events[:len(st.events)-2]
		st.event("rollback requested: %s", reason)
		return r.save(ctx, st)
	}
	var phase, commit, from string
	err = r.pool.QueryRow(ctx, "SELECT phase, commit_sha, from_commit FROM rollouts WHERE id = $1 AND project_id = $2",
		rolloutID, projectID).Scan(&phase, &commit, &from)
	if err != nil {
		return err
	}
	if phase != deploy.PhaseSucceeded {
		return fmt.Errorf("%w: it is %s", ErrNothingToRollBack, phase)
	}
	if r.reverter == nil || commit == "" || from == "" {
		return fmt.Errorf("%w: it did not come from a push, so there is no commit to revert; deploy an earlier revision instead", ErrNothingToRollBack)
	}
	sha, err := r.reverter.Revert(ctx, projectID, commit, from, reason)
	if err != nil {
		return err
	}
	if sha == "" {
		return fmt.Errorf("%w: the branch has moved on since %s; revert it in Git", ErrNothingToRollBack, short(commit))
	}
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE rollouts SET revert_commit = $2, updated_at = now() WHERE id = $1", rolloutID, sha); err != nil {
			return err
		}
		return deploy.AddEvent(ctx, tx, rolloutID, "rolled back by revert commit "+short(sha)+": "+reason)
	})
}
