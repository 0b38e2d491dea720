package api

import (
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/internal/database"
	"github.com/sluicehq/sluice/internal/identity"
)

// memberBody is a user's role in a project.
type memberBody struct {
	UserID    uuid.UUID `json:"user_id"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

type putMemberRequest struct {
	Role string `json:"role" required:"true"`
}

func (b *putMemberRequest) validate() []FieldError {
	if !identity.Role(b.Role).Valid() {
		return []FieldError{{Field: "role", Detail: `must be "owner", "developer" or "viewer"`}}
	}
	return nil
}

func (s *Server) memberResource() resource {
	return resource{prefix: "/projects/{projectID}/members", tag: "members", routes: []route{
		{method: http.MethodGet, path: "", op: "listMembers", summary: "List a project's members and their roles",
			access: inProject, role: "viewer", resp: memberBody{}, list: true, handle: s.listMembers},
		{method: http.MethodPut, path: "/{userID}", op: "putMember", summary: "Give a user a role in the project",
			access: inProject, role: "owner", body: putMemberRequest{}, resp: memberBody{}, handle: s.putMember},
		{method: http.MethodDelete, path: "/{userID}", op: "deleteMember", summary: "Remove a user from the project",
			access: inProject, role: "owner", handle: s.deleteMember},
	}}
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request) error {
	return writePage(w, r, s.pool, `SELECT m.user_id, u.email, m.role, m.created_at FROM project_members m
		JOIN users u ON u.id = m.user_id WHERE m.project_id = $1 AND m.user_id > $2 ORDER BY m.user_id LIMIT $3`,
		func(m *memberBody) []any { return []any{&m.UserID, &m.Email, &m.Role, &m.CreatedAt} },
		func(m memberBody) uuid.UUID { return m.UserID }, projectFrom(r.Context()).ID)
}

// lockMembers serialises changes to a project's members: without it two
// transactions removing or demoting different owners each count the
// other's owner as still there and both commit, leaving none. The project
// row stands for its member rows (it also covers members being added);
// FOR NO KEY UPDATE leaves inserts that reference the project (which take
// KEY SHARE) unblocked.
func lockMembers(r *http.Request, tx pgx.Tx, project uuid.UUID) error {
	_, err := tx.Exec(r.Context(), "SELECT 1 FROM projects WHERE id = $1 FOR NO KEY UPDATE", project)
	return err
}

// lastOwner fails when the change would leave the project without an owner.
// It must run after lockMembers in the same transaction.
func lastOwner(r *http.Request, tx pgx.Tx, project uuid.UUID) error {
	var owners int
	if err := tx.QueryRow(r.Context(), "SELECT count(*) FROM project_members WHERE project_id = $1 AND role = 'owner'", project).Scan(&owners); err != nil {
		return err
	}
	if owners == 0 {
		return conflict("a project needs at least one owner; make someone else owner first")
	}
	return nil
}

func (s *Server) putMember(w http.ResponseWriter, r *http.Request) error {
	user, err := pathID(r, "userID")
	if err != nil {
		return err
	}
	var body putMemberRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	ctx := r.Context()
	pa := projectFrom(ctx)
	var m memberBody
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if err := lockMembers(r, tx, pa.ID); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, $3)
			ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role
			RETURNING user_id, (SELECT email FROM users WHERE id = $2), role, created_at`, pa.ID, user, body.Role).
			Scan(&m.UserID, &m.Email, &m.Role, &m.CreatedAt)
		if database.IsForeignKeyViolation(err) {
			return notFound("user")
		}
		if err != nil {
			return err
		}
		if err := lastOwner(r, tx, pa.ID); err != nil {
			return err
		}
		return s.audit(ctx, tx, r, auditEntry{action: "project.member.put", resourceType: "project_member", resourceID: user.String(),
			details: map[string]any{"role": body.Role}})
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, m)
}

func (s *Server) deleteMember(w http.ResponseWriter, r *http.Request) error {
	user, err := pathID(r, "userID")
	if err != nil {
		return err
	}
	ctx := r.Context()
	pa := projectFrom(ctx)
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if err := lockMembers(r, tx, pa.ID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "DELETE FROM project_members WHERE project_id = $1 AND user_id = $2", pa.ID, user)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("member")
		}
		if err := lastOwner(r, tx, pa.ID); err != nil {
			return err
		}
		return s.audit(ctx, tx, r, auditEntry{action: "project.member.delete", resourceType: "project_member", resourceID: user.String()})
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
