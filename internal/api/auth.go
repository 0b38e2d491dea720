package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/internal/identity"
)

// SessionCookie is the name of the browser session cookie.
const SessionCookie = "sluice_session"

// CSRFHeader carries the session's CSRF token on cookie-authenticated
// mutations (synchronizer token: the value comes from login or GET /me).
const CSRFHeader = "X-CSRF-Token"

// authenticate resolves the caller from an API token (Authorization:
// Bearer) or a session cookie. Requests with neither go on anonymous and
// the route guard decides; a token that is present but not valid is a 401
// here, so a typo never silently downgrades to anonymous.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var (
			p   *Principal
			err error
		)
		if h := r.Header.Get("Authorization"); h != "" {
			p, err = s.tokenPrincipal(r.Context(), h)
		} else if c, cerr := r.Cookie(SessionCookie); cerr == nil && c.Value != "" {
			p, err = s.sessionPrincipal(r.Context(), c.Value)
			if p == nil && err == nil {
				// An expired or logged-out cookie: clear it, go on anonymous.
				http.SetCookie(w, s.sessionCookie("", -1))
			}
		}
		if err != nil {
			s.writeProblem(w, r, err)
			return
		}
		if p != nil {
			r = r.WithContext(withPrincipal(r.Context(), p))
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) tokenPrincipal(ctx context.Context, header string) (*Principal, error) {
	scheme, secret, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || !strings.HasPrefix(secret, identity.TokenPrefix) {
		return nil, unauthorized("the Authorization header must be `Bearer " + identity.TokenPrefix + "...`")
	}
	p := &Principal{Kind: KindToken}
	var (
		createdBy *uuid.UUID
		expires   *time.Time
		revoked   *time.Time
		lastUsed  *time.Time
		role      string
	)
	err := s.pool.QueryRow(ctx, `SELECT id, project_id, name, role, created_by, expires_at, revoked_at, last_used_at
		FROM api_tokens WHERE token_hash = $1`, identity.HashSecret(secret)).
		Scan(&p.TokenID, &p.ProjectID, &p.Name, &role, &createdBy, &expires, &revoked, &lastUsed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, unauthorized("unknown API token")
	}
	if err != nil {
		return nil, err
	}
	now := time.Now()
	switch {
	case revoked != nil:
		return nil, unauthorized("this API token was revoked")
	case expires != nil && !now.Before(*expires):
		return nil, unauthorized("this API token expired at " + expires.UTC().Format(time.RFC3339))
	}
	p.Role = identity.Role(role)
	if createdBy != nil {
		p.UserID = *createdBy
	}
	// Note use, at most once a minute, so a busy token is not a write per
	// request.
	if lastUsed == nil || now.Sub(*lastUsed) > time.Minute {
		if _, err := s.pool.Exec(ctx, "UPDATE api_tokens SET last_used_at = now() WHERE id = $1", p.TokenID); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (s *Server) sessionPrincipal(ctx context.Context, cookie string) (*Principal, error) {
	p := &Principal{Kind: KindUser, sessionHash: identity.HashSecret(cookie)}
	err := s.pool.QueryRow(ctx, `SELECT u.id, u.email, u.is_admin, s.csrf_token
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.id_hash = $1 AND s.expires_at > now()`, p.sessionHash).
		Scan(&p.UserID, &p.Name, &p.Admin, &p.csrfToken)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

func validCSRF(r *http.Request, p *Principal) bool {
	got := r.Header.Get(CSRFHeader)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(p.csrfToken)) == 1
}

func (s *Server) sessionCookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: SessionCookie, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.cfg.SecureCookies,
	}
}

type loginRequest struct {
	Email    string `json:"email" required:"true"`
	Password string `json:"password" required:"true"`
}

func (b *loginRequest) validate() []FieldError {
	var errs []FieldError
	if strings.TrimSpace(b.Email) == "" {
		errs = append(errs, FieldError{Field: "email", Detail: "required"})
	}
	if b.Password == "" {
		errs = append(errs, FieldError{Field: "password", Detail: "required"})
	}
	return errs
}

// sessionBody answers login and GET /me.
type sessionBody struct {
	Kind  PrincipalKind `json:"kind"`
	User  *userBody     `json:"user,omitempty"`
	Token *tokenBody    `json:"token,omitempty"`
	// CSRFToken must be sent as X-CSRF-Token on mutations made with the
	// session cookie.
	CSRFToken string `json:"csrf_token,omitempty"`
}

