package terraform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicehq/sluice/gitops/deploy"
)

// lockFleetRun is the class of the advisory locks (one per fleet, keyed by
// hashtext of its id) held while a run of the fleet executes, so that
// control-plane replicas never run two at once.
const lockFleetRun = 0x5c13

// Config configures a Reconciler. Pool and Root are required.
type Config struct {
	Pool *pgxpool.Pool
	// DatabaseURL is the pg backend's connection string: the control
	// plane's own database, where each fleet's state gets a schema.
	DatabaseURL string
	// Root holds one working directory per fleet.
	Root string
	// Binary is the terraform to run (FindBinary). Without one every run
	// fails, saying to run `make setup`.
	Binary Binary
	// ControlPlaneURL is the URL runners reach the control plane at.
	ControlPlaneURL string
	// RunnerBinary is the runner the local module starts.
	RunnerBinary string
	// TokenTTL is how long a run's bootstrap token lives: a plan must be
	// approved, and its runners register, within it (default 1h).
	TokenTTL time.Duration
	// Poll is how often the reconciler looks for work (default 500ms).
	Poll time.Duration
	// Logger gets a line per run step (default: discard).
	Logger *slog.Logger
}

// Reconciler executes fleet runs: it plans queued runs and applies
// approved ones, recording phase, progress, logs and outcome in the run.
type Reconciler struct {
	cfg    Config
	log    *slog.Logger
	mu     sync.Mutex
	active map[uuid.UUID]bool
	wg     sync.WaitGroup
}

