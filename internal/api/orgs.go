package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/internal/database"
)

// orgBody is an organisation: the tenant that owns projects.
type orgBody struct {
	ID          uuid.UUID `json:"id"`
	Name        string    `json:"name"`
	DisplayName string    `json:"display_name"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	version     int
}

const orgColumns = "id, name, display_name, created_at, updated_at, version"

func (o *orgBody) scanDest() []any {
	return []any{&o.ID, &o.Name, &o.DisplayName, &o.CreatedAt, &o.UpdatedAt, &o.version}
}

type createOrgRequest struct {
	Name        string `json:"name" required:"true"`
	DisplayName string `json:"display_name"`
}

func (b *createOrgRequest) validate() []FieldError {
	return append(checkName("name", b.Name), checkText("display_name", b.DisplayName, 200)...)
}

type updateOrgRequest struct {
	DisplayName *string `json:"display_name"`
}

func (b *updateOrgRequest) validate() []FieldError {
	if b.DisplayName != nil {
		return checkText("display_name", *b.DisplayName, 200)
	}
	return nil
}

// orgMemberBody is a user's role in an organisation: owners create
// projects in it and manage its members.
type orgMemberBody struct {
	UserID    uuid.UUID `json:"user_id"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

type putOrgMemberRequest struct {
	Role string `json:"role" required:"true"`
}

func (b *putOrgMemberRequest) validate() []FieldError {
	if b.Role != "owner" && b.Role != "member" {
		return []FieldError{{Field: "role", Detail: `must be "owner" or "member"`}}
	}
	return nil
}

func (s *Server) orgResource() resource {
	return resource{prefix: "/orgs", tag: "organizations", routes: []route{
		{method: http.MethodGet, path: "", op: "listOrgs", summary: "List the organisations you can see",
			access: anyPrincipal, resp: orgBody{}, list: true, handle: s.listOrgs},
		{method: http.MethodPost, path: "", op: "createOrg", summary: "Create an organisation (administrators)",
			access: anyPrincipal, body: createOrgRequest{}, resp: orgBody{}, status: http.StatusCreated, handle: s.createOrg},
		{method: http.MethodGet, path: "/{orgID}", op: "getOrg", summary: "Get an organisation",
			access: anyPrincipal, resp: orgBody{}, handle: s.getOrg},
		{method: http.MethodPatch, path: "/{orgID}", op: "updateOrg", summary: "Change an organisation (its owners, administrators)",
			access: anyPrincipal, body: updateOrgRequest{}, resp: orgBody{}, handle: s.updateOrg},
		{method: http.MethodGet, path: "/{orgID}/members", op: "listOrgMembers", summary: "List an organisation's members",
			access: anyPrincipal, resp: orgMemberBody{}, list: true, handle: s.listOrgMembers},
		{method: http.MethodPut, path: "/{orgID}/members/{userID}", op: "putOrgMember", summary: "Add a user to an organisation or change their role",
			access: anyPrincipal, body: putOrgMemberRequest{}, resp: orgMemberBody{}, handle: s.putOrgMember},
		{method: http.MethodDelete, path: "/{orgID}/members/{userID}", op: "deleteOrgMember", summary: "Remove a user from an organisation",
			access: anyPrincipal, handle: s.deleteOrgMember},
	}}
}

// orgRole is the caller's standing in an organisation: "admin" for
// instance administrators, "owner"/"member" from org_members, "project"
// when they only reach it through a project (or a token), "" when they
// cannot see it.
func (s *Server) orgRole(ctx context.Context, p *Principal, org uuid.UUID) (string, error) {
	if p.Kind == KindToken {
		var n int
		err := s.pool.QueryRow(ctx, "SELECT count(*) FROM projects WHERE id = $1 AND org_id = $2", p.ProjectID, org).Scan(&n)
		if err != nil || n == 0 {
			return "", err
		}
		return "project", nil
	}
	var role string
	err := s.pool.QueryRow(ctx, `SELECT CASE WHEN $3 THEN 'admin' ELSE coalesce(
			(SELECT role FROM org_members WHERE org_id = o.id AND user_id = $2),
			(SELECT 'project' FROM projects pr JOIN project_members m ON m.project_id = pr.id
			 WHERE pr.org_id = o.id AND m.user_id = $2 LIMIT 1), '') END
		FROM organizations o WHERE o.id = $1`, org, p.UserID, p.Admin).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return role, err
}

// orgFor resolves the {orgID} path parameter for the caller; canManage
// says whether they may change it.
func (s *Server) orgFor(r *http.Request) (id uuid.UUID, canManage bool, err error) {
	id, err = pathID(r, "orgID")
	if err != nil {
		return id, false, err
	}
	p := PrincipalFrom(r.Context())
	role, err := s.orgRole(r.Context(), p, id)
	if err != nil {
		return id, false, err
	}
	if role == "" {
		return id, false, notFound("organisation")
	}
	return id, p.Kind == KindUser && (role == "admin" || role == "owner"), nil
}

func (s *Server) listOrgs(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	dest, key := (*orgBody).scanDest, func(o orgBody) uuid.UUID { return o.ID }
	if p.Kind == KindToken {
		return writePage(w, r, s.pool, `SELECT `+orgColumns+` FROM organizations
			WHERE id = (SELECT org_id FROM projects WHERE id = $1) AND id > $2 ORDER BY id LIMIT $3`, dest, key, p.ProjectID)
	}
	return writePage(w, r, s.pool, `SELECT `+orgColumns+` FROM organizations o
		WHERE ($2 OR EXISTS (SELECT 1 FROM org_members WHERE org_id = o.id AND user_id = $1)
			OR EXISTS (SELECT 1 FROM projects pr JOIN project_members m ON m.project_id = pr.id WHERE pr.org_id = o.id AND m.user_id = $1))
		AND id > $3 ORDER BY id LIMIT $4`, dest, key, p.UserID, p.Admin)
}

func (s *Server) createOrg(w http.ResponseWriter, r *http.Request) error {
	if err := requireAdmin(r); err != nil {
		return err
	}
	var body createOrgRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	ctx := r.Context()
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	var o orgBody
	err = s.tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO organizations (id, name, display_name) VALUES ($1, $2, $3) RETURNING `+orgColumns,
			id, body.Name, body.DisplayName).Scan(o.scanDest()...)
		if _, dup := database.IsUniqueViolation(err); dup {
			return conflict("an organisation with this name exists", FieldError{Field: "name", Detail: "already taken"})
		}
		if err != nil {
			return err
		}
		return s.audit(ctx, tx, r, auditEntry{action: "org.create", resourceType: "organization", resourceID: id.String(), orgID: &id,
			details: map[string]any{"name": body.Name}})
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/orgs/"+id.String())
	return writeVersioned(w, http.StatusCreated, o, o.version)
}

func (s *Server) getOrg(w http.ResponseWriter, r *http.Request) error {
	id, _, err := s.orgFor(r)
	if err != nil {
		return err
	}
	var o orgBody
	if err := s.pool.QueryRow(r.Context(), "SELECT "+orgColumns+" FROM organizations WHERE id = $1", id).Scan(o.scanDest()...); err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, o, o.version)
}

func (s *Server) updateOrg(w http.ResponseWriter, r *http.Request) error {
	id, manage, err := s.orgFor(r)
	if err != nil {
		return err
	}
	if !manage {
		return forbidden("only the organisation's owners and administrators can change it")
	}
	var body updateOrgRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	var o orgBody
	err = s.updateVersioned(r, "organisation", auditEntry{action: "org.update", resourceType: "organization", orgID: &id}, o.scanDest(),
		`UPDATE organizations SET display_name = coalesce($3, display_name), updated_at = now(), version = version + 1
		WHERE id = $1 AND ($2::int IS NULL OR version = $2) RETURNING `+orgColumns, id, body.DisplayName)
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, o, o.version)
}

func (s *Server) listOrgMembers(w http.ResponseWriter, r *http.Request) error {
	id, _, err := s.orgFor(r)
	if err != nil {
		return err
	}
	return writePage(w, r, s.pool, `SELECT m.user_id, u.email, m.role, m.created_at FROM org_members m
		JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 AND m.user_id > $2 ORDER BY m.user_id LIMIT $3`,
		func(m *orgMemberBody) []any { return []any{&m.UserID, &m.Email, &m.Role, &m.CreatedAt} },
		func(m orgMemberBody) uuid.UUID { return m.UserID }, id)
}

func (s *Server) putOrgMember(w http.ResponseWriter, r *http.Request) error {
	org, manage, err := s.orgFor(r)
	if err != nil {
		return err
	}
	if !manage {
		return forbidden("only the organisation's owners and administrators can manage its members")
	}
	user, err := pathID(r, "userID")
	if err != nil {
		return err
	}
	var body putOrgMemberRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	ctx := r.Context()
	var m orgMemberBody
	err = s.tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO org_members (org_id, user_id, role) VALUES ($1, $2, $3)
			ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role
			RETURNING user_id, (SELECT email FROM users WHERE id = $2), role, created_at`, org, user, body.Role).
			Scan(&m.UserID, &m.Email, &m.Role, &m.CreatedAt)
		if database.IsForeignKeyViolation(err) {
			return notFound("user")
		}
		if err != nil {
			return err
		}
		return s.audit(ctx, tx, r, auditEntry{action: "org.member.put", resourceType: "org_member", resourceID: user.String(), orgID: &org,
			details: map[string]any{"role": body.Role}})
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, m)
}

func (s *Server) deleteOrgMember(w http.ResponseWriter, r *http.Request) error {
	org, manage, err := s.orgFor(r)
	if err != nil {
		return err
	}
	if !manage {
		return forbidden("only the organisation's owners and administrators can manage its members")
	}
	user, err := pathID(r, "userID")
	if err != nil {
		return err
	}
	ctx := r.Context()
	err = s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM org_members WHERE org_id = $1 AND user_id = $2", org, user)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("member")
		}
		return s.audit(ctx, tx, r, auditEntry{action: "org.member.delete", resourceType: "org_member", resourceID: user.String(), orgID: &org})
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