func (s *Server) authResource() resource {
	return resource{prefix: "/auth", tag: "auth", routes: []route{
		{method: http.MethodPost, path: "/login", op: "login", summary: "Log in with email and password; sets the session cookie",
			access: public, body: loginRequest{}, resp: sessionBody{}, handle: s.login},
		{method: http.MethodPost, path: "/logout", op: "logout", summary: "End the browser session",
			access: sessionOnly, handle: s.logout},
	}}
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	var body loginRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	ctx := r.Context()
	addr := remoteAddr(r)
	if wait, err := s.loginLocked(ctx, body.Email, addr); err != nil {
		return err
	} else if wait > 0 {
		return tooManyRequests("too many failed logins; try again later", int(wait.Seconds())+1)
	}
	var (
		u    userBody
		hash string
	)
	err := s.pool.QueryRow(ctx, `SELECT `+userColumns+`, password_hash FROM users WHERE lower(email) = lower($1)`,
		strings.TrimSpace(body.Email)).Scan(append(u.scanDest(), &hash)...)
	ok := false
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		identity.BurnPasswordCheck(body.Password)
	case err != nil:
		return err
	default:
		if ok, err = identity.CheckPassword(hash, body.Password); err != nil {
			return err
		}
	}
	if _, err := s.pool.Exec(ctx, "INSERT INTO login_attempts (email, remote_addr, ok) VALUES ($1, $2, $3)",
		strings.ToLower(strings.TrimSpace(body.Email)), addr, ok); err != nil {
		return err
	}
	if !ok {
		if err := s.tx(ctx, func(tx pgx.Tx) error {
			return s.audit(ctx, tx, r, auditEntry{action: "auth.login_failed", resourceType: "session",
				details: map[string]any{"email": body.Email}})
		}); err != nil {
			return err
		}
		return unauthorized("wrong email or password")
	}
	secret, err := identity.RandomString(32)
	if err != nil {
		return err
	}
	csrf, err := identity.RandomString(24)
	if err != nil {
		return err
	}
	p := &Principal{Kind: KindUser, UserID: u.ID, Name: u.Email, Admin: u.IsAdmin}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO sessions (id_hash, user_id, csrf_token, remote_addr, expires_at)
			VALUES ($1, $2, $3, $4, $5)`, identity.HashSecret(secret), u.ID, csrf, addr, time.Now().Add(s.cfg.SessionTTL)); err != nil {
			return err
		}
		return s.audit(withPrincipal(ctx, p), tx, r, auditEntry{action: "auth.login", resourceType: "session", resourceID: u.ID.String()})
	})
	if err != nil {
		return err
	}
	http.SetCookie(w, s.sessionCookie(secret, int(s.cfg.SessionTTL.Seconds())))
	return writeJSON(w, http.StatusOK, sessionBody{Kind: KindUser, User: &u, CSRFToken: csrf})
}

// loginLocked says how long logins for email, or from addr, must wait:
// too many failures in the window since the last success lock them.
func (s *Server) loginLocked(ctx context.Context, email, addr string) (time.Duration, error) {
	window := s.cfg.LoginWindow
	var oldest *time.Time
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*), min(at) FROM login_attempts
		WHERE email = lower($1) AND NOT ok AND at > now() - make_interval(secs => $2)
		AND at > coalesce((SELECT max(at) FROM login_attempts WHERE email = lower($1) AND ok), '-infinity')`,
		strings.TrimSpace(email), window.Seconds()).Scan(&n, &oldest)
	if err != nil {
		return 0, err
	}
	if n >= s.cfg.LoginFailures && oldest != nil {
		return time.Until(oldest.Add(window)), nil
	}
	// One address may try several accounts (an office behind one NAT), so
	// its limit is higher.
	err = s.pool.QueryRow(ctx, `SELECT count(*), min(at) FROM login_attempts
		WHERE remote_addr = $1 AND NOT ok AND at > now() - make_interval(secs => $2)`, addr, window.Seconds()).Scan(&n, &oldest)
	if err != nil {
		return 0, err
	}
	if n >= 5*s.cfg.LoginFailures && oldest != nil {
		return time.Until(oldest.Add(window)), nil
	}
	return 0, nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p := PrincipalFrom(ctx)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM sessions WHERE id_hash = $1", p.sessionHash); err != nil {
			return err
		}
		return s.audit(ctx, tx, r, auditEntry{action: "auth.logout", resourceType: "session", resourceID: p.UserID.String()})
	})
	if err != nil {
		return err
	}
	http.SetCookie(w, s.sessionCookie("", -1))
	w.WriteHeader(http.StatusNoContent)
	return nil
}
