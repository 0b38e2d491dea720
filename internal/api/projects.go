package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/gitops/deploy"
	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/internal/database"
)

// projectBody is a project: the unit of access control. Fleets, pipelines,
// tokens and deployments belong to one project.
type projectBody struct {
	ID          uuid.UUID `json:"id"`
	OrgID       uuid.UUID `json:"org_id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	// Role is the caller's role in the project.
	Role      string    `json:"role,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// RecordPreviews says whether runners may report redacted, capped
	// previews of record keys and values (dead letters, hot keys); off by
	// default (docs/security.md).
	RecordPreviews recordPreviewsBody `json:"record_previews"`
	version        int
}

// recordPreviewsBody is a project's record previews setting.
type recordPreviewsBody struct {
	// Enabled lets payload and key previews leave the runners.
	Enabled bool `json:"enabled"`
	// Redact lists JSON field paths ("card.number") shown as
	// "[redacted]"; a payload that is not JSON is not shown when any is
	// set.
	Redact []string `json:"redact"`
	// MaxBytes caps each preview: default 1024, at most 4096.
	MaxBytes int `json:"max_bytes"`
}

const projectColumns = "p.id, p.org_id, p.name, p.description, p.created_at, p.updated_at, p.record_previews, p.version"

func (p *projectBody) scanDest() []any {
	return []any{&p.ID, &p.OrgID, &p.Name, &p.Description, &p.CreatedAt, &p.UpdatedAt, &p.RecordPreviews, &p.version}
}

type createProjectRequest struct {
	OrgID       string `json:"org_id" required:"true"`
	Name        string `json:"name" required:"true"`
	Description string `json:"description"`
}

func (b *createProjectRequest) validate() []FieldError {
	errs := append(checkName("name", b.Name), checkText("description", b.Description, 2000)...)
	if _, err := uuid.Parse(b.OrgID); err != nil || len(b.OrgID) != 36 {
		errs = append(errs, FieldError{Field: "org_id", Detail: "must be an organisation's id (a UUID)"})
	}
	return errs
}

type updateProjectRequest struct {
	Description *string `json:"description"`
	// RecordPreviews replaces the record previews setting (owners and
	// administrators only, audited); runners of the project's fleets get
	// it with their next assignments.
	RecordPreviews *recordPreviewsBody `json:"record_previews"`
}

func (b *updateProjectRequest) validate() []FieldError {
	var errs []FieldError
	if b.Description != nil {
		errs = append(errs, checkText("description", *b.Description, 2000)...)
	}
	if rp := b.RecordPreviews; rp != nil {
		switch {
		case rp.MaxBytes == 0:
			rp.MaxBytes = agentproto.DefaultPreviewBytes
		case rp.MaxBytes < 16 || rp.MaxBytes > agentproto.MaxPreviewBytes:
			errs = append(errs, FieldError{Field: "record_previews.max_bytes", Detail: fmt.Sprintf("must be between 16 and %d", agentproto.MaxPreviewBytes)})
		}
		if rp.Redact == nil {
			rp.Redact = []string{}
		}
		if len(rp.Redact) > 100 {
			errs = append(errs, FieldError{Field: "record_previews.redact", Detail: "at most 100 paths"})
		}
		for i, p := range rp.Redact {
			p = strings.TrimSpace(p)
			rp.Redact[i] = p
			if p == "" || len(p) > 200 || strings.Contains(p, "..") || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") {
				errs = append(errs, FieldError{Field: fmt.Sprintf("record_previews.redact[%d]", i), Detail: "must be a dotted field path like card.number, at most 200 characters"})
			}
		}
	}
	return errs
}

func (s *Server) projectResource() resource {
	return resource{prefix: "/projects", tag: "projects", routes: []route{
		{method: http.MethodGet, path: "", op: "listProjects", summary: "List the projects you have a role in",
			access: anyPrincipal, resp: projectBody{}, list: true, handle: s.listProjects},
		{method: http.MethodPost, path: "", op: "createProject", summary: "Create a project in an organisation (its owners, administrators); you become its owner",
			access: anyPrincipal, body: createProjectRequest{}, resp: projectBody{}, status: http.StatusCreated, handle: s.createProject},
		{method: http.MethodGet, path: "/{projectID}", op: "getProject", summary: "Get a project",
			access: inProject, role: "viewer", resp: projectBody{}, handle: s.getProject},
		{method: http.MethodPatch, path: "/{projectID}", op: "updateProject", summary: "Change a project: its description, and its record previews setting (whether runners may report redacted, capped previews of record keys and values; off by default)",
			access: inProject, role: "owner", body: updateProjectRequest{}, resp: projectBody{}, handle: s.updateProject},
		{method: http.MethodDelete, path: "/{projectID}", op: "deleteProject", summary: "Delete a project and everything in it",
			access: inProject, role: "owner", handle: s.deleteProject},
	}}
}

