package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/internal/database"
)

// fleetBody is a fleet: a group of runners in the customer's cloud.
// Creating one plans it through Terraform (provisioning.go); Status is
// what the last run left: pending, ready, failed or destroyed.
type fleetBody struct {
	ID        uuid.UUID `json:"id"`
	ProjectID uuid.UUID `json:"project_id"`
	Name      string    `json:"name"`
	// Module is the Terraform module that provisions it: local,
	// kubernetes or aws.
	Module  string `json:"module"`
	Runners int    `json:"runners"`
	// Settings are the module's variables.
	Settings json.RawMessage `json:"settings"`
	Status   string          `json:"status"`
	// Rollout is how new revisions reach the fleet's runners.
	Rollout   rolloutPolicy `json:"rollout"`
	CreatedAt time.Time     `json:"created_at"`
	UpdatedAt time.Time     `json:"updated_at"`
	version   int
}

const fleetColumns = "id, project_id, name, module, runners, settings, status, strategy, bake_seconds, max_dlq_ratio, created_at, updated_at, version"

func (f *fleetBody) scanDest() []any {
	return []any{&f.ID, &f.ProjectID, &f.Name, &f.Module, &f.Runners, &f.Settings, &f.Status,
		&f.Rollout.Strategy, &f.Rollout.BakeSeconds, &f.Rollout.MaxDLQRatio, &f.CreatedAt, &f.UpdatedAt, &f.version}
}

// rolloutPolicy says how rollouts proceed on a fleet: the strategy
// (all-at-once, rolling: one runner at a time, canary: one runner first,
// then the rest), how long each step must stay healthy, and the share of
// records sent to the DLQ that fails a step and rolls back.
type rolloutPolicy struct {
	Strategy    string  `json:"strategy"`
	BakeSeconds int     `json:"bake_seconds"`
	MaxDLQRatio float64 `json:"max_dlq_ratio"`
}

// rolloutPolicyPatch is a partial rolloutPolicy in a request.
type rolloutPolicyPatch struct {
	Strategy    *string  `json:"strategy"`
	BakeSeconds *int     `json:"bake_seconds"`
	MaxDLQRatio *float64 `json:"max_dlq_ratio"`
}

func (p *rolloutPolicyPatch) validate() []FieldError {
	if p == nil {
		return nil
	}
	var errs []FieldError
	if p.Strategy != nil && *p.Strategy != "all-at-once" && *p.Strategy != "rolling" && *p.Strategy != "canary" {
		errs = append(errs, FieldError{Field: "rollout.strategy", Detail: `must be "all-at-once", "rolling" or "canary"`})
	}
	if p.BakeSeconds != nil && (*p.BakeSeconds < 0 || *p.BakeSeconds > 86400) {
		errs = append(errs, FieldError{Field: "rollout.bake_seconds", Detail: "must be from 0 to 86400"})
	}
	if p.MaxDLQRatio != nil && (*p.MaxDLQRatio < 0 || *p.MaxDLQRatio > 1) {
		errs = append(errs, FieldError{Field: "rollout.max_dlq_ratio", Detail: "must be from 0 to 1"})
	}
	return errs
}

// fields returns the patch's values for SQL, nil where unset.
func (p *rolloutPolicyPatch) fields() (strategy, bake, ratio any) {
	if p == nil {
		return nil, nil, nil
	}
	if p.Strategy != nil {
		strategy = *p.Strategy
	}
	if p.BakeSeconds != nil {
		bake = *p.BakeSeconds
	}
	if p.MaxDLQRatio != nil {
		ratio = *p.MaxDLQRatio
	}
	return strategy, bake, ratio
}

var fleetModules = map[string]bool{"local": true, "kubernetes": true, "aws": true}

const maxRunners = 1000

type createFleetRequest struct {
	Name     string              `json:"name" required:"true"`
	Module   string              `json:"module" required:"true"`
	Runners  *int                `json:"runners"`
	Settings map[string]any      `json:"settings"`
	Rollout  *rolloutPolicyPatch `json:"rollout"`
}

func (b *createFleetRequest) validate() []FieldError {
	errs := checkName("name", b.Name)
	if !fleetModules[b.Module] {
		errs = append(errs, FieldError{Field: "module", Detail: `must be "local", "kubernetes" or "aws"`})
	}
	if b.Runners != nil && (*b.Runners < 0 || *b.Runners > maxRunners) {
		errs = append(errs, FieldError{Field: "runners", Detail: "must be from 0 to 1000"})
	}
	return append(errs, b.Rollout.validate()...)
}

type updateFleetRequest struct {
	Runners  *int                `json:"runners"`
	Settings map[string]any      `json:"settings"`
	Rollout  *rolloutPolicyPatch `json:"rollout"`
}

func (b *updateFleetRequest) validate() []FieldError {
	var errs []FieldError
	if b.Runners != nil && (*b.Runners < 0 || *b.Runners > maxRunners) {
		errs = append(errs, FieldError{Field: "runners", Detail: "must be from 0 to 1000"})
	}
	return append(errs, b.Rollout.validate()...)
}

