package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicehq/sluice/internal/database"
	"github.com/sluicehq/sluice/internal/identity"
)

// userBody is a user as the API shows it: never the password hash.
type userBody struct {
	ID        uuid.UUID `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	IsAdmin   bool      `json:"is_admin"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	version   int
}

const userColumns = "id, email, name, is_admin, created_at, updated_at, version"

func (u *userBody) scanDest() []any {
	return []any{&u.ID, &u.Email, &u.Name, &u.IsAdmin, &u.CreatedAt, &u.UpdatedAt, &u.version}
}

type createUserRequest struct {
	Email    string `json:"email" required:"true"`
	Name     string `json:"name"`
	Password string `json:"password" required:"true"`
	IsAdmin  bool   `json:"is_admin"`
}

func (b *createUserRequest) validate() []FieldError {
	var errs []FieldError
	if _, err := mail.ParseAddress(b.Email); err != nil || strings.ContainsAny(b.Email, "<> ") {
		errs = append(errs, FieldError{Field: "email", Detail: "must be an email address like ada@example.com"})
	} else if len(b.Email) > maxEmail {
		errs = append(errs, FieldError{Field: "email", Detail: fmt.Sprintf("at most %d bytes", maxEmail)})
	}
	if len(b.Name) > 200 {
		errs = append(errs, FieldError{Field: "name", Detail: "at most 200 characters"})
	}
	errs = append(errs, checkPassword("password", b.Password)...)
	return errs
}

// maxPassword bounds passwords, which are hashed on every login attempt.
const maxPassword = 1024

func checkPassword(field, pw string) []FieldError {
	switch {
	case len(pw) < identity.MinPasswordLength:
		return []FieldError{{Field: field, Detail: "must be at least 12 characters"}}
	case len(pw) > maxPassword:
		return []FieldError{{Field: field, Detail: fmt.Sprintf("at most %d characters", maxPassword)}}
	}
	return nil
}

type updateUserRequest struct {
	Name *string `json:"name"`
	// Password changes the password; a user changing their own must also
	// send CurrentPassword.
	Password        *string `json:"password"`
	CurrentPassword *string `json:"current_password"`
	IsAdmin         *bool   `json:"is_admin"`
}

func (b *updateUserRequest) validate() []FieldError {
	var errs []FieldError
	if b.Name != nil && len(*b.Name) > 200 {
		errs = append(errs, FieldError{Field: "name", Detail: "at most 200 characters"})
	}
	if b.Password != nil {
		errs = append(errs, checkPassword("password", *b.Password)...)
	}
	if b.CurrentPassword != nil && len(*b.CurrentPassword) > maxPassword {
		errs = append(errs, FieldError{Field: "current_password", Detail: fmt.Sprintf("at most %d characters", maxPassword)})
	}
	return errs
}

// meBody answers GET /me.
type meBody = sessionBody

func (s *Server) userResource() resource {
	return resource{prefix: "", tag: "users", routes: []route{
		{method: http.MethodGet, path: "/me", op: "getMe", summary: "Who is calling: the session's user or the API token, and the CSRF token for sessions",
			access: anyPrincipal, resp: meBody{}, handle: s.me},
		{method: http.MethodGet, path: "/users", op: "listUsers", summary: "List users (administrators)",
			access: anyPrincipal, resp: userBody{}, list: true, handle: s.listUsers},
		{method: http.MethodPost, path: "/users", op: "createUser", summary: "Create a user (administrators)",
			access: anyPrincipal, body: createUserRequest{}, resp: userBody{}, status: http.StatusCreated, handle: s.createUser},
		{method: http.MethodGet, path: "/users/{userID}", op: "getUser", summary: "Get a user (yourself, or any as an administrator)",
			access: anyPrincipal, resp: userBody{}, handle: s.getUser},
		{method: http.MethodPatch, path: "/users/{userID}", op: "updateUser", summary: "Change your name or password; administrators may change anyone's and grant administration",
			access: anyPrincipal, body: updateUserRequest{}, resp: userBody{}, handle: s.updateUser},
	}}
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p := PrincipalFrom(ctx)
	if p.Kind == KindToken {
		t, err := s.loadToken(ctx, p.ProjectID, p.TokenID)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, meBody{Kind: KindToken, Token: &t})
	}
	var u userBody
	if err := s.pool.QueryRow(ctx, "SELECT "+userColumns+" FROM users WHERE id = $1", p.UserID).Scan(u.scanDest()...); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, meBody{Kind: KindUser, User: &u, CSRFToken: p.csrfToken})
}

