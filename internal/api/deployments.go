package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/gitops/deploy"
)

// deploymentBody is desired state: this pipeline revision should run on
// this fleet. Status follows Argo CD's words: OutOfSync until the fleet
// runs it, then Progressing, Synced or Degraded (set by rollouts later).
type deploymentBody struct {
	ID             uuid.UUID `json:"id"`
	ProjectID      uuid.UUID `json:"project_id"`
	FleetID        uuid.UUID `json:"fleet_id"`
	PipelineID     uuid.UUID `json:"pipeline_id"`
	RevisionID     uuid.UUID `json:"revision_id"`
	RevisionNumber int       `json:"revision_number"`
	Status         string    `json:"status"`
	// Message says why, when it is not plain: a rollback's reason.
	Message   string    `json:"message,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	version   int
}

const deploymentColumns = `d.id, d.project_id, d.fleet_id, d.pipeline_id, d.revision_id,
	(SELECT number FROM revisions WHERE id = d.revision_id), d.status, d.message, d.created_at, d.updated_at, d.version`

func (d *deploymentBody) scanDest() []any {
	return []any{&d.ID, &d.ProjectID, &d.FleetID, &d.PipelineID, &d.RevisionID, &d.RevisionNumber, &d.Status, &d.Message, &d.CreatedAt, &d.UpdatedAt, &d.version}
}

type createDeploymentRequest struct {
	FleetID    string `json:"fleet_id" required:"true"`
	PipelineID string `json:"pipeline_id" required:"true"`
	// RevisionID defaults to the pipeline's latest revision.
	RevisionID string `json:"revision_id"`
}

func (b *createDeploymentRequest) validate() []FieldError {
	var errs []FieldError
	for _, f := range []struct{ name, v string }{{"fleet_id", b.FleetID}, {"pipeline_id", b.PipelineID}} {
		if _, err := uuid.Parse(f.v); err != nil || len(f.v) != 36 {
			errs = append(errs, FieldError{Field: f.name, Detail: "required, a UUID"})
		}
	}
	if _, err := uuid.Parse(b.RevisionID); b.RevisionID != "" && (err != nil || len(b.RevisionID) != 36) {
		errs = append(errs, FieldError{Field: "revision_id", Detail: "must be a UUID"})
	}
	return errs
}

type updateDeploymentRequest struct {
	RevisionID string `json:"revision_id" required:"true"`
}

func (b *updateDeploymentRequest) validate() []FieldError {
	if _, err := uuid.Parse(b.RevisionID); err != nil || len(b.RevisionID) != 36 {
		return []FieldError{{Field: "revision_id", Detail: "required, a UUID"}}
	}
	return nil
}

func (s *Server) deploymentResource() resource {
	return resource{prefix: "/projects/{projectID}/deployments", tag: "deployments", routes: []route{
		{method: http.MethodGet, path: "", op: "listDeployments", summary: "List the project's deployments",
			access: inProject, role: "viewer", resp: deploymentBody{}, list: true, handle: s.listDeployments},
		{method: http.MethodPost, path: "", op: "createDeployment", summary: "Deploy a pipeline revision to a fleet: record it as the target and start a rollout to the fleet's runners",
			access: inProject, role: "developer", body: createDeploymentRequest{}, resp: deploymentBody{}, status: http.StatusCreated, handle: s.createDeployment},
		{method: http.MethodGet, path: "/{deploymentID}", op: "getDeployment", summary: "Get a deployment",
			access: inProject, role: "viewer", resp: deploymentBody{}, handle: s.getDeployment},
		{method: http.MethodPatch, path: "/{deploymentID}", op: "updateDeployment", summary: "Move a deployment to another revision and start a rollout of it",
			access: inProject, role: "developer", body: updateDeploymentRequest{}, resp: deploymentBody{}, handle: s.updateDeployment},
		{method: http.MethodDelete, path: "/{deploymentID}", op: "deleteDeployment", summary: "Stop deploying a pipeline to a fleet: start a rollout that stops it on the fleet's runners",
			access: inProject, role: "developer", handle: s.deleteDeployment},
	}}
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) error {
	return writePage(w, r, s.pool, "SELECT "+deploymentColumns+" FROM deployments d WHERE d.project_id = $1 AND d.id > $2 ORDER BY d.id LIMIT $3",
		(*deploymentBody).scanDest, func(d deploymentBody) uuid.UUID { return d.ID }, projectFrom(r.Context()).ID)
}

// checkRevision verifies that revision belongs to pipeline in project
// (or picks the latest when revision is empty).
func checkRevision(ctx context.Context, tx pgx.Tx, project, pipeline uuid.UUID, revision string) (uuid.UUID, error) {
	var id uuid.UUID
	var err error
	if revision == "" {
		err = tx.QueryRow(ctx, `SELECT id FROM revisions WHERE pipeline_id = $1 AND project_id = $2 ORDER BY number DESC LIMIT 1`,
			pipeline, project).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return id, invalidField("revision_id", "the pipeline has no revisions yet; push one first")
		}
		return id, err
	}
	err = tx.QueryRow(ctx, `SELECT id FROM revisions WHERE id = $1 AND pipeline_id = $2 AND project_id = $3`,
		uuid.MustParse(revision), pipeline, project).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return id, invalidField("revision_id", "no such revision of this pipeline")
	}
	return id, err
}

func (s *Server) createDeployment(w http.ResponseWriter, r *http.Request) error {
	var body createDeploymentRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	ctx := r.Context()
	pa := projectFrom(ctx)
	fleet, pipe := uuid.MustParse(body.FleetID), uuid.MustParse(body.PipelineID)
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	var d deploymentBody
	err = s.tx(ctx, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM fleets WHERE id = $1 AND project_id = $2", fleet, pa.ID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return invalidField("fleet_id", "no such fleet in this project")
		}
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM pipelines WHERE id = $1 AND project_id = $2", pipe, pa.ID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return invalidField("pipeline_id", "no such pipeline in this project")
		}
		rev, err := checkRevision(ctx, tx, pa.ID, pipe, body.RevisionID)
		if err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM deployments WHERE fleet_id = $1 AND pipeline_id = $2", fleet, pipe).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return conflict("this pipeline is already deployed to this fleet; PATCH that deployment to change its revision",
				FieldError{Field: "pipeline_id", Detail: "already deployed to this fleet"})
		}
		if _, err := s.deploy.SetTargets(ctx, tx, fleet, map[uuid.UUID]*uuid.UUID{pipe: &rev}, s.rolloutInfo(ctx, "deployed")); err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `SELECT `+deploymentColumns+` FROM deployments d WHERE d.fleet_id = $1 AND d.pipeline_id = $2`, fleet, pipe).Scan(d.scanDest()...)
		if err != nil {
			return err
		}
		id = d.ID
		return s.audit(ctx, tx, r, auditEntry{action: "deployment.create", resourceType: "deployment", resourceID: id.String(),
			details: map[string]any{"fleet_id": fleet, "pipeline_id": pipe, "revision_id": rev}})
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/projects/"+pa.ID.String()+"/deployments/"+id.String())
	return writeVersioned(w, http.StatusCreated, d, d.version)
}

func (s *Server) loadDeployment(r *http.Request) (deploymentBody, error) {
	return loadInProject(r, s.pool, "deploymentID", "deployment",
		"SELECT "+deploymentColumns+" FROM deployments d WHERE d.id = $1 AND d.project_id = $2", (*deploymentBody).scanDest)
}

func (s *Server) getDeployment(w http.ResponseWriter, r *http.Request) error {
	d, err := s.loadDeployment(r)
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, d, d.version)
}

func (s *Server) updateDeployment(w http.ResponseWriter, r *http.Request) error {
	d, err := s.loadDeployment(r)
	if err != nil {
		return err
	}
	var body updateDeploymentRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	want, err := ifMatch(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var out deploymentBody
	err = s.tx(ctx, func(tx pgx.Tx) error {
		rev, err := checkRevision(ctx, tx, d.ProjectID, d.PipelineID, body.RevisionID)
		if err != nil {
			return err
		}
		if err := lockVersion(ctx, tx, d.ID, want); err != nil {
			return err
		}
		if _, err := s.deploy.SetTargets(ctx, tx, d.FleetID, map[uuid.UUID]*uuid.UUID{d.PipelineID: &rev}, s.rolloutInfo(ctx, "moved")); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT `+deploymentColumns+` FROM deployments d WHERE d.id = $1`, d.ID).Scan(out.scanDest()...); err != nil {
			return err
		}
		return s.audit(ctx, tx, r, auditEntry{action: "deployment.update", resourceType: "deployment", resourceID: d.ID.String(),
			details: map[string]any{"from_revision_id": d.RevisionID, "revision_id": rev}})
	})
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, out, out.version)
}

