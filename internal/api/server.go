// Package api is the control plane's REST API under /api/v1 (DESIGN.md
// §5): identity (sessions, API tokens, roles), organisations, projects,
// members, fleets, pipelines and revisions, deployments, the audit log and
// the operator catalog. Every route is declared once in a table that
// drives routing, authorisation, idempotency and the OpenAPI document.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/gitops/deploy"
	"github.com/sluicehq/sluice/gitops/rollout"
	"github.com/sluicehq/sluice/internal/identity"
	docs "github.com/sluicehq/sluice/internal/operatordocs"
)

// Config configures a Server. Pool and Registry are required.
type Config struct {
	Pool     *pgxpool.Pool
	Registry *catalog.Registry
	// Logger gets one line per request (never bodies, headers or query
	// strings) and internal errors. Default: discard.
	Logger *slog.Logger
	// SecureCookies marks the session cookie Secure; set it when the
	// public URL is https.
	SecureCookies bool
	// TrustProxy takes the client address from the last X-Forwarded-For
	// hop, for a control plane behind one reverse proxy.
	TrustProxy bool
	// MaxBodyBytes caps request bodies (default 1 MiB).
	MaxBodyBytes int64
	// SessionTTL is how long a login lasts (default 12h).
	SessionTTL time.Duration
	// LoginFailures failed logins per email or per client address within
	// LoginWindow lock further attempts until the window passes
	// (defaults 10 and 15 minutes).
	LoginFailures int
	LoginWindow   time.Duration
	// PasswordHashes caps argon2id hashes running at once (each takes 32
	// MiB and two threads); PasswordHashWait is how long a request waits
	// for a slot before it gets 503 with Retry-After (defaults GOMAXPROCS
	// and 5s).
	PasswordHashes   int
	PasswordHashWait time.Duration
	// Rollback rolls a rollout back: restores the previous revisions and
	// writes a revert commit (the control plane's reconciler, which has
	// the git server). Default: a reconciler without a git server, which
	// restores the revisions only.
	Rollback func(ctx context.Context, projectID, rolloutID uuid.UUID, reason string) error
	// Repository reads and commits projects' repositories for the IDE
	// (ide.go); nil shows empty branches and refuses commits (404).
	Repository Repository
	// Now is the clock API tokens' expiry is checked against (default
	// time.Now); tests set one to expire a token without waiting.
	Now func() time.Time
}

// Server serves the API. It is an http.Handler.
type Server struct {
	cfg       Config
	pool      *pgxpool.Pool
	reg       *catalog.Registry
	log       *slog.Logger
	hasher    *identity.Hasher
	resources []resource
	handler   http.Handler
	openapi   []byte
	// operatorDocs are the catalog's generated Markdown pages by path,
	// made once: the registry does not change while we serve.
	operatorDocs map[string][]byte
	// deploy records revisions, deployments and rollouts, as the git
	// server does.
	deploy *deploy.Store
	// rollback is Config.Rollback or its default.
	rollback func(ctx context.Context, projectID, rolloutID uuid.UUID, reason string) error
}