func (s *Server) fleetResource() resource {
	return resource{prefix: "/projects/{projectID}/fleets", tag: "fleets", routes: []route{
		{method: http.MethodGet, path: "", op: "listFleets", summary: "List the project's fleets",
			access: inProject, role: "viewer", resp: fleetBody{}, list: true, handle: s.listFleets},
		{method: http.MethodPost, path: "", op: "createFleet", summary: "Record a fleet and plan it (approve its first run to provision it)",
			access: inProject, role: "owner", body: createFleetRequest{}, resp: fleetBody{}, status: http.StatusCreated, handle: s.createFleet},
		{method: http.MethodGet, path: "/{fleetID}", op: "getFleet", summary: "Get a fleet",
			access: inProject, role: "viewer", resp: fleetBody{}, handle: s.getFleet},
		{method: http.MethodPatch, path: "/{fleetID}", op: "updateFleet", summary: "Record a fleet's desired size, Terraform settings or rollout policy: the policy applies to its next rollout, size and settings to its next provisioning run (POST .../runs plans one)",
			access: inProject, role: "owner", body: updateFleetRequest{}, resp: fleetBody{}, handle: s.updateFleet},
		{method: http.MethodDelete, path: "/{fleetID}", op: "deleteFleet", summary: "Delete a fleet's record and its deployments; refused while Terraform manages resources of it (destroy them first)",
			access: inProject, role: "owner", handle: s.deleteFleet},
	}}
}

func (s *Server) listFleets(w http.ResponseWriter, r *http.Request) error {
	return writePage(w, r, s.pool, "SELECT "+fleetColumns+" FROM fleets WHERE project_id = $1 AND id > $2 ORDER BY id LIMIT $3",
		(*fleetBody).scanDest, func(f fleetBody) uuid.UUID { return f.ID }, projectFrom(r.Context()).ID)
}

func (s *Server) createFleet(w http.ResponseWriter, r *http.Request) error {
	var body createFleetRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	if body.Runners == nil {
		one := 1
		body.Runners = &one
	}
	if body.Settings == nil {
		body.Settings = map[string]any{}
	}
	ctx := r.Context()
	pa := projectFrom(ctx)
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	var f fleetBody
	err = s.tx(ctx, func(tx pgx.Tx) error {
		strategy, bake, ratio := body.Rollout.fields()
		err := tx.QueryRow(ctx, `INSERT INTO fleets (id, project_id, name, module, runners, settings, strategy, bake_seconds, max_dlq_ratio)
			VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, 'all-at-once'), coalesce($8, 30), coalesce($9, 0.05))
			RETURNING `+fleetColumns, id, pa.ID, body.Name, body.Module, *body.Runners, body.Settings, strategy, bake, ratio).Scan(f.scanDest()...)
		if _, dup := database.IsUniqueViolation(err); dup {
			return conflict("the project has a fleet with this name", FieldError{Field: "name", Detail: "already taken"})
		}
		if err != nil {
			return err
		}
		// Creating a fleet plans it: the run waits for review (provisioning.go).
		if _, err := s.openRun(ctx, tx, id, runRequest{reason: "create"}); err != nil {
			return err
		}
		return s.audit(ctx, tx, r, auditEntry{action: "fleet.create", resourceType: "fleet", resourceID: id.String(),
			details: map[string]any{"name": body.Name, "module": body.Module, "runners": *body.Runners}})
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/projects/"+pa.ID.String()+"/fleets/"+id.String())
	return writeVersioned(w, http.StatusCreated, f, f.version)
}

func (s *Server) loadFleet(r *http.Request) (fleetBody, error) {
	return loadInProject(r, s.pool, "fleetID", "fleet", "SELECT "+fleetColumns+" FROM fleets WHERE id = $1 AND project_id = $2", (*fleetBody).scanDest)
}

func (s *Server) getFleet(w http.ResponseWriter, r *http.Request) error {
	f, err := s.loadFleet(r)
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, f, f.version)
}

func (s *Server) updateFleet(w http.ResponseWriter, r *http.Request) error {
	f, err := s.loadFleet(r)
	if err != nil {
		return err
	}
	var body updateFleetRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	var settings any
	if body.Settings != nil {
		settings = body.Settings
	}
	var out fleetBody
	strategy, bake, ratio := body.Rollout.fields()
	err = s.updateVersioned(r, "fleet", auditEntry{action: "fleet.update", resourceType: "fleet",
		details: map[string]any{"runners": body.Runners, "settings_changed": body.Settings != nil, "rollout": body.Rollout}}, out.scanDest(),
		`UPDATE fleets SET runners = coalesce($3, runners), settings = coalesce($4, settings), strategy = coalesce($5, strategy),
			bake_seconds = coalesce($6, bake_seconds), max_dlq_ratio = coalesce($7, max_dlq_ratio), updated_at = now(), version = version + 1
		WHERE id = $1 AND ($2::int IS NULL OR version = $2) RETURNING `+fleetColumns, f.ID, body.Runners, settings, strategy, bake, ratio)
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, out, out.version)
}

func (s *Server) deleteFleet(w http.ResponseWriter, r *http.Request) error {
	f, err := s.loadFleet(r)
	if err != nil {
		return err
	}
	if n, err := s.fleetHasResources(r.Context(), f.ID); err != nil {
		return err
	} else if n > 0 {
		return conflict(fmt.Sprintf("Terraform manages %d resources of the fleet: destroy them first (POST .../destroy, then approve the run)", n))
	}
	return s.deleteVersioned(w, r, "fleets", f.ID, auditEntry{action: "fleet.delete", resourceType: "fleet",
		details: map[string]any{"name": f.Name}})
}
