package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/internal/api"
	"github.com/sluicehq/sluice/internal/database"
	"github.com/sluicehq/sluice/internal/pgcluster/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// syncBuffer collects the server's log lines from concurrent requests.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a control plane on a fresh database, served over real HTTP.
type env struct {
	t     testing.TB
	srv   *api.Server
	ts    *httptest.Server
	pool  *pgxpool.Pool
	logs  *syncBuffer
	admin *client
	// adminPassword is the bootstrap administrator's password.
	adminPassword string
}

const adminEmail = "admin@example.com"

func newEnv(t testing.TB, mod ...func(*api.Config)) *env {
	t.Helper()
	ctx := context.Background()
	pool, err := database.Open(ctx, pgtest.NewDatabase(t), 10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	logs := &syncBuffer{}
	cfg := api.Config{Pool: pool, Registry: all.New(),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, m := range mod {
		m(&cfg)
	}
	srv, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	e := &env{t: t, srv: srv, ts: ts, pool: pool, logs: logs, adminPassword: "admin-password-123"}
	b, err := api.RunBootstrap(ctx, pool, api.Bootstrap{AdminEmail: adminEmail, AdminPassword: e.adminPassword})
	if err != nil || !b.Created {
		t.Fatalf("bootstrap: %v %+v", err, b)
	}
	e.admin = e.login(adminEmail, e.adminPassword)
	return e
}

// client calls the API as one principal: a browser session (cookie jar +
// CSRF token) or an API token, or nobody.
type client struct {
	e     *env
	token string
	jar   http.CookieJar
	csrf  string
	hc    *http.Client
}

func (e *env) anonymous() *client {
	return &client{e: e, hc: &http.Client{}}
}

func (e *env) tokenClient(secret string) *client {
	return &client{e: e, token: secret, hc: &http.Client{}}
}

func (e *env) login(email, password string) *client {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &client{e: e, jar: jar, hc: &http.Client{Jar: jar}}
	r := c.do("POST", "/api/v1/auth/login", map[string]any{"email": email, "password": password})
	r.want(200)
	c.csrf = r.json()["csrf_token"].(string)
	return c
}

// response is a finished request.
type response struct {
	t      testing.TB
	req    string
	status int
	header http.Header
	body   []byte
}

func (r *response) want(status int) *response {
	r.t.Helper()
	if r.status != status {
		r.t.Fatalf("%s: status %d, want %d; body: %s", r.req, r.status, status, r.body)
	}
	return r
}

func (r *response) json() map[string]any {
	r.t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		r.t.Fatalf("%s: body is not a JSON object: %v: %s", r.req, err, r.body)
	}
	return m
}

func (r *response) str(key string) string {
	r.t.Helper()
	v, _ := r.json()[key].(string)
	return v
}

// do sends body (marshalled unless it is a string or []byte) with optional
// header pairs.
func (c *client) do(method, path string, body any, headers ...string) *response {
	c.e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.e.ts.URL+path, rd)
	if err != nil {
		c.e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.csrf != "" {
		req.Header.Set(api.CSRFHeader, c.csrf)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.e.t.Fatal(err)
	}
	return &response{t: c.e.t, req: method + " " + path, status: resp.StatusCode, header: resp.Header, body: b}
}

// world is two organisations with a project each and one of every
// resource in them, the fixture for authorisation tests.
type world struct {
	orgA, orgB         string
	projA, projB       string
	ownerA             string // owner token of project A
	viewerB, ownerB    string // tokens of project B
	fleetB, pipeB      string
	revB, depB, tokenB string
	// rolloutB is the rollout the deployment started.
	rolloutB           string
	userB              string // a member (developer) of project B
	userBPassword      string
	viewerUser         string // a viewer member of project B
	viewerUserPassword string
}

const examplePipeline = `apiVersion: sluice/v1
kind: Pipeline
metadata:
  name: %s
spec:
  source:
    topic: orders
  steps:
    - filter: amount > 10
  sink:
    topic: big-orders
`

func (e *env) world() *world {
	e.t.Helper()
	a := e.admin
	w := &world{userBPassword: "user-b-password-1", viewerUserPassword: "viewer-password-1"}
	w.orgA = a.do("POST", "/api/v1/orgs", map[string]any{"name": "org-a"}).want(201).str("id")
	w.orgB = a.do("POST", "/api/v1/orgs", map[string]any{"name": "org-b"}).want(201).str("id")
	w.projA = a.do("POST", "/api/v1/projects", map[string]any{"org_id": w.orgA, "name": "alpha"}).want(201).str("id")
	w.projB = a.do("POST", "/api/v1/projects", map[string]any{"org_id": w.orgB, "name": "beta"}).want(201).str("id")
	tok := func(project, role string) (secret, id string) {
		r := a.do("POST", "/api/v1/projects/"+project+"/tokens", map[string]any{"name": role + "-token", "role": role}).want(201).json()
		return r["secret"].(string), r["token"].(map[string]any)["id"].(string)
	}
	w.ownerA, _ = tok(w.projA, "owner")
	w.viewerB, _ = tok(w.projB, "viewer")
	w.ownerB, w.tokenB = tok(w.projB, "owner")
	w.userB = a.do("POST", "/api/v1/users", map[string]any{"email": "b@example.com", "password": w.userBPassword}).want(201).str("id")
	a.do("PUT", "/api/v1/projects/"+w.projB+"/members/"+w.userB, map[string]any{"role": "developer"}).want(200)
	w.viewerUser = a.do("POST", "/api/v1/users", map[string]any{"email": "viewer@example.com", "password": w.viewerUserPassword}).want(201).str("id")
	a.do("PUT", "/api/v1/projects/"+w.projB+"/members/"+w.viewerUser, map[string]any{"role": "viewer"}).want(200)
	b := e.tokenClient(w.ownerB)
	w.fleetB = b.do("POST", "/api/v1/projects/"+w.projB+"/fleets", map[string]any{"name": "edge", "module": "local"}).want(201).str("id")
	w.pipeB = b.do("POST", "/api/v1/projects/"+w.projB+"/pipelines", map[string]any{"name": "orders"}).want(201).str("id")
	w.revB = b.do("POST", "/api/v1/projects/"+w.projB+"/pipelines/"+w.pipeB+"/revisions",
		map[string]any{"source": fmt.Sprintf(examplePipeline, "orders")}).want(201).str("id")
	w.depB = b.do("POST", "/api/v1/projects/"+w.projB+"/deployments",
		map[string]any{"fleet_id": w.fleetB, "pipeline_id": w.pipeB}).want(201).str("id")
	w.rolloutB = b.do("GET", "/api/v1/projects/"+w.projB+"/rollouts", nil).want(200).json()["items"].([]any)[0].(map[string]any)["id"].(string)
	return w
}