// New validates cfg and builds the router.
func New(cfg Config) (*Server, error) {
	if cfg.Pool == nil {
		return nil, errors.New("api: Config.Pool is required")
	}
	if cfg.Registry == nil {
		return nil, errors.New("api: Config.Registry is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LoginFailures <= 0 {
		cfg.LoginFailures = 10
	}
	if cfg.LoginWindow <= 0 {
		cfg.LoginWindow = 15 * time.Minute
	}
	if cfg.PasswordHashes <= 0 {
		cfg.PasswordHashes = runtime.GOMAXPROCS(0)
	}
	if cfg.PasswordHashWait <= 0 {
		cfg.PasswordHashWait = 5 * time.Second
	}
	s := &Server{cfg: cfg, pool: cfg.Pool, reg: cfg.Registry, log: cfg.Logger,
		hasher: identity.NewHasher(cfg.PasswordHashes, cfg.PasswordHashWait), deploy: deploy.New(cfg.Pool, cfg.Registry)}
	s.rollback = cfg.Rollback
	if s.rollback == nil {
		rec, err := rollout.New(cfg.Pool)
		if err != nil {
			return nil, err
		}
		s.rollback = rec.Rollback
	}
	pages, err := docs.Generate(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("api: operator docs: %w", err)
	}
	s.operatorDocs = pages
	s.resources = []resource{
		s.authResource(),
		s.orgResource(),
		s.userResource(),
		s.projectResource(),
		s.memberResource(),
		s.tokenResource(),
		s.fleetResource(),
		s.provisioningResource(),
		s.pipelineResource(),
		s.deploymentResource(),
		s.rolloutResource(),
		s.observabilityResource(),
		s.dlqResource(),
		s.auditResource(),
		s.operatorResource(),
		s.ideResource(),
		s.openAPIResource(),
	}
	doc, err := s.buildOpenAPI()
	if err != nil {
		return nil, err
	}
	s.openapi = doc

	r := chi.NewRouter()
	r.Use(middleware.RequestID)
	if cfg.TrustProxy {
		r.Use(forwardedFor)
	}
	r.Use(s.logRequests, s.recoverPanics, s.limitBody, s.authenticate)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.writeProblem(w, r, notFound("route "+r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		s.writeProblem(w, r, problem(http.StatusMethodNotAllowed, "method-not-allowed", r.Method+" is not allowed on "+r.URL.Path))
	})
	r.Route("/api/v1", func(r chi.Router) {
		for _, res := range s.resources {
			r.Group(func(g chi.Router) {
				for _, rt := range res.routes {
					g.Method(rt.method, res.prefix+rt.path, s.endpoint(rt))
				}
			})
		}
	})
	s.handler = r
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Handler returns the chi router, for route walking in tests.
func (s *Server) Handler() chi.Routes { return s.handler.(chi.Routes) }

// access says who may call a route.
type access int

const (
	// public routes need no credentials (login, the OpenAPI document).
	public access = iota
	// anyPrincipal routes need credentials and check the rest themselves.
	anyPrincipal
	// sessionOnly routes need a browser session (logout).
	sessionOnly
	// inProject routes are under /projects/{projectID}; the caller needs at
	// least route.role in that project, and sees 404 without any role.
	inProject
)

// route is one endpoint. The table of routes drives the router, the
// authorisation guard, idempotency and the OpenAPI document.
type route struct {
	method  string
	path    string // relative to the resource prefix; "" for the prefix itself
	op      string // OpenAPI operationId
	summary string
	access  access
	role    identity.Role // inProject: minimum role
	body    any           // request body type (a struct value), nil if none
	resp    any           // response body type, nil for 204
	list    bool          // resp is an item of a paginated list
	status  int           // success status (default 200, or 204 when resp is nil)
	handle  func(w http.ResponseWriter, r *http.Request) error
}

func (rt route) mutates() bool { return rt.method != http.MethodGet && rt.method != http.MethodHead }

func (rt route) successStatus() int {
	switch {
	case rt.status != 0:
		return rt.status
	case rt.resp == nil:
		return http.StatusNoContent
	}
	return http.StatusOK
}

// resource is one kind of resource: its routes share a path prefix and an
// OpenAPI tag, and are registered together.
type resource struct {
	prefix string
	tag    string
	routes []route
}

// RouteInfo describes a served route, for tests and docs.
type RouteInfo struct {
	Method, Pattern string
	Public          bool
	Mutates         bool
	ProjectScoped   bool
	MinRole         identity.Role
}

// Routes lists every served route with its full pattern.
func (s *Server) Routes() []RouteInfo {
	var out []RouteInfo
	for _, res := range s.resources {
		for _, rt := range res.routes {
			out = append(out, RouteInfo{
				Method: rt.method, Pattern: "/api/v1" + res.prefix + rt.path,
				Public: rt.access == public, Mutates: rt.mutates(),
				ProjectScoped: rt.access == inProject, MinRole: rt.role,
			})
		}
	}
	return out
}

// endpoint wraps a route's handler with its guard and idempotency.
func (s *Server) endpoint(rt route) http.Handler {
	h := func(w http.ResponseWriter, r *http.Request) {
		r, err := s.guard(r, rt)
		if err != nil {
			s.writeProblem(w, r, err)
			return
		}
		if rt.method == http.MethodPost && rt.access != public {
			s.idempotent(w, r, rt)
			return
		}
		if err := rt.handle(w, r); err != nil {
			s.writeProblem(w, r, err)
		}
	}
	return http.HandlerFunc(h)
}

// guard authorises a request for rt: 401 without credentials, 404 for a
// project the caller has no role in (so project ids do not leak), 403 when
// the role is too weak, and a CSRF check for cookie-authenticated
// mutations.
func (s *Server) guard(r *http.Request, rt route) (*http.Request, error) {
	if rt.access == public {
		return r, nil
	}
	p := PrincipalFrom(r.Context())
	if p == nil {
		return r, unauthorized("sign in or send an API token: Authorization: Bearer <token>")
	}
	if p.Kind == KindUser && rt.mutates() && !validCSRF(r, p) {
		return r, forbidden("missing or wrong X-CSRF-Token header; read the token from GET /api/v1/me")
	}
	switch rt.access {
	case sessionOnly:
		if p.Kind != KindUser {
			return r, forbidden("this route is for browser sessions, not API tokens")
		}
	case inProject:
		pa, err := s.resolveProject(r.Context(), p, chi.URLParam(r, "projectID"))
		if err != nil {
			return r, err
		}
		if !pa.Role.AtLeast(rt.role) {
			return r, forbidden(fmt.Sprintf("this needs the %s role in the project; you have %s", rt.role, pa.Role))
		}
		r = r.WithContext(context.WithValue(r.Context(), projectKey, pa))
	}
	return r, nil
}

// resolveProject finds the caller's role in the project named by a path
// parameter. No role, no project: 404 either way.
func (s *Server) resolveProject(ctx context.Context, p *Principal, raw string) (projectAccess, error) {
	id, err := parseID("projectID", raw)
	if err != nil {
		return projectAccess{}, err
	}
	pa := projectAccess{ID: id}
	if p.Kind == KindToken && p.ProjectID != id {
		return pa, notFound("project")
	}
	var member *string
	err = s.pool.QueryRow(ctx, `SELECT p.org_id, m.role FROM projects p
		LEFT JOIN project_members m ON m.project_id = p.id AND m.user_id = $2
		WHERE p.id = $1`, id, p.UserID).Scan(&pa.OrgID, &member)
	if errors.Is(err, pgx.ErrNoRows) {
		return pa, notFound("project")
	}
	if err != nil {
		return pa, err
	}
	switch {
	case p.Kind == KindToken:
		pa.Role = p.Role
	case member != nil:
		pa.Role = identity.Role(*member)
	case p.Admin:
		pa.Role = identity.Owner
	default:
		return pa, notFound("project")
	}
	return pa, nil
}

// tx runs fn in a transaction.
func (s *Server) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// updateVersioned runs query, an UPDATE whose $1 is id and whose
// `($2::int IS NULL OR version = $2)` condition takes the request's
// If-Match version, scanning its RETURNING row into dest, and audits e in
// the same transaction. Callers load the resource first, so no row means
// the version did not match: 412, naming what.
func (s *Server) updateVersioned(r *http.Request, what string, e auditEntry, dest []any, query string, id uuid.UUID, args ...any) error {
	want, err := ifMatch(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	return s.tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, query, append([]any{id, want}, args...)...).Scan(dest...)
		if errors.Is(err, pgx.ErrNoRows) {
			return preconditionFailed("the " + what + " changed since you read it; GET it again")
		}
		if err != nil {
			return err
		}
		e.resourceID = id.String()
		return s.audit(ctx, tx, r, e)
	})
}

