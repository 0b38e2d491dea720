package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/internal/identity"
)

// tokenBody is an API token as lists show it: never the secret.
type tokenBody struct {
	ID        uuid.UUID `json:"id"`
	ProjectID uuid.UUID `json:"project_id"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	// Prefix is the start of the secret, to recognise a token.
	Prefix     string     `json:"prefix"`
	CreatedBy  *uuid.UUID `json:"created_by,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

const tokenColumns = "id, project_id, name, role, prefix, created_by, created_at, expires_at, revoked_at, last_used_at"

func (t *tokenBody) scanDest() []any {
	return []any{&t.ID, &t.ProjectID, &t.Name, &t.Role, &t.Prefix, &t.CreatedBy, &t.CreatedAt, &t.ExpiresAt, &t.RevokedAt, &t.LastUsedAt}
}

// newTokenBody is the response to creating a token: the only time the
// secret is shown.
type newTokenBody struct {
	Token  tokenBody `json:"token"`
	Secret string    `json:"secret,omitempty"`
	// Note says the secret is shown once (and, on a replayed request, that
	// it is not shown again).
	Note string `json:"note"`
}

type createTokenRequest struct {
	Name string `json:"name" required:"true"`
	Role string `json:"role" required:"true"`
	// ExpiresAt is optional; without it the token lives until revoked.
	ExpiresAt *time.Time `json:"expires_at"`
}

func (b *createTokenRequest) validate() []FieldError {
	var errs []FieldError
	if strings.TrimSpace(b.Name) == "" || len(b.Name) > 100 {
		errs = append(errs, FieldError{Field: "name", Detail: "required, at most 100 characters"})
	}
	if !identity.Role(b.Role).Valid() {
		errs = append(errs, FieldError{Field: "role", Detail: `must be "owner", "developer" or "viewer"`})
	}
	if b.ExpiresAt != nil && !b.ExpiresAt.After(time.Now()) {
		errs = append(errs, FieldError{Field: "expires_at", Detail: "must be in the future"})
	}
	return errs
}

func (s *Server) tokenResource() resource {
	return resource{prefix: "/projects/{projectID}/tokens", tag: "tokens", routes: []route{
		{method: http.MethodGet, path: "", op: "listTokens", summary: "List the project's API tokens (never their secrets)",
			access: inProject, role: "developer", resp: tokenBody{}, list: true, handle: s.listTokens},
		{method: http.MethodPost, path: "", op: "createToken", summary: "Create an API token; the secret is in this response only",
			access: inProject, role: "developer", body: createTokenRequest{}, resp: newTokenBody{}, status: http.StatusCreated, handle: s.createToken},
		{method: http.MethodGet, path: "/{tokenID}", op: "getToken", summary: "Get an API token (never its secret)",
			access: inProject, role: "developer", resp: tokenBody{}, handle: s.getToken},
		{method: http.MethodDelete, path: "/{tokenID}", op: "revokeToken", summary: "Revoke an API token",
			access: inProject, role: "developer", handle: s.revokeToken},
	}}
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	return writePage(w, r, s.pool, "SELECT "+tokenColumns+" FROM api_tokens WHERE project_id = $1 AND id > $2 ORDER BY id LIMIT $3",
		(*tokenBody).scanDest, func(t tokenBody) uuid.UUID { return t.ID }, projectFrom(r.Context()).ID)
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var body createTokenRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	ctx := r.Context()
	pa := projectFrom(ctx)
	if !pa.Role.AtLeast(identity.Role(body.Role)) {
		return problem(http.StatusForbidden, "forbidden", "a token cannot have a stronger role than its creator",
			FieldError{Field: "role", Detail: "at most " + string(pa.Role)})
	}
	secret, hash, err := identity.NewToken()
	if err != nil {
		return err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	p := PrincipalFrom(ctx)
	var createdBy *uuid.UUID
	if p.UserID != uuid.Nil {
		createdBy = &p.UserID
	}
	var t tokenBody
	err = s.tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO api_tokens (id, project_id, name, role, token_hash, prefix, created_by, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+tokenColumns,
			id, pa.ID, body.Name, body.Role, hash, identity.DisplayPrefix(secret), createdBy, body.ExpiresAt).Scan(t.scanDest()...)
		if err != nil {
			return err
		}
		return s.audit(ctx, tx, r, auditEntry{action: "token.create", resourceType: "api_token", resourceID: id.String(),
			details: map[string]any{"name": body.Name, "role": body.Role, "expires_at": body.ExpiresAt}})
	})
	if err != nil {
		return err
	}
	// A retry with the same Idempotency-Key gets the token without its
	// secret: only the hash is stored, anywhere.
	setReplayBody(r, mustJSON(newTokenBody{Token: t, Note: "this token was created by an earlier request with the same Idempotency-Key; its secret was shown only then"}))
	w.Header().Set("Location", "/api/v1/projects/"+pa.ID.String()+"/tokens/"+id.String())
	return writeJSON(w, http.StatusCreated, newTokenBody{Token: t, Secret: secret,
		Note: "store the secret now: it is shown only once. Use it as: Authorization: Bearer <secret>"})
}

func (s *Server) loadToken(ctx context.Context, project, id uuid.UUID) (tokenBody, error) {
	var t tokenBody
	err := s.pool.QueryRow(ctx, "SELECT "+tokenColumns+" FROM api_tokens WHERE id = $1 AND project_id = $2", id, project).Scan(t.scanDest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, notFound("token")
	}
	return t, err
}

func (s *Server) getToken(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "tokenID")
	if err != nil {
		return err
	}
	t, err := s.loadToken(r.Context(), projectFrom(r.Context()).ID, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, t)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "tokenID")
	if err != nil {
		return err
	}
	ctx := r.Context()
	pa := projectFrom(ctx)
	t, err := s.loadToken(ctx, pa.ID, id)
	if err != nil {
		return err
	}
	if !pa.Role.AtLeast(identity.Role(t.Role)) {
		return forbidden("revoking a token with the " + t.Role + " role needs that role")
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1", id); err != nil {
			return err
		}
		return s.audit(ctx, tx, r, auditEntry{action: "token.revoke", resourceType: "api_token", resourceID: id.String(),
			details: map[string]any{"name": t.Name}})
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
