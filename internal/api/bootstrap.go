package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicehq/sluice/internal/identity"
)

// Bootstrap says what a fresh instance starts with.
type Bootstrap struct {
	// AdminEmail and AdminPassword create the first administrator when the
	// instance has no users. An empty password is generated.
	AdminEmail    string
	AdminPassword string
	// Org and Project, when set, are created with the administrator as
	// their owner, and Token asks for an owner API token for the project:
	// what `controlplane dev` gives a new user to start with.
	Org, Project string
	Token        bool
}

// Bootstrapped is what Bootstrap created. Password and TokenSecret are the
// only copies of those secrets: show them once.
type Bootstrapped struct {
	Created     bool
	AdminID     uuid.UUID
	Password    string
	ProjectID   uuid.UUID
	TokenSecret string
}

// RunBootstrap creates the first administrator (and, when asked, an
// organisation, project and token) if the instance has no users. It does
// nothing when users exist, including when another replica bootstrapped
// first; every record it creates is audited as the system.
func RunBootstrap(ctx context.Context, pool *pgxpool.Pool, b Bootstrap) (Bootstrapped, error) {
	var out Bootstrapped
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil || n > 0 {
		return out, err
	}
	out.Password = b.AdminPassword
	if out.Password == "" {
		var err error
		if out.Password, err = identity.RandomString(18); err != nil {
			return out, err
		}
	}
	req := createUserRequest{Email: b.AdminEmail, Name: "Administrator", Password: out.Password, IsAdmin: true}
	if errs := req.validate(); len(errs) > 0 {
		return out, invalid(errs...)
	}
	u, err := insertUser(ctx, pool, req, func(tx pgx.Tx, u userBody) error {
		if err := systemAudit(ctx, tx, "user.create", "user", u.ID, nil, map[string]any{"email": u.Email, "is_admin": true, "reason": "first administrator"}); err != nil {
			return err
		}
		if b.Org == "" {
			return nil
		}
		org, err := uuid.NewV7()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO organizations (id, name) VALUES ($1, $2)", org, b.Org); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO org_members (org_id, user_id, role) VALUES ($1, $2, 'owner')", org, u.ID); err != nil {
			return err
		}
		if err := systemAudit(ctx, tx, "org.create", "organization", org, nil, map[string]any{"name": b.Org}); err != nil {
			return err
		}
		if b.Project == "" {
			return nil
		}
		if out.ProjectID, err = uuid.NewV7(); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO projects (id, org_id, name) VALUES ($1, $2, $3)", out.ProjectID, org, b.Project); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO project_members (project_id, user_id, role) VALUES ($1, $2, 'owner')", out.ProjectID, u.ID); err != nil {
			return err
		}
		if err := systemAudit(ctx, tx, "project.create", "project", out.ProjectID, &out.ProjectID, map[string]any{"name": b.Project}); err != nil {
			return err
		}
		if !b.Token {
			return nil
		}
		secret, hash, err := identity.NewToken()
		if err != nil {
			return err
		}
		tok, err := uuid.NewV7()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO api_tokens (id, project_id, name, role, token_hash, prefix, created_by)
			VALUES ($1, $2, 'dev', 'owner', $3, $4, $5)`, tok, out.ProjectID, hash, identity.DisplayPrefix(secret), u.ID); err != nil {
			return err
		}
		out.TokenSecret = secret
		return systemAudit(ctx, tx, "token.create", "api_token", tok, &out.ProjectID, map[string]any{"name": "dev", "role": "owner"})
	})
	if err != nil {
		var p *Problem
		if errors.As(err, &p) && p.Status == http.StatusConflict {
			return Bootstrapped{}, nil // another replica bootstrapped first
		}
		return Bootstrapped{}, err
	}
	out.Created, out.AdminID = true, u.ID
	return out, nil
}

func systemAudit(ctx context.Context, tx pgx.Tx, action, resourceType string, id uuid.UUID, project *uuid.UUID, details map[string]any) error {
	aid, err := uuid.NewV7()
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO audit_log (id, actor_type, actor_name, action, resource_type, resource_id, project_id, details)
		VALUES ($1, 'system', 'controlplane', $2, $3, $4, $5, $6)`, aid, action, resourceType, id.String(), project, details)
	return err
}

// Sweep deletes what has expired: sessions, idempotency records older
// than a day, and login attempts older than the rate-limit window needs.
func (s *Server) Sweep(ctx context.Context) error {
	for _, q := range []string{
		"DELETE FROM sessions WHERE expires_at < now()",
		"DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'",
		"DELETE FROM login_attempts WHERE at < now() - interval '1 day'",
	} {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			return err
		}
	}
	return nil
}
