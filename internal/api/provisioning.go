package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/internal/database"
)

// Fleet runs: a fleet is created, scaled, upgraded and destroyed through
// Terraform. Each change is a run: planned by the control plane's
// provisioning reconciler (provisioning/terraform), reviewed here, then
// approved (which applies exactly the reviewed plan) or discarded. A fleet
// has at most one open run, so runs never interleave.

// planSummaryBody is what a plan changes.
type planSummaryBody struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Destroy int `json:"destroy"`
	// Changes lists each resource with its action: create, update,
	// delete or replace.
	Changes []planChangeBody `json:"changes"`
	// Text is terraform's summary: "2 to add, 0 to change, 0 to destroy".
	Text string `json:"text"`
}

type planChangeBody struct {
	Address string `json:"address"`
	Action  string `json:"action"`
}

// runProgressBody is how far an apply is: resources done of total.
type runProgressBody struct {
	Done  int `json:"done"`
	Total int `json:"total"`
}

// fleetRunBody is one Terraform run of a fleet.
type fleetRunBody struct {
	ID      uuid.UUID `json:"id"`
	FleetID uuid.UUID `json:"fleet_id"`
	// Number counts the fleet's runs from 1; it names the run in paths.
	Number int `json:"number"`
	// Reason is create, scale, upgrade, destroy or plan.
	Reason        string `json:"reason"`
	Destroy       bool   `json:"destroy"`
	Runners       int    `json:"runners"`
	RunnerVersion string `json:"runner_version"`
	// State is queued, planning, planned (waiting for review), approved,
	// applying, applied, unchanged, discarded, cancelled or failed.
	State string `json:"state"`
	// Phase is init, plan or apply while terraform runs.
	Phase    string           `json:"phase"`
	Plan     *planSummaryBody `json:"plan"`
	Progress runProgressBody  `json:"progress"`
	Error    string           `json:"error,omitempty"`
	// ErrorKind says what to do about Error: retry (plan again),
	// needs_human (change something first) or cancelled.
	ErrorKind       string `json:"error_kind,omitempty"`
	CancelRequested bool   `json:"cancel_requested"`
	// Terraform is the binary and version that ran it.
	Terraform string `json:"terraform"`
	// TokenPrefix names the bootstrap token minted for the run's runners.
	TokenPrefix    string     `json:"token_prefix,omitempty"`
	TokenExpiresAt *time.Time `json:"token_expires_at,omitempty"`
	RequestedBy    string     `json:"requested_by"`
	ApprovedBy     string     `json:"approved_by,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	FinishedAt     *time.Time `json:"finished_at,omitempty"`
}

const fleetRunColumns = `ru.id, ru.fleet_id, ru.number, ru.reason, ru.destroy, ru.runners, ru.runner_version, ru.state, ru.phase, ru.plan_summary,
	ru.resources_done, ru.resources_total, ru.error, ru.error_kind, ru.cancel_requested, ru.terraform, ru.token_prefix, ru.token_expires_at,
	ru.requested_by, ru.approved_by, ru.created_at, ru.updated_at, ru.finished_at`

func (b *fleetRunBody) scanDest() []any {
	return []any{&b.ID, &b.FleetID, &b.Number, &b.Reason, &b.Destroy, &b.Runners, &b.RunnerVersion, &b.State, &b.Phase, &b.Plan,
		&b.Progress.Done, &b.Progress.Total, &b.Error, &b.ErrorKind, &b.CancelRequested, &b.Terraform, &b.TokenPrefix, &b.TokenExpiresAt,
		&b.RequestedBy, &b.ApprovedBy, &b.CreatedAt, &b.UpdatedAt, &b.FinishedAt}
}

// waiting: nothing more happens to the run until someone acts or it ends.
func (b *fleetRunBody) waiting() bool { return b.FinishedAt != nil || b.State == "planned" }

// runLogBody is one line of a run's log.
type runLogBody struct {
	ID   int64     `json:"id"`
	At   time.Time `json:"at"`
	Line string    `json:"line"`
}

type scaleFleetRequest struct {
	// Runners is the fleet's new size.
	Runners *int `json:"runners" required:"true"`
}

func (b *scaleFleetRequest) validate() []FieldError {
	if b.Runners == nil {
		return []FieldError{{Field: "runners", Detail: "is required"}}
	}
	if *b.Runners < 0 || *b.Runners > maxRunners {
		return []FieldError{{Field: "runners", Detail: "must be from 0 to 1000"}}
	}
	return nil
}

type upgradeFleetRequest struct {
	// RunnerVersion is the runner version to roll the fleet to.
	RunnerVersion string `json:"runner_version" required:"true"`
}

func (b *upgradeFleetRequest) validate() []FieldError {
	v := b.RunnerVersion
	if v == "" || len(v) > 100 || strings.ContainsFunc(v, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_+", r))
	}) {
		return []FieldError{{Field: "runner_version", Detail: "must be 1 to 100 letters, digits and . - _ +"}}
	}
	return nil
}

func (s *Server) provisioningResource() resource {
	return resource{prefix: "/projects/{projectID}/fleets/{fleetID}", tag: "provisioning", routes: []route{
		{method: http.MethodPost, path: "/scale", op: "scaleFleet", summary: "Plan a change of the fleet's size (review, then approve the run)",
			access: inProject, role: "owner", body: scaleFleetRequest{}, resp: fleetRunBody{}, status: http.StatusCreated, handle: s.scaleFleet},
		{method: http.MethodPost, path: "/upgrade", op: "upgradeFleet", summary: "Plan moving the fleet's runners to another version",
			access: inProject, role: "owner", body: upgradeFleetRequest{}, resp: fleetRunBody{}, status: http.StatusCreated, handle: s.upgradeFleet},
		{method: http.MethodPost, path: "/destroy", op: "destroyFleet", summary: "Plan destroying the fleet's runners and infrastructure",
			access: inProject, role: "owner", resp: fleetRunBody{}, status: http.StatusCreated, handle: s.destroyFleet},
		{method: http.MethodGet, path: "/runs", op: "listFleetRuns", summary: "List the fleet's Terraform runs, oldest first",
			access: inProject, role: "viewer", resp: fleetRunBody{}, list: true, handle: s.listFleetRuns},
		{method: http.MethodPost, path: "/runs", op: "planFleet", summary: "Plan the fleet as recorded (e.g. again after a failed run)",
			access: inProject, role: "owner", resp: fleetRunBody{}, status: http.StatusCreated, handle: s.planFleet},
		{method: http.MethodGet, path: "/runs/{runNumber}", op: "getFleetRun", summary: "Get a run with its plan summary and progress",
			access: inProject, role: "viewer", resp: fleetRunBody{}, handle: s.getFleetRun},
		{method: http.MethodPost, path: "/runs/{runNumber}/approve", op: "approveFleetRun", summary: "Apply exactly the run's reviewed plan",
			access: inProject, role: "owner", resp: fleetRunBody{}, handle: s.approveFleetRun},
		{method: http.MethodPost, path: "/runs/{runNumber}/discard", op: "discardFleetRun", summary: "Discard the run's plan; its bootstrap token is spent",
			access: inProject, role: "owner", resp: fleetRunBody{}, handle: s.discardFleetRun},
		{method: http.MethodPost, path: "/runs/{runNumber}/cancel", op: "cancelFleetRun", summary: "Cancel the run; terraform is interrupted if it is running",
			access: inProject, role: "owner", resp: fleetRunBody{}, handle: s.cancelFleetRun},
		{method: http.MethodGet, path: "/runs/{runNumber}/logs", op: "fleetRunLogs", summary: "The run's log; with Accept: text/event-stream, streamed with its progress until it waits or ends (curl -N)",
			access: inProject, role: "viewer", resp: runLogBody{}, handle: s.fleetRunLogs},
	}}
}

// runRequest is a run to open for a fleet.
type runRequest struct {
	reason        string
	destroy       bool
	runners       *int    // default: the fleet's
	runnerVersion *string // default: the fleet's
}

// openRun records a queued run for the fleet in tx, refusing (409) when
// the fleet has an open run. The fleet row is locked, so two requests
// cannot both pass the check.
func (s *Server) openRun(ctx context.Context, tx pgx.Tx, fleetID uuid.UUID, req runRequest) (fleetRunBody, error) {
	var out fleetRunBody
	var runners int
	var version string
	if err := tx.QueryRow(ctx, "SELECT runners, runner_version FROM fleets WHERE id = $1 FOR UPDATE", fleetID).Scan(&runners, &version); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return out, notFound("fleet")
		}
		return out, err
	}
	var number int
	var state string
	err := tx.QueryRow(ctx, "SELECT number, state FROM provisioning_runs WHERE fleet_id = $1 AND finished_at IS NULL", fleetID).Scan(&number, &state)
	if err == nil {
		return out, conflict(fmt.Sprintf("the fleet's run %d is %s: approve, discard or cancel it, or wait for it to finish", number, state))
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return out, err
	}
	if req.runners != nil {
		runners = *req.runners
	}
	if req.destroy {
		runners = 0
	}
	if req.runnerVersion != nil {
		version = *req.runnerVersion
	}
	id, err := uuid.NewV7()
	if err != nil {
		return out, err
	}
	by := ""
	if p := PrincipalFrom(ctx); p != nil {
		by = p.Name
	}
	err = tx.QueryRow(ctx, `INSERT INTO provisioning_runs (id, fleet_id, number, reason, destroy, runners, runner_version, requested_by)
		VALUES ($1, $2, (SELECT coalesce(max(number), 0) + 1 FROM provisioning_runs WHERE fleet_id = $2), $3, $4, $5, $6, $7)
		RETURNING `+strings.ReplaceAll(fleetRunColumns, "ru.", ""), id, fleetID, req.reason, req.destroy, runners, version, by).Scan(out.scanDest()...)
	if _, dup := database.IsUniqueViolation(err); dup {
		return out, conflict("the fleet has an open run: approve, discard or cancel it, or wait for it to finish")
	}
	return out, err
}

// startRun opens a run for the fleet of the request and audits it.
func (s *Server) startRun(w http.ResponseWriter, r *http.Request, req runRequest, before func(ctx context.Context, tx pgx.Tx, fleetID uuid.UUID) error) error {
	f, err := s.loadFleet(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var run fleetRunBody
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if before != nil {
			if err := before(ctx, tx, f.ID); err != nil {
				return err
			}
		}
		var err error
		if run, err = s.openRun(ctx, tx, f.ID, req); err != nil {
			return err
		}
		return s.audit(ctx, tx, r, auditEntry{action: "fleet." + req.reason, resourceType: "fleet", resourceID: f.ID.String(),
			details: map[string]any{"run": run.Number, "runners": run.Runners, "runner_version": run.RunnerVersion, "destroy": run.Destroy}})
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/projects/%s/fleets/%s/runs/%d", f.ProjectID, f.ID, run.Number))
	return writeJSON(w, http.StatusCreated, run)
}

func (s *Server) scaleFleet(w http.ResponseWriter, r *http.Request) error {
	var body scaleFleetRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	return s.startRun(w, r, runRequest{reason: "scale", runners: body.Runners}, func(ctx context.Context, tx pgx.Tx, fleetID uuid.UUID) error {
		_, err := tx.Exec(ctx, "UPDATE fleets SET runners = $2, updated_at = now(), version = version + 1 WHERE id = $1", fleetID, *body.Runners)
		return err
	})
}

func (s *Server) upgradeFleet(w http.ResponseWriter, r *http.Request) error {
	var body upgradeFleetRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	return s.startRun(w, r, runRequest{reason: "upgrade", runnerVersion: &body.RunnerVersion}, nil)
}

func (s *Server) destroyFleet(w http.ResponseWriter, r *http.Request) error {
	return s.startRun(w, r, runRequest{reason: "destroy", destroy: true}, nil)
}

func (s *Server) planFleet(w http.ResponseWriter, r *http.Request) error {
	return s.startRun(w, r, runRequest{reason: "plan"}, nil)
}

func (s *Server) listFleetRuns(w http.ResponseWriter, r *http.Request) error {
	f, err := s.loadFleet(r)
	if err != nil {
		return err
	}
	return writePage(w, r, s.pool, "SELECT "+fleetRunColumns+" FROM provisioning_runs ru WHERE ru.fleet_id = $1 AND ru.id > $2 ORDER BY ru.id LIMIT $3",
		(*fleetRunBody).scanDest, func(b fleetRunBody) uuid.UUID { return b.ID }, f.ID)
}

// loadFleetRun loads the run named by the path, in the path's fleet and
// project.
func (s *Server) loadFleetRun(r *http.Request) (fleetRunBody, error) {
	var run fleetRunBody
	f, err := s.loadFleet(r)
	if err != nil {
		return run, err
	}
	n, err := strconv.Atoi(chi.URLParam(r, "runNumber"))
	if err != nil || n < 1 {
		return run, notFound("run")
	}
	err = s.pool.QueryRow(r.Context(), "SELECT "+fleetRunColumns+" FROM provisioning_runs ru WHERE ru.fleet_id = $1 AND ru.number = $2",
		f.ID, n).Scan(run.scanDest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return run, notFound("run")
	}
	return run, err
}

func (s *Server) getFleetRun(w http.ResponseWriter, r *http.Request) error {
	run, err := s.loadFleetRun(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, run)
}

// transition moves the run from one of the states in from with update (an
// UPDATE of provisioning_runs whose $1 is the run id and $2 the principal),
// audits it, and answers with the run. A run in another state is a 409.
func (s *Server) transition(w http.ResponseWriter, r *http.Request, verb string, from []string, update string) error {
	run, err := s.loadFleetRun(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	err = s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, update+" AND state = ANY($3)", run.ID, PrincipalFrom(ctx).Name, from)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return conflict(fmt.Sprintf("run %d is %s: only a run that is %s can be %s", run.Number, run.State, strings.Join(from, " or "), verb))
		}
		if verb != "approved" {
			// A run that will not apply spends its bootstrap token.
			if _, err := tx.Exec(ctx, `UPDATE bootstrap_tokens SET uses_left = 0 WHERE fleet_id = $1 AND prefix = $2
				AND EXISTS (SELECT 1 FROM provisioning_runs WHERE id = $3 AND finished_at IS NOT NULL)`, run.FleetID, run.TokenPrefix, run.ID); err != nil {
				return err
			}
		}
		return s.audit(ctx, tx, r, auditEntry{action: "fleet.run." + strings.TrimSuffix(verb, "ed"), resourceType: "fleet", resourceID: run.FleetID.String(),
			details: map[string]any{"run": run.Number}})
	})
	if err != nil {
		return err
	}
	if run, err = s.loadFleetRun(r); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, run)
}

func (s *Server) approveFleetRun(w http.ResponseWriter, r *http.Request) error {
	return s.transition(w, r, "approved", []string{"planned"},
		"UPDATE provisioning_runs SET state = 'approved', approved_by = $2, updated_at = now() WHERE id = $1")
}

func (s *Server) discardFleetRun(w http.ResponseWriter, r *http.Request) error {
	return s.transition(w, r, "discarded", []string{"planned"},
		"UPDATE provisioning_runs SET state = 'discarded', finished_at = now(), updated_at = now(), error = 'discarded by ' || $2 WHERE id = $1")
}

// cancelFleetRun ends a run that is not executing at once; one that is
// executing is asked to stop, and ends cancelled when terraform has.
func (s *Server) cancelFleetRun(w http.ResponseWriter, r *http.Request) error {
	return s.transition(w, r, "cancelled", []string{"queued", "planned", "approved", "planning", "applying"},
		`UPDATE provisioning_runs SET cancel_requested = true, updated_at = now(),
			error = 'cancelled by ' || $2, error_kind = 'cancelled',
			state = CASE WHEN state IN ('planning', 'applying') THEN state ELSE 'cancelled' END,
			finished_at = CASE WHEN state IN ('planning', 'applying') THEN NULL ELSE now() END
		WHERE id = $1`)
}

func (s *Server) runLogs(ctx context.Context, runID uuid.UUID, after int64) ([]runLogBody, error) {
	rows, err := s.pool.Query(ctx, "SELECT id, at, line FROM provisioning_logs WHERE run_id = $1 AND id > $2 ORDER BY id LIMIT 1000", runID, after)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (runLogBody, error) {
		var l runLogBody
		err := row.Scan(&l.ID, &l.At, &l.Line)
		return l, err
	})
}

// fleetRunLogs lists the run's log, or streams it as server-sent events:
// a `data:` JSON line per log line, `event: progress` with state, phase
// and resources done/total whenever they change, and `event: end` with the
// run once it waits for review or has finished.
func (s *Server) fleetRunLogs(w http.ResponseWriter, r *http.Request) error {
	run, err := s.loadFleetRun(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		var all []runLogBody
		var after int64
		for {
			page, err := s.runLogs(ctx, run.ID, after)
			if err != nil {
				return err
			}
			all = append(all, page...)
			if len(page) < 1000 || len(all) >= 100000 {
				break
			}
			after = page[len(page)-1].ID
		}
		if all == nil {
			all = []runLogBody{}
		}
		return writeJSON(w, http.StatusOK, map[string]any{"items": all})
	}
	stream := startEventStream(w)
	var last int64
	lastProgress := ""
	stream.poll(ctx, func() (bool, error) {
		lines, err := s.runLogs(ctx, run.ID, last)
		if err != nil {
			return false, err
		}
		for _, l := range lines {
			stream.send("", l.ID, l)
			last = l.ID
		}
		cur, err := s.loadFleetRun(r)
		if err != nil {
			return false, err
		}
		progress := map[string]any{"state": cur.State, "phase": cur.Phase, "done": cur.Progress.Done, "total": cur.Progress.Total}
		if b, _ := json.Marshal(progress); string(b) != lastProgress {
			stream.send("progress", 0, progress)
			lastProgress = string(b)
		}
		if len(lines) == 0 && cur.waiting() {
			stream.send("end", 0, cur)
			return true, nil
		}
		return false, nil
	})
	return nil
}

// fleetHasResources is whether Terraform still manages resources of the
// fleet: its record may not go before a destroy run has removed them.
func (s *Server) fleetHasResources(ctx context.Context, fleetID uuid.UUID) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, "SELECT resources FROM fleets WHERE id = $1", fleetID).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return n, err
}
