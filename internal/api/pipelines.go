package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/gitops/deploy"
	"github.com/sluicehq/sluice/gitops/validate"
	"github.com/sluicehq/sluice/internal/database"
	"github.com/sluicehq/sluice/internal/diag"
	"github.com/sluicehq/sluice/internal/pipeline"
)

// pipelineBody is a pipeline: a name in a project whose revisions hold the
// YAML. GitOps pushes create revisions; the API can too.
type pipelineBody struct {
	ID          uuid.UUID `json:"id"`
	ProjectID   uuid.UUID `json:"project_id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	// LatestRevision is the newest revision's number, 0 before the first.
	LatestRevision int       `json:"latest_revision"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	version        int
}

const pipelineColumns = `p.id, p.project_id, p.name, p.description,
	coalesce((SELECT max(number) FROM revisions WHERE pipeline_id = p.id), 0), p.created_at, p.updated_at, p.version`

func (p *pipelineBody) scanDest() []any {
	return []any{&p.ID, &p.ProjectID, &p.Name, &p.Description, &p.LatestRevision, &p.CreatedAt, &p.UpdatedAt, &p.version}
}

type createPipelineRequest struct {
	Name        string `json:"name" required:"true"`
	Description string `json:"description"`
}

func (b *createPipelineRequest) validate() []FieldError {
	return append(checkName("name", b.Name), checkText("description", b.Description, 2000)...)
}

type updatePipelineRequest struct {
	Description *string `json:"description"`
}

func (b *updatePipelineRequest) validate() []FieldError {
	if b.Description != nil {
		return checkText("description", *b.Description, 2000)
	}
	return nil
}

