package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
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
		createdBy   *uuid.UUID
		expires     *time.Time
		revoked     *time.Time
		lastUsed    *time.Time
		role        string
		creatorRole *string
		creatorOK   bool
	)
	// The creator's current standing comes in the same query: a token acts
	// for the user who made it, so it never outranks them.
	err := s.pool.QueryRow(ctx, `SELECT t.id, t.project_id, t.name, t.role, t.created_by, t.expires_at, t.revoked_at, t.last_used_at,
			coalesce(m.role, CASE WHEN u.is_admin THEN 'owner' END), u.id IS NOT NULL
		FROM api_tokens t
		LEFT JOIN users u ON u.id = t.created_by
		LEFT JOIN project_members m ON m.project_id = t.project_id AND m.user_id = t.created_by
		WHERE t.token_hash = $1`, identity.HashSecret(secret)).
		Scan(&p.TokenID, &p.ProjectID, &p.Name, &role, &createdBy, &expires, &revoked, &lastUsed, &creatorRole, &creatorOK)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, unauthorized("unknown API token")
	}
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	switch {
	case revoked != nil:
		return nil, unauthorized("this API token was revoked")
	case expires != nil && !now.Before(*expires):
		return nil, unauthorized("this API token expired at " + expires.UTC().Format(time.RFC3339))
	case !creatorOK || creatorRole == nil:
		// Removing someone from a project (or deleting them) must end what
		// their tokens can do there too.
		return nil, unauthorized("the user who created this API token no longer has a role in its project")
	}
	p.Role = minRole(identity.Role(role), identity.Role(*creatorRole))
	p.UserID = *createdBy
	// Note use, at most once a minute, so a busy token is not a write per
	// request.
	if lastUsed == nil || now.Sub(*lastUsed) > time.Minute {
		if _, err := s.pool.Exec(ctx, "UPDATE api_tokens SET last_used_at = now() WHERE id = $1", p.TokenID); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// minRole is the weaker of two roles: a token's effective role is its own
// capped by its creator's current one (administrators count as owners, as
// they do for their sessions).
func minRole(a, b identity.Role) identity.Role {
	if a.AtLeast(b) {
		return b
	}
	return a
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

// maxEmail is the longest email address (RFC 5321's 256-octet path less
// its angle brackets). Longer ones cannot name an account, and the login
// record's index refuses values past about 2.7 kB.
const maxEmail = 254

func (b *loginRequest) validate() []FieldError {
	var errs []FieldError
	switch email := strings.TrimSpace(b.Email); {
	case email == "":
		errs = append(errs, FieldError{Field: "email", Detail: "required"})
	case len(email) > maxEmail:
		errs = append(errs, FieldError{Field: "email", Detail: fmt.Sprintf("at most %d bytes", maxEmail)})
	}
	switch {
	case b.Password == "":
		errs = append(errs, FieldError{Field: "password", Detail: "required"})
	case len(b.Password) > maxPassword:
		errs = append(errs, FieldError{Field: "password", Detail: fmt.Sprintf("at most %d bytes", maxPassword)})
	}
	return errs
}

// loginKey is the account key login attempts are counted under: the
// email as accounts are looked up (trimmed, lower case), made storable
// (UTF-8, no NUL) and cut to maxEmail bytes, so an attempt with an email
// that is invalid is counted too.
func loginKey(email string) string {
	k := strings.ToLower(strings.TrimSpace(email))
	k = strings.ToValidUTF8(strings.ReplaceAll(k, "\x00", ""), "")
	if len(k) > maxEmail {
		k = strings.ToValidUTF8(k[:maxEmail], "")
	}
	return k
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
	ctx := r.Context()
	addr := remoteAddr(r)
	if err := decode(r, &body); err != nil {
		// Fields that fail validation are still an attempt on the account
		// and from the address; malformed JSON names no account.
		var p *Problem
		if errors.As(err, &p) && p.Status == http.StatusUnprocessableEntity {
			return s.refusedLogin(r, body.Email, addr, p)
		}
		return err
	}
	key := loginKey(body.Email)
	attempt, err := s.beginLoginAttempt(ctx, key, addr)
	if err != nil {
		return err
	}
	var (
		u    userBody
		hash string
	)
	err = s.pool.QueryRow(ctx, `SELECT `+userColumns+`, password_hash FROM users WHERE lower(email) = lower($1)`,
		strings.TrimSpace(body.Email)).Scan(append(u.scanDest(), &hash)...)
	ok := false
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		err = s.hasher.Burn(ctx, body.Password)
	case err == nil:
		ok, err = s.hasher.Check(ctx, hash, body.Password)
	}
	if err != nil {
		// No password was judged (no hashing slot, the client left, a
		// database error): the attempt does not count.
		attempt.cancel(ctx)
		return err
	}
	if !ok {
		if err := s.tx(ctx, func(tx pgx.Tx) error {
			return s.audit(ctx, tx, r, auditEntry{action: "auth.login_failed", resourceType: "session",
				details: map[string]any{"email": key}})
		}); err != nil {
			return err
		}
		return unauthorized("wrong email or password")
	}
	if err := attempt.succeed(ctx); err != nil {
		return err
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

// refusedLogin counts and audits a login whose fields were invalid and
// returns why: still 429 when the account or address is locked, so
// invalid input is no way around the limits.
func (s *Server) refusedLogin(r *http.Request, email, addr string, why *Problem) error {
	ctx := r.Context()
	key := loginKey(email)
	if _, err := s.beginLoginAttempt(ctx, key, addr); err != nil {
		return err
	}
	if err := s.tx(ctx, func(tx pgx.Tx) error {
		return s.audit(ctx, tx, r, auditEntry{action: "auth.login_failed", resourceType: "session",
			details: map[string]any{"email": key, "invalid": true}})
	}); err != nil {
		return err
	}
	return why
}

// Advisory lock classes for login attempts (the two-int form, whose key
// space is apart from the one-bigint form migrations use).
const (
	lockLoginAccount = 0x5c1
	lockLoginAddress = 0x5c2
)

// loginAttempt is a password guess counted before it is checked.
type loginAttempt struct {
	s  *Server
	id int64
}

// beginLoginAttempt checks the limits for the account key and the client
// address and, when they allow it, records the attempt as a failure, in
// one step: per-account and per-address advisory locks serialise the
// check and the insert, so parallel guesses cannot all pass a check that
// none of them has been counted in yet. The attempt counts as a failure
// until succeed says otherwise, so guesses still being hashed count too.
// The locks are held for the few statements here only, never during the
// hash. Locked out: 429 with Retry-After, and nothing recorded, so the
// lock ends when the window passes.
func (s *Server) beginLoginAttempt(ctx context.Context, account, addr string) (*loginAttempt, error) {
	window := s.cfg.LoginWindow
	a := &loginAttempt{s: s}
	var wait time.Duration
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// Always account, then address: one order, so attempts never wait
		// on each other in a cycle.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", lockLoginAccount, account); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2))", lockLoginAddress, addr); err != nil {
			return err
		}
		var (
			accountN, addrN           int
			accountOldest, addrOldest *time.Time
		)
		err := tx.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM login_attempts WHERE lower(email) = $1 AND NOT ok AND at > now() - make_interval(secs => $3)
				AND at > coalesce((SELECT max(at) FROM login_attempts WHERE lower(email) = $1 AND ok), '-infinity')),
			(SELECT min(at) FROM login_attempts WHERE lower(email) = $1 AND NOT ok AND at > now() - make_interval(secs => $3)
				AND at > coalesce((SELECT max(at) FROM login_attempts WHERE lower(email) = $1 AND ok), '-infinity')),
			(SELECT count(*) FROM login_attempts WHERE remote_addr = $2 AND NOT ok AND at > now() - make_interval(secs => $3)),
			(SELECT min(at) FROM login_attempts WHERE remote_addr = $2 AND NOT ok AND at > now() - make_interval(secs => $3))`,
			account, addr, window.Seconds()).Scan(&accountN, &accountOldest, &addrN, &addrOldest)
		if err != nil {
			return err
		}
		switch {
		case accountN >= s.cfg.LoginFailures && accountOldest != nil:
			wait = time.Until(accountOldest.Add(window))
		// One address may try several accounts (an office behind one
		// NAT), so its limit is higher.
		case addrN >= 5*s.cfg.LoginFailures && addrOldest != nil:
			wait = time.Until(addrOldest.Add(window))
		}
		if wait > 0 {
			return nil
		}
		return tx.QueryRow(ctx, "INSERT INTO login_attempts (email, remote_addr, ok) VALUES ($1, $2, false) RETURNING id",
			account, addr).Scan(&a.id)
	})
	if err != nil {
		return nil, err
	}
	if wait > 0 {
		return nil, tooManyRequests("too many failed logins; try again later", int(wait.Seconds())+1)
	}
	return a, nil
}

// succeed marks the attempt a success, which also clears the account's
// failures. It runs whether or not the client still waits: the password
// was right.
func (a *loginAttempt) succeed(ctx context.Context) error {
	_, err := a.s.pool.Exec(context.WithoutCancel(ctx), "UPDATE login_attempts SET ok = true WHERE id = $1", a.id)
	return err
}

// cancel forgets an attempt whose password was never checked.
func (a *loginAttempt) cancel(ctx context.Context) {
	if _, err := a.s.pool.Exec(context.WithoutCancel(ctx), "DELETE FROM login_attempts WHERE id = $1", a.id); err != nil {
		a.s.log.ErrorContext(ctx, "forget login attempt", "err", err, "request_id", requestID(ctx))
	}
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
