package api

import (
	"context"
	"net"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"

	"github.com/sluicehq/sluice/internal/identity"
)

// PrincipalKind says how a caller authenticated.
type PrincipalKind string

// Principal kinds.
const (
	KindUser  PrincipalKind = "user"  // browser session
	KindToken PrincipalKind = "token" // API token, scoped to one project
)

// Principal is the authenticated caller of a request.
type Principal struct {
	Kind PrincipalKind
	// UserID is the session's user, or the user who created the token.
	UserID uuid.UUID
	// Name is the user's email or the token's name, for the audit log.
	Name  string
	Admin bool // instance administrator (sessions only)

	// Token principals only.
	TokenID   uuid.UUID
	ProjectID uuid.UUID
	Role      identity.Role

	// Session principals only.
	sessionHash []byte
	csrfToken   string
}

// auditID is the id recorded as the actor.
func (p *Principal) auditID() uuid.UUID {
	if p.Kind == KindToken {
		return p.TokenID
	}
	return p.UserID
}

// key identifies the principal for idempotency records.
func (p *Principal) key() string {
	return string(p.Kind) + ":" + p.auditID().String()
}

type ctxKey int

const (
	principalKey ctxKey = iota
	projectKey
	replayBodyKey
	claimKey
)

// PrincipalFrom returns the request's authenticated caller, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey).(*Principal)
	return p
}

func withPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey, p)
}

// projectAccess is the project a project-scoped route addresses and the
// caller's role in it, resolved by the project guard.
type projectAccess struct {
	ID    uuid.UUID
	OrgID uuid.UUID
	Role  identity.Role
}

func projectFrom(ctx context.Context) projectAccess {
	p, _ := ctx.Value(projectKey).(projectAccess)
	return p
}

// requestID is the request's id for logs, problems and the audit log. A
// client may send its own as X-Request-Id (chi's RequestID keeps it): it
// is cut to 128 bytes of printable ASCII, since the audit log stores it as
// text and PostgreSQL refuses bytes that are not UTF-8.
func requestID(ctx context.Context) string {
	id := middleware.GetReqID(ctx)
	clean := true
	for i := 0; i < len(id); i++ {
		clean = clean && id[i] >= 0x20 && id[i] < 0x7f
	}
	if clean && len(id) <= 128 {
		return id
	}
	b := make([]byte, 0, min(len(id), 128))
	for i := 0; i < len(id) && len(b) < 128; i++ {
		if c := id[i]; c >= 0x20 && c < 0x7f {
			b = append(b, c)
		} else {
			b = append(b, '?')
		}
	}
	return string(b)
}

func routePattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		if p := rc.RoutePattern(); p != "" {
			return p
		}
	}
	return "unmatched"
}

// remoteAddr is the client address for the audit log and rate limiting.
// It is the peer's IP address; behind a proxy, Config.TrustProxy lets
// chi's RealIP middleware put X-Forwarded-For there first.
func remoteAddr(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}