// revisionBody is one version of a pipeline: its YAML and the side files
// it reads, made by a push or through the API, compiled when created.
type revisionBody struct {
	ID         uuid.UUID `json:"id"`
	PipelineID uuid.UUID `json:"pipeline_id"`
	Number     int       `json:"number"`
	CommitSHA  string    `json:"commit_sha,omitempty"`
	Message    string    `json:"message,omitempty"`
	Author     string    `json:"author,omitempty"`
	// Path is the pipeline file in the repository (pushes only).
	Path string `json:"path,omitempty"`
	// SideFiles are the repository files the pipeline reads, part of its
	// bundle and digest.
	SideFiles []string `json:"side_files"`
	// Source is the YAML. Lists leave it out unless asked for with
	// ?fields=source, so a page of revisions stays small.
	Source string `json:"source,omitempty"`
	// Digest is the SHA-256 of the revision's bundle (YAML and side files),
	// which runners verify before they run it.
	Digest    string     `json:"digest"`
	CreatedBy *uuid.UUID `json:"created_by,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	// StateResets, in the response that creates a revision, names the
	// stateful steps whose state this revision starts from empty.
	StateResets []string `json:"state_resets,omitempty"`
}

const revisionColumns = "id, pipeline_id, number, commit_sha, message, author, path, side_files, source, digest, created_by, created_at"

// revisionListColumns leave the source out (an empty string in its place).
const revisionListColumns = "id, pipeline_id, number, commit_sha, message, author, path, side_files, '', digest, created_by, created_at"

func (v *revisionBody) scanDest() []any {
	return []any{&v.ID, &v.PipelineID, &v.Number, &v.CommitSHA, &v.Message, &v.Author, &v.Path, &v.SideFiles, &v.Source, &v.Digest, &v.CreatedBy, &v.CreatedAt}
}

type createRevisionRequest struct {
	// Source is the pipeline's YAML; it must compile.
	Source    string `json:"source" required:"true"`
	CommitSHA string `json:"commit_sha"`
	Message   string `json:"message"`
}

func (b *createRevisionRequest) validate() []FieldError {
	var errs []FieldError
	if b.Source == "" {
		errs = append(errs, FieldError{Field: "source", Detail: "required: the pipeline's YAML"})
	}
	errs = append(errs, checkText("commit_sha", b.CommitSHA, 64)...)
	return append(errs, checkText("message", b.Message, 10000)...)
}

func (s *Server) pipelineResource() resource {
	return resource{prefix: "/projects/{projectID}/pipelines", tag: "pipelines", routes: []route{
		{method: http.MethodGet, path: "", op: "listPipelines", summary: "List the project's pipelines",
			access: inProject, role: "viewer", resp: pipelineBody{}, list: true, handle: s.listPipelines},
		{method: http.MethodPost, path: "", op: "createPipeline", summary: "Create a pipeline (its YAML comes in revisions)",
			access: inProject, role: "developer", body: createPipelineRequest{}, resp: pipelineBody{}, status: http.StatusCreated, handle: s.createPipeline},
		{method: http.MethodGet, path: "/{pipelineID}", op: "getPipeline", summary: "Get a pipeline",
			access: inProject, role: "viewer", resp: pipelineBody{}, handle: s.getPipeline},
		{method: http.MethodPatch, path: "/{pipelineID}", op: "updatePipeline", summary: "Change a pipeline's description",
			access: inProject, role: "developer", body: updatePipelineRequest{}, resp: pipelineBody{}, handle: s.updatePipeline},
		{method: http.MethodDelete, path: "/{pipelineID}", op: "deletePipeline", summary: "Delete a pipeline, its revisions and deployments",
			access: inProject, role: "owner", handle: s.deletePipeline},
		{method: http.MethodGet, path: "/{pipelineID}/revisions", op: "listRevisions", summary: "List a pipeline's revisions",
			access: inProject, role: "viewer", resp: revisionBody{}, list: true, handle: s.listRevisions},
		{method: http.MethodPost, path: "/{pipelineID}/revisions", op: "createRevision", summary: "Add a revision; the YAML must compile (errors name line and column)",
			access: inProject, role: "developer", body: createRevisionRequest{}, resp: revisionBody{}, status: http.StatusCreated, handle: s.createRevision},
		{method: http.MethodGet, path: "/{pipelineID}/revisions/{revisionID}", op: "getRevision", summary: "Get a revision",
			access: inProject, role: "viewer", resp: revisionBody{}, handle: s.getRevision},
	}}
}

func (s *Server) listPipelines(w http.ResponseWriter, r *http.Request) error {
	return writePage(w, r, s.pool, "SELECT "+pipelineColumns+" FROM pipelines p WHERE p.project_id = $1 AND p.id > $2 ORDER BY p.id LIMIT $3",
		(*pipelineBody).scanDest, func(p pipelineBody) uuid.UUID { return p.ID }, projectFrom(r.Context()).ID)
}

func (s *Server) createPipeline(w http.ResponseWriter, r *http.Request) error {
	var body createPipelineRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	ctx := r.Context()
	pa := projectFrom(ctx)
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	var out pipelineBody
	err = s.tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO pipelines AS p (id, project_id, name, description) VALUES ($1, $2, $3, $4)
			RETURNING `+pipelineColumns, id, pa.ID, body.Name, body.Description).Scan(out.scanDest()...)
		if _, dup := database.IsUniqueViolation(err); dup {
			return conflict("the project has a pipeline with this name", FieldError{Field: "name", Detail: "already taken"})
		}
		if err != nil {
			return err
		}
		return s.audit(ctx, tx, r, auditEntry{action: "pipeline.create", resourceType: "pipeline", resourceID: id.String(),
			details: map[string]any{"name": body.Name}})
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/projects/"+pa.ID.String()+"/pipelines/"+id.String())
	return writeVersioned(w, http.StatusCreated, out, out.version)
}

func (s *Server) loadPipeline(r *http.Request) (pipelineBody, error) {
	return loadInProject(r, s.pool, "pipelineID", "pipeline",
		"SELECT "+pipelineColumns+" FROM pipelines p WHERE p.id = $1 AND p.project_id = $2", (*pipelineBody).scanDest)
}

func (s *Server) getPipeline(w http.ResponseWriter, r *http.Request) error {
	p, err := s.loadPipeline(r)
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, p, p.version)
}

func (s *Server) updatePipeline(w http.ResponseWriter, r *http.Request) error {
	p, err := s.loadPipeline(r)
	if err != nil {
		return err
	}
	var body updatePipelineRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	var out pipelineBody
	err = s.updateVersioned(r, "pipeline", auditEntry{action: "pipeline.update", resourceType: "pipeline"}, out.scanDest(),
		`UPDATE pipelines p SET description = coalesce($3, description), updated_at = now(), version = version + 1
		WHERE id = $1 AND ($2::int IS NULL OR version = $2) RETURNING `+pipelineColumns, p.ID, body.Description)
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, out, out.version)
}

func (s *Server) deletePipeline(w http.ResponseWriter, r *http.Request) error {
	p, err := s.loadPipeline(r)
	if err != nil {
		return err
	}
	return s.deleteVersioned(w, r, "pipelines", p.ID, auditEntry{action: "pipeline.delete", resourceType: "pipeline",
		details: map[string]any{"name": p.Name}})
}