func (s *Server) deleteDeployment(w http.ResponseWriter, r *http.Request) error {
	d, err := s.loadDeployment(r)
	if err != nil {
		return err
	}
	want, err := ifMatch(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if err := lockVersion(ctx, tx, d.ID, want); err != nil {
			return err
		}
		// Stopping is a rollout too: runners are told to drop the pipeline.
		if _, err := s.deploy.SetTargets(ctx, tx, d.FleetID, map[uuid.UUID]*uuid.UUID{d.PipelineID: nil}, s.rolloutInfo(ctx, "stopped")); err != nil {
			return err
		}
		return s.audit(ctx, tx, r, auditEntry{action: "deployment.delete", resourceType: "deployment", resourceID: d.ID.String()})
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// lockVersion locks a deployment row and checks the request's If-Match
// version (nil: any).
func lockVersion(ctx context.Context, tx pgx.Tx, id uuid.UUID, want *int) error {
	var version int
	if err := tx.QueryRow(ctx, "SELECT version FROM deployments WHERE id = $1 FOR UPDATE", id).Scan(&version); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("deployment")
		}
		return err
	}
	if want != nil && *want != version {
		return preconditionFailed("the deployment changed since you read it; GET it again")
	}
	return nil
}

// rolloutInfo describes a deployment change made through the API.
func (s *Server) rolloutInfo(ctx context.Context, verb string) deploy.RolloutInfo {
	p := PrincipalFrom(ctx)
	info := deploy.RolloutInfo{Message: verb + " through the API by " + p.Name}
	if p.UserID != uuid.Nil {
		info.By = &p.UserID
	}
	return info
}