// New validates cfg.
func New(cfg Config) (*Reconciler, error) {
	if cfg.Pool == nil {
		return nil, errors.New("terraform: Config.Pool is required")
	}
	if cfg.Root == "" {
		return nil, errors.New("terraform: Config.Root is required")
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, err
	}
	cfg.Root = root
	if cfg.RunnerBinary != "" {
		if cfg.RunnerBinary, err = filepath.Abs(cfg.RunnerBinary); err != nil {
			return nil, err
		}
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{cfg: cfg, log: cfg.Logger, active: map[uuid.UUID]bool{}}, nil
}

// Binary is the terraform the reconciler runs.
func (r *Reconciler) Binary() Binary { return r.cfg.Binary }

// Run executes runs until ctx ends, then waits for the runs in flight,
// which end cancelled.
func (r *Reconciler) Run(ctx context.Context) error {
	if r.cfg.Binary.Path == "" {
		r.log.Warn("provisioning: " + ErrNoBinary.Error())
	} else {
		r.log.Info("provisioning: using "+r.cfg.Binary.Name, "version", r.cfg.Binary.Version, "path", r.cfg.Binary.Path, "root", r.cfg.Root)
	}
	t := time.NewTicker(r.cfg.Poll)
	defer t.Stop()
	defer r.wg.Wait()
	for {
		if err := r.poll(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("provisioning: look for runs", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// poll starts every run waiting for a plan or an apply, and fails runs
// whose control plane died while executing them.
func (r *Reconciler) poll(ctx context.Context) error {
	rows, err := r.cfg.Pool.Query(ctx, `SELECT id, fleet_id, state IN ('planning', 'applying') FROM provisioning_runs
		WHERE state IN ('queued', 'approved') OR (state IN ('planning', 'applying') AND heartbeat_at < now() - interval '1 minute')
		ORDER BY created_at LIMIT 50`)
	if err != nil {
		return err
	}
	type todo struct {
		run, fleet uuid.UUID
		stale      bool
	}
	work, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (todo, error) {
		var t todo
		err := row.Scan(&t.run, &t.fleet, &t.stale)
		return t, err
	})
	if err != nil {
		return err
	}
	for _, w := range work {
		r.mu.Lock()
		busy := r.active[w.run]
		if !busy {
			r.active[w.run] = true
		}
		r.mu.Unlock()
		if busy {
			continue
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer func() {
				r.mu.Lock()
				delete(r.active, w.run)
				r.mu.Unlock()
			}()
			if err := r.execute(ctx, w.run, w.fleet, w.stale); err != nil && ctx.Err() == nil {
				r.log.Warn("provisioning: run", "run", w.run, "err", err)
			}
		}()
	}
	return nil
}

// run is a fleet run with what executing it needs of its fleet.
type run struct {
	ID, FleetID    uuid.UUID
	Number         int
	State          string
	Destroy        bool
	Runners        int
	RunnerVersion  string
	Summary        *Summary
	Digest         string
	TokenExpiresAt *time.Time
	FleetName      string
	Module         string
	Settings       map[string]any
}

// execute takes the fleet's lock and, if the run still waits, claims and
// executes it. Without the lock (another control plane is executing a run
// of the fleet) it does nothing: the run stays for later.
func (r *Reconciler) execute(ctx context.Context, runID, fleetID uuid.UUID, stale bool) error {
	conn, err := r.cfg.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, hashtext($2))", lockFleetRun, fleetID.String()).Scan(&got); err != nil {
		return err
	}
	if !got {
		return nil
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, hashtext($2))", lockFleetRun, fleetID.String())
	}()
	if stale {
		return r.failStale(ctx, runID)
	}
	var ru run
	var summary []byte
	err = r.cfg.Pool.QueryRow(ctx, `UPDATE provisioning_runs ru SET
			state = CASE ru.state WHEN 'queued' THEN 'planning' ELSE 'applying' END,
			phase = 'init', terraform = $2, heartbeat_at = now(), updated_at = now()
		FROM fleets f WHERE ru.id = $1 AND f.id = ru.fleet_id AND ru.state IN ('queued', 'approved')
		RETURNING ru.id, ru.fleet_id, ru.number, ru.state, ru.destroy, ru.runners, ru.runner_version, ru.plan_summary, ru.plan_digest,
			ru.token_expires_at, f.name, f.module, f.settings`, runID, r.cfg.Binary.String()).Scan(
		&ru.ID, &ru.FleetID, &ru.Number, &ru.State, &ru.Destroy, &ru.Runners, &ru.RunnerVersion, &summary, &ru.Digest,
		&ru.TokenExpiresAt, &ru.FleetName, &ru.Module, &ru.Settings)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // approved, discarded or cancelled meanwhile
	}
	if err != nil {
		return err
	}
	if len(summary) > 0 {
		ru.Summary = &Summary{}
		if err := json.Unmarshal(summary, ru.Summary); err != nil {
			return err
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := r.watch(runCtx, cancel, ru.ID)
	defer stop()
	return r.reconcile(runCtx, ru)
}

// watch beats the run's heartbeat and cancels it when someone asks to.
func (r *Reconciler) watch(ctx context.Context, cancel context.CancelFunc, runID uuid.UUID) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var cancelled bool
			err := r.cfg.Pool.QueryRow(ctx, "UPDATE provisioning_runs SET heartbeat_at = now() WHERE id = $1 RETURNING cancel_requested", runID).Scan(&cancelled)
			if err == nil && cancelled {
				cancel()
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// failStale fails a run whose control plane stopped while executing it:
// the lock is free, so nobody is.
func (r *Reconciler) failStale(ctx context.Context, runID uuid.UUID) error {
	var state string
	err := r.cfg.Pool.QueryRow(ctx, `UPDATE provisioning_runs SET state = 'failed', finished_at = now(), updated_at = now(),
			error_kind = CASE state WHEN 'applying' THEN 'needs_human' ELSE 'retry' END,
			error = CASE state WHEN 'applying'
				THEN 'the control plane stopped during apply: check the fleet''s resources, then plan again (terraform may need force-unlock)'
				ELSE 'the control plane stopped during plan: plan again' END
		WHERE id = $1 AND state IN ('planning', 'applying') AND heartbeat_at < now() - interval '1 minute' RETURNING state`, runID).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	return err
}

// workspace is the fleet's working directory.
func (r *Reconciler) workspace(fleetID uuid.UUID) *Workspace {
	return &Workspace{
		Dir:     filepath.Join(r.cfg.Root, fleetID.String()),
		Binary:  r.cfg.Binary,
		ConnStr: r.cfg.DatabaseURL,
		Schema:  "fleet_" + strings.ReplaceAll(fleetID.String(), "-", ""),
	}
}

func planFile(number int) string { return filepath.Join("plans", fmt.Sprintf("run-%d.tfplan", number)) }

// reconcile is one run's ordered sub-steps, plan or apply, with the one
// deferred block that records the outcome.
func (r *Reconciler) reconcile(ctx context.Context, ru run) (err error) {
	logw := &logWriter{ctx: context.WithoutCancel(ctx), pool: r.cfg.Pool, run: ru.ID}
	ws := r.workspace(ru.FleetID)
	verb := map[string]string{"planning": "plan", "applying": "apply"}[ru.State]
	logw.line(fmt.Sprintf("run %d: %s with %s", ru.Number, verb, r.cfg.Binary))
	r.log.Info("provisioning: run", "fleet", ru.FleetName, "run", ru.Number, "step", verb)
	defer func() {
		logw.flush()
		r.finish(context.WithoutCancel(ctx), ru, logw, err)
	}()
	if verb == "plan" {
		return r.plan(ctx, ru, ws, logw)
	}
	return r.apply(ctx, ru, ws, logw)
}

// plan: inputs -> bootstrap token -> prepare -> init -> plan -> record.
func (r *Reconciler) plan(ctx context.Context, ru run, ws *Workspace, logw *logWriter) error {
	in, err := r.inputs(ru, ws)
	if err != nil {
		return err
	}
	if !ru.Destroy && ru.Runners > 0 {
		tok, err := r.mintToken(ctx, ru)
		if err != nil {
			return err
		}
		in.Secrets["bootstrap_token"] = tok
	}
	if err := ws.Prepare(in); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(ws.Dir, "plans"), 0o700); err != nil {
		return retry("prepare", err)
	}
	if err := ws.Init(ctx, logw); err != nil {
		return err
	}
	r.setPhase(ctx, ru.ID, "plan", 0)
	file := planFile(ru.Number)
	summary, err := ws.Plan(ctx, file, ru.Destroy, in.Secrets, logw)
	if err != nil {
		return err
	}
	digest, err := ws.Digest(file)
	if err != nil {
		return retry("plan", err)
	}
	logw.line("plan: " + summary.Text)
	state, finished := "planned", any(nil)
	if summary.Steps() == 0 {
		state, finished = "unchanged", time.Now()
		_ = os.Remove(filepath.Join(ws.Dir, file))
	}
	_, err = r.cfg.Pool.Exec(context.WithoutCancel(ctx), `UPDATE provisioning_runs SET state = $2, phase = '', plan_summary = $3, plan_digest = $4,
		resources_total = $5, finished_at = $6, updated_at = now() WHERE id = $1`, ru.ID, state, summary, digest, summary.Steps(), finished)
	return err
}

// apply: check the plan is still good -> init -> apply -> record the
// fleet as the state now is.
func (r *Reconciler) apply(ctx context.Context, ru run, ws *Workspace, logw *logWriter) error {
	if ru.Summary == nil || ru.Digest == "" {
		return needsHuman("apply", "plan again", errors.New("the run has no reviewed plan"))
	}
	if !ru.Destroy && ru.TokenExpiresAt != nil && time.Now().After(*ru.TokenExpiresAt) {
		return needsHuman("apply", "plan again and approve within "+r.cfg.TokenTTL.String(),
			errors.New("the plan's bootstrap token has expired: new runners could not register"))
	}
	// The plan carries its configuration, but the local module's scripts
	// run from the module directory, and the backend needs .terraform.
	if err := writeModule(ws.Dir, ru.Module); err != nil {
		return retry("prepare", err)
	}
	if err := ws.Init(ctx, logw); err != nil {
		return err
	}
	total := ru.Summary.Steps()
	r.setPhase(ctx, ru.ID, "apply", total)
	var mu sync.Mutex
	done := 0
	file := planFile(ru.Number)
	err := ws.Apply(ctx, file, ru.Digest, logw, func(ev Event) {
		mu.Lock()
		done++
		n := done
		mu.Unlock()
		_, _ = r.cfg.Pool.Exec(context.WithoutCancel(ctx), "UPDATE provisioning_runs SET resources_done = $2, updated_at = now() WHERE id = $1", ru.ID, n)
	})
	// Whatever the apply did, the fleet record follows the state.
	resources, rerr := ws.Resources(context.WithoutCancel(ctx))
	if rerr == nil {
		runners := 0
		if out, oerr := ws.Outputs(context.WithoutCancel(ctx)); oerr == nil {
			_ = json.Unmarshal(out["runner_count"], &runners)
		}
		status := "ready"
		switch {
		case err != nil:
			status = "failed"
		case ru.Destroy:
			status = "destroyed"
		}
		_, rerr = r.cfg.Pool.Exec(context.WithoutCancel(ctx), `UPDATE fleets SET resources = $2, provisioned_runners = $3, status = $4,
			runner_version = CASE WHEN $5 THEN runner_version ELSE $6 END, updated_at = now(), version = version + 1 WHERE id = $1`,
			ru.FleetID, resources, runners, status, ru.Destroy, ru.RunnerVersion)
		if rerr == nil && err == nil && ru.Destroy {
			// The fleet's runners are gone: their credentials go with them,
			// so that a machine terraform failed to stop cannot go on
			// fetching bundles, and the runners list stops calling them live.
			_, rerr = r.cfg.Pool.Exec(context.WithoutCancel(ctx), "UPDATE runners SET revoked_at = now() WHERE fleet_id = $1 AND revoked_at IS NULL", ru.FleetID)
		}
	}
	if err != nil {
		return err
	}
	if rerr != nil {
		return retry("record", rerr)
	}
	_ = os.Remove(filepath.Join(ws.Dir, file))
	logw.line(fmt.Sprintf("apply: done; the fleet has %d resources", resources))
	_, err = r.cfg.Pool.Exec(context.WithoutCancel(ctx), `UPDATE provisioning_runs SET state = 'applied', phase = '', resources_done = resources_total,
		finished_at = now(), updated_at = now() WHERE id = $1`, ru.ID)
	return err
}

// controlPlaneVariables are set by the control plane, never by a fleet's
// settings: who could change runner_binary could run any program on the
// control plane's host.
var controlPlaneVariables = []string{"fleet_id", "fleet_name", "control_plane_url", "bootstrap_token", "runner_version", "runner_count", "runner_binary", "fleet_dir"}

// inputs are the module variables of a run: the fleet's settings, then
// what the control plane sets.
func (r *Reconciler) inputs(ru run, ws *Workspace) (Inputs, error) {
	in := Inputs{Module: ru.Module, Vars: map[string]any{}, Secrets: map[string]string{}}
	for k, v := range ru.Settings {
		for _, cp := range controlPlaneVariables {
			if k == cp {
				return in, needsHuman("prepare", "remove it from the fleet's settings", fmt.Errorf("setting %q is set by the control plane", k))
			}
		}
		if k == "kafka_sasl_password" {
			s, _ := v.(string)
			in.Secrets[k] = s
			continue
		}
		in.Vars[k] = v
	}
	in.Vars["fleet_id"] = ru.FleetID.String()
	in.Vars["fleet_name"] = ru.FleetName
	in.Vars["control_plane_url"] = r.cfg.ControlPlaneURL
	in.Vars["runner_version"] = ru.RunnerVersion
	in.Vars["runner_count"] = ru.Runners
	if ru.Module == "local" {
		if r.cfg.RunnerBinary == "" {
			return in, needsHuman("prepare", "start the control plane with --runner PATH", errors.New("the local module needs the runner binary"))
		}
		in.Vars["runner_binary"] = r.cfg.RunnerBinary
		in.Vars["fleet_dir"] = filepath.Join(ws.Dir, "runners")
	}
	if r.cfg.ControlPlaneURL == "" {
		return in, needsHuman("prepare", "start the control plane with --public-url", errors.New("runners need the control plane's URL"))
	}
	return in, nil
}

// mintToken mints the run's bootstrap token: one use per runner, valid
// for TokenTTL. Only its prefix and expiry are recorded in the run.
func (r *Reconciler) mintToken(ctx context.Context, ru run) (string, error) {
	var tok deploy.BootstrapToken
	err := pgx.BeginFunc(ctx, r.cfg.Pool, func(tx pgx.Tx) error {
		var err error
		if tok, err = deploy.MintBootstrapToken(ctx, tx, ru.FleetID, ru.Runners, r.cfg.TokenTTL, nil); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE provisioning_runs SET token_prefix = $2, token_expires_at = $3 WHERE id = $1", ru.ID, tok.Prefix, tok.ExpiresAt)
		return err
	})
	if err != nil {
		return "", classify(ctx, "prepare", Retry, "", err)
	}
	return tok.Secret, nil
}

func (r *Reconciler) setPhase(ctx context.Context, runID uuid.UUID, phase string, total int) {
	_, _ = r.cfg.Pool.Exec(context.WithoutCancel(ctx), `UPDATE provisioning_runs SET phase = $2, resources_total = CASE WHEN $3 > 0 THEN $3 ELSE resources_total END,
		resources_done = 0, updated_at = now() WHERE id = $1`, runID, phase, total)
}

// finish records a failed run; a successful step has recorded itself.
func (r *Reconciler) finish(ctx context.Context, ru run, logw *logWriter, err error) {
	if err == nil {
		return
	}
	kind := KindOf(err)
	state := "failed"
	if kind == Cancelled {
		state = "cancelled"
	}
	logw.line(fmt.Sprintf("run %d %s (%s): %v", ru.Number, state, kind, err))
	logw.flush()
	r.log.Warn("provisioning: run "+state, "fleet", ru.FleetName, "run", ru.Number, "kind", kind, "err", err)
	if _, dberr := r.cfg.Pool.Exec(ctx, `UPDATE provisioning_runs SET state = $2, error = $3, error_kind = $4, phase = '',
		finished_at = now(), updated_at = now() WHERE id = $1`, ru.ID, state, err.Error(), string(kind)); dberr != nil {
		r.log.Error("provisioning: record the run's outcome", "run", ru.ID, "err", dberr)
	}
}

// logWriter stores what it is written, line by line, as the run's log.
type logWriter struct {
	ctx  context.Context
	pool *pgxpool.Pool
	run  uuid.UUID
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		i := bytes.IndexByte(w.buf.Bytes(), '\n')
		if i < 0 {
			break
		}
		line := string(w.buf.Next(i + 1))
		w.store(strings.TrimRight(line, "\r\n"))
	}
	return len(p), nil
}

// line stores one line of the control plane's own.
func (w *logWriter) line(s string) { _, _ = w.Write([]byte(s + "\n")) }

// flush stores a last line without its newline.
func (w *logWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() > 0 {
		w.store(w.buf.String())
		w.buf.Reset()
	}
}

func (w *logWriter) store(line string) {
	if strings.TrimSpace(line) == "" {
		return
	}
	if len(line) > 8<<10 {
		line = line[:8<<10] + " [cut]"
	}
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	_, _ = w.pool.Exec(ctx, "INSERT INTO provisioning_logs (run_id, line) VALUES ($1, $2)", w.run, strings.ToValidUTF8(line, "?"))
}