func (s *Server) listProjects(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	dest := func(pr *projectBody) []any { return append(pr.scanDest(), &pr.Role) }
	key := func(pr projectBody) uuid.UUID { return pr.ID }
	if p.Kind == KindToken {
		return writePage(w, r, s.pool, `SELECT `+projectColumns+`, $2::text FROM projects p
			WHERE p.id = $1 AND p.id > $3 ORDER BY p.id LIMIT $4`, dest, key, p.ProjectID, string(p.Role))
	}
	// Administrators see every project; a membership's role wins.
	return writePage(w, r, s.pool, `SELECT `+projectColumns+`, coalesce(m.role, 'owner') FROM projects p
		LEFT JOIN project_members m ON m.project_id = p.id AND m.user_id = $1
		WHERE (m.role IS NOT NULL OR $2) AND p.id > $3 ORDER BY p.id LIMIT $4`, dest, key, p.UserID, p.Admin)
}

func (s *Server) createProject(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	if p.Kind != KindUser {
		return forbidden("API tokens are scoped to one project and cannot create projects")
	}
	var body createProjectRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	ctx := r.Context()
	org := uuid.MustParse(body.OrgID)
	role, err := s.orgRole(ctx, p, org)
	if err != nil {
		return err
	}
	switch role {
	case "":
		return invalidField("org_id", "no such organisation")
	case "admin", "owner":
	default:
		return forbidden("only the organisation's owners and administrators can create projects in it")
	}
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	var out projectBody
	err = s.tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO projects AS p (id, org_id, name, description) VALUES ($1, $2, $3, $4)
			RETURNING `+projectColumns, id, org, body.Name, body.Description).Scan(out.scanDest()...)
		if _, dup := database.IsUniqueViolation(err); dup {
			return conflict("the organisation has a project with this name", FieldError{Field: "name", Detail: "already taken"})
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, 'owner')", id, p.UserID); err != nil {
			return err
		}
		return s.audit(ctx, tx, r, auditEntry{action: "project.create", resourceType: "project", resourceID: id.String(),
			orgID: &org, projectID: &id, details: map[string]any{"name": body.Name}})
	})
	if err != nil {
		return err
	}
	out.Role = "owner"
	w.Header().Set("Location", "/api/v1/projects/"+id.String())
	return writeVersioned(w, http.StatusCreated, out, out.version)
}

func (s *Server) getProject(w http.ResponseWriter, r *http.Request) error {
	pa := projectFrom(r.Context())
	var out projectBody
	if err := s.pool.QueryRow(r.Context(), "SELECT "+projectColumns+" FROM projects p WHERE p.id = $1", pa.ID).Scan(out.scanDest()...); err != nil {
		return err
	}
	out.Role = string(pa.Role)
	return writeVersioned(w, http.StatusOK, out, out.version)
}

func (s *Server) updateProject(w http.ResponseWriter, r *http.Request) error {
	var body updateProjectRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	pa := projectFrom(r.Context())
	want, err := ifMatch(r)
	if err != nil {
		return err
	}
	var out projectBody
	ctx := r.Context()
	err = s.tx(ctx, func(tx pgx.Tx) error {
		var before recordPreviewsBody
		if err := tx.QueryRow(ctx, "SELECT record_previews FROM projects WHERE id = $1 FOR UPDATE", pa.ID).Scan(&before); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `UPDATE projects p SET description = coalesce($3, description),
			record_previews = coalesce($4, record_previews), updated_at = now(), version = version + 1
			WHERE id = $1 AND ($2::int IS NULL OR version = $2) RETURNING `+projectColumns,
			pa.ID, want, body.Description, body.RecordPreviews).Scan(out.scanDest()...)
		if errors.Is(err, pgx.ErrNoRows) {
			return preconditionFailed("the project changed since you read it; GET it again")
		}
		if err != nil {
			return err
		}
		details := map[string]any{}
		if body.Description != nil {
			details["description"] = true
		}
		if rp := body.RecordPreviews; rp != nil {
			details["record_previews"] = map[string]any{"before": before, "after": out.RecordPreviews}
			// The setting travels in assignments: the project's fleets
			// get a new generation, and their runners the setting.
			rows, err := tx.Query(ctx, "SELECT id FROM fleets WHERE project_id = $1", pa.ID)
			if err != nil {
				return err
			}
			fleets, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
			if err != nil {
				return err
			}
			for _, f := range fleets {
				if err := deploy.BumpGeneration(ctx, tx, f); err != nil {
					return err
				}
			}
		}
		return s.audit(ctx, tx, r, auditEntry{action: "project.update", resourceType: "project", resourceID: pa.ID.String(),
			projectID: &pa.ID, details: details})
	})
	if err != nil {
		return err
	}
	out.Role = string(pa.Role)
	return writeVersioned(w, http.StatusOK, out, out.version)
}

func (s *Server) deleteProject(w http.ResponseWriter, r *http.Request) error {
	// audit_log.project_id has no foreign key, so the record outlives the
	// project.
	return s.deleteVersioned(w, r, "projects", projectFrom(r.Context()).ID, auditEntry{action: "project.delete", resourceType: "project"})
}