func requireAdmin(r *http.Request) error {
	p := PrincipalFrom(r.Context())
	if p.Kind != KindUser || !p.Admin {
		return forbidden("only administrators can do this")
	}
	return nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) error {
	if err := requireAdmin(r); err != nil {
		return err
	}
	return writePage(w, r, s.pool, "SELECT "+userColumns+" FROM users WHERE id > $1 ORDER BY id LIMIT $2",
		(*userBody).scanDest, func(u userBody) uuid.UUID { return u.ID })
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) error {
	if err := requireAdmin(r); err != nil {
		return err
	}
	var body createUserRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	ctx := r.Context()
	hash, err := s.hasher.Hash(ctx, body.Password)
	if err != nil {
		return err
	}
	u, err := insertUserHashed(ctx, s.pool, body, hash, func(tx pgx.Tx, u userBody) error {
		return s.audit(ctx, tx, r, auditEntry{action: "user.create", resourceType: "user", resourceID: u.ID.String(),
			details: map[string]any{"email": u.Email, "is_admin": u.IsAdmin}})
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/users/"+u.ID.String())
	return writeVersioned(w, http.StatusCreated, u, u.version)
}

func insertUser(ctx context.Context, pool *pgxpool.Pool, body createUserRequest, then func(pgx.Tx, userBody) error) (userBody, error) {
	hash, err := identity.HashPassword(body.Password)
	if err != nil {
		return userBody{}, err
	}
	return insertUserHashed(ctx, pool, body, hash, then)
}

// insertUserHashed is insertUser with the password already hashed, so the
// API can hash within the server's cap.
func insertUserHashed(ctx context.Context, pool *pgxpool.Pool, body createUserRequest, hash string, then func(pgx.Tx, userBody) error) (userBody, error) {
	var u userBody
	id, err := uuid.NewV7()
	if err != nil {
		return u, err
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO users (id, email, name, password_hash, is_admin) VALUES ($1, $2, $3, $4, $5)
			RETURNING `+userColumns, id, strings.TrimSpace(body.Email), body.Name, hash, body.IsAdmin).Scan(u.scanDest()...)
		if _, dup := database.IsUniqueViolation(err); dup {
			return conflict("a user with this email exists", FieldError{Field: "email", Detail: "already taken"})
		}
		if err != nil {
			return err
		}
		return then(tx, u)
	})
	return u, err
}

// visibleUser loads a user the caller may see: themselves, or anyone for
// an administrator. Anything else is a 404, like a user that does not exist.
func (s *Server) visibleUser(r *http.Request) (userBody, error) {
	var u userBody
	id, err := pathID(r, "userID")
	if err != nil {
		return u, err
	}
	p := PrincipalFrom(r.Context())
	if !(p.Kind == KindUser && (p.Admin || p.UserID == id)) {
		return u, notFound("user")
	}
	err = s.pool.QueryRow(r.Context(), "SELECT "+userColumns+" FROM users WHERE id = $1", id).Scan(u.scanDest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return u, notFound("user")
	}
	return u, err
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := s.visibleUser(r)
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, u, u.version)
}

func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	if p.Kind != KindUser {
		return forbidden("API tokens cannot change users")
	}
	u, err := s.visibleUser(r)
	if err != nil {
		return err
	}
	var body updateUserRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	want, err := ifMatch(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if body.IsAdmin != nil && !p.Admin {
		return forbidden("only administrators can grant or remove administration")
	}
	var hash *string
	if body.Password != nil {
		if p.UserID == u.ID {
			if body.CurrentPassword == nil {
				return invalidField("current_password", "required to change your own password")
			}
			if err := s.checkCurrentPassword(r, u, *body.CurrentPassword); err != nil {
				return err
			}
		}
		h, err := s.hasher.Hash(ctx, *body.Password)
		if err != nil {
			return err
		}
		hash = &h
	}
	var out userBody
	err = s.tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE users SET name = coalesce($3, name), password_hash = coalesce($4, password_hash),
			is_admin = coalesce($5, is_admin), updated_at = now(), version = version + 1
			WHERE id = $1 AND ($2::int IS NULL OR version = $2) RETURNING `+userColumns,
			u.ID, want, body.Name, hash, body.IsAdmin).Scan(out.scanDest()...)
		if errors.Is(err, pgx.ErrNoRows) {
			return preconditionFailed("the user changed since you read it; GET it again")
		}
		if err != nil {
			return err
		}
		if hash != nil {
			// A new password ends every other session of the user.
			if _, err := tx.Exec(ctx, "DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2", u.ID, p.sessionHash); err != nil {
				return err
			}
		}
		return s.audit(ctx, tx, r, auditEntry{action: "user.update", resourceType: "user", resourceID: u.ID.String(),
			details: map[string]any{"name_changed": body.Name != nil, "password_changed": hash != nil, "is_admin": body.IsAdmin}})
	})
	if err != nil {
		return err
	}
	return writeVersioned(w, http.StatusOK, out, out.version)
}

// checkCurrentPassword checks a user's current password before a change.
// A wrong one is a guess like a failed login (a stolen session could
// otherwise guess without limit), so it counts against the same
// per-account and per-address limits, in the same atomic step.
func (s *Server) checkCurrentPassword(r *http.Request, u userBody, password string) error {
	ctx := r.Context()
	attempt, err := s.beginLoginAttempt(ctx, loginKey(u.Email), remoteAddr(r))
	if err != nil {
		return err
	}
	var stored string
	err = s.pool.QueryRow(ctx, "SELECT password_hash FROM users WHERE id = $1", u.ID).Scan(&stored)
	ok := false
	if err == nil {
		ok, err = s.hasher.Check(ctx, stored, password)
	}
	if err != nil {
		attempt.cancel(ctx)
		return err
	}
	if ok {
		return attempt.succeed(ctx)
	}
	if err := s.tx(ctx, func(tx pgx.Tx) error {
		return s.audit(ctx, tx, r, auditEntry{action: "auth.password_check_failed", resourceType: "user", resourceID: u.ID.String()})
	}); err != nil {
		return err
	}
	return invalidField("current_password", "does not match your current password")
}