// deleteVersioned deletes row id of table, refusing with 412 when the
// request's If-Match names another version, and audits e (its resourceID
// is set here) in the same transaction.
func (s *Server) deleteVersioned(w http.ResponseWriter, r *http.Request, table string, id uuid.UUID, e auditEntry) error {
	want, err := ifMatch(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	err = s.tx(ctx, func(tx pgx.Tx) error {
		// table is one of ours, never user input.
		tag, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE id = $1 AND ($2::int IS NULL OR version = $2)", id, want)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return preconditionFailed("it changed since you read it; GET it again")
		}
		e.resourceID = id.String()
		return s.audit(ctx, tx, r, e)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// statusRecorder remembers the status for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection: streams
// (rollout events) flush and extend their write deadline through it.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// logRequests logs method, route pattern, status and duration: never the
// query string, headers or bodies, which may carry secrets.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		level := slog.LevelInfo
		if rec.status >= 500 {
			level = slog.LevelError
		}
		s.log.Log(r.Context(), level, "request", "method", r.Method, "route", routePattern(r),
			"status", rec.status, "duration_ms", float64(time.Since(start).Microseconds())/1000,
			"request_id", requestID(r.Context()))
	})
}

// recoverPanics turns a handler panic into a 500 problem and a log line.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.writeProblem(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// forwardedFor takes the client address from the rightmost
// X-Forwarded-For entry: the one our own proxy appended. Entries to its
// left come from the client and can be forged.
func forwardedFor(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			hops := strings.Split(xff[len(xff)-1], ",")
			if ip := net.ParseIP(strings.TrimSpace(hops[len(hops)-1])); ip != nil {
				r.RemoteAddr = net.JoinHostPort(ip.String(), "0")
			}
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody caps request bodies at Config.MaxBodyBytes; decode turns the
// overflow into 413.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		}
		next.ServeHTTP(w, r)
	})
}