func (s *Server) listRevisions(w http.ResponseWriter, r *http.Request) error {
	p, err := s.loadPipeline(r)
	if err != nil {
		return err
	}
	cols := revisionListColumns
	if r.URL.Query().Get("fields") == "source" {
		cols = revisionColumns
	}
	return writePage(w, r, s.pool, "SELECT "+cols+" FROM revisions WHERE pipeline_id = $1 AND id > $2 ORDER BY id LIMIT $3",
		(*revisionBody).scanDest, func(v revisionBody) uuid.UUID { return v.ID }, p.ID)
}

// compileErrors turns compiler diagnostics into field errors on source,
// with their line and column.
func compileErrors(err error) *Problem {
	var list diag.List
	var one *diag.Error
	switch {
	case errors.As(err, &list):
	case errors.As(err, &one):
		list = diag.List{one}
	default:
		return invalidField("source", "%v", err)
	}
	fields := make([]FieldError, 0, len(list))
	for _, e := range list {
		fields = append(fields, FieldError{Field: "source", Detail: e.Error(), Line: e.Pos.Line, Column: e.Pos.Column})
	}
	p := invalid(fields...)
	p.Detail = "the pipeline does not compile:\n" + list.Error()
	return p
}

func (s *Server) createRevision(w http.ResponseWriter, r *http.Request) error {
	p, err := s.loadPipeline(r)
	if err != nil {
		return err
	}
	var body createRevisionRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	file := p.Name + ".yaml"
	compiled, err := validate.Compile(s.reg, map[string][]byte{file: []byte(body.Source)}, file)
	if err != nil {
		return compileErrors(err)
	}
	plan := compiled.Plan
	if plan.Name != p.Name {
		return invalidField("source", "metadata.name is %q but this pipeline is %q", plan.Name, p.Name)
	}
	ctx := r.Context()
	resets, err := s.checkState(ctx, p, plan)
	if err != nil {
		return err
	}
	var createdBy *uuid.UUID
	if pr := PrincipalFrom(ctx); pr.UserID != uuid.Nil {
		createdBy = &pr.UserID
	}
	var v revisionBody
	err = s.tx(ctx, func(tx pgx.Tx) error {
		id, err := s.deploy.RecordRevision(ctx, tx, p.ProjectID, p.ID,
			deploy.Commit{SHA: body.CommitSHA, Message: body.Message, By: createdBy}, *compiled)
		if err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, "SELECT "+revisionColumns+" FROM revisions WHERE id = $1", id).Scan(v.scanDest()...); err != nil {
			return err
		}
		return s.audit(ctx, tx, r, auditEntry{action: "revision.create", resourceType: "revision", resourceID: id.String(),
			details: map[string]any{"pipeline": p.Name, "number": v.Number, "digest": v.Digest}})
	})
	if err != nil {
		return err
	}
	for _, c := range resets {
		v.StateResets = append(v.StateResets, c.Step+": "+c.Reason)
	}
	w.Header().Set("Location", "/api/v1/projects/"+p.ProjectID.String()+"/pipelines/"+p.ID.String()+"/revisions/"+v.ID.String())
	return writeJSON(w, http.StatusCreated, v)
}

// checkState refuses a revision that would make the latest revision's
// state unreadable (pipeline.CheckState) and returns the stores it resets.
// A latest revision that no longer compiles (the catalog changed) is not
// compared.
func (s *Server) checkState(ctx context.Context, p pipelineBody, plan *pipeline.Plan) ([]pipeline.StateChange, error) {
	previous, err := s.deploy.Previous(ctx, p.ProjectID)
	if err != nil {
		return nil, err
	}
	prev := previous(p.Name)
	if prev == nil {
		return nil, nil
	}
	resets, err := pipeline.CheckState(prev, plan)
	if err != nil {
		return nil, compileErrors(err)
	}
	return resets, nil
}

func (s *Server) getRevision(w http.ResponseWriter, r *http.Request) error {
	p, err := s.loadPipeline(r)
	if err != nil {
		return err
	}
	id, err := pathID(r, "revisionID")
	if err != nil {
		return err
	}
	var v revisionBody
	err = s.pool.QueryRow(r.Context(), "SELECT "+revisionColumns+" FROM revisions WHERE id = $1 AND pipeline_id = $2", id, p.ID).Scan(v.scanDest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("revision")
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}
