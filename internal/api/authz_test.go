package api_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/sluicehq/sluice/internal/api"
)

// servedRoutes walks chi's route tree: what the server really serves,
// independent of the route table the server was built from.
func servedRoutes(t *testing.T, srv *api.Server) []string {
	t.Helper()
	var out []string
	err := chi.Walk(srv.Handler(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, method+" "+strings.TrimSuffix(route, "/"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// Every served route is in the OpenAPI document and every documented
// operation is served.
func TestOpenAPIMatchesRouter(t *testing.T) {
	e := newEnv(t)
	served := servedRoutes(t, e.srv)
	if len(served) < 40 {
		t.Fatalf("only %d routes served: %v", len(served), served)
	}

	body := e.anonymous().do("GET", "/api/v1/openapi.json", nil).want(200).body
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	var documented []string
	ops := map[string]bool{}
	param := regexp.MustCompile(`\{([a-zA-Z]+)\}`)
	for path, methods := range doc.Paths {
		for method, op := range methods {
			documented = append(documented, strings.ToUpper(method)+" "+path)
			id, _ := op["operationId"].(string)
			if id == "" || ops[id] {
				t.Errorf("%s %s: operationId %q missing or repeated", method, path, id)
			}
			ops[id] = true
			if _, ok := op["responses"].(map[string]any); !ok {
				t.Errorf("%s %s: no responses", method, path)
			}
			// Every path parameter is declared.
			declared := map[string]bool{}
			params, _ := op["parameters"].([]any)
			for _, p := range params {
				pm := p.(map[string]any)
				if pm["in"] == "path" {
					declared[pm["name"].(string)] = true
				}
			}
			for _, m := range param.FindAllStringSubmatch(path, -1) {
				if !declared[m[1]] {
					t.Errorf("%s %s: path parameter %s not declared", method, path, m[1])
				}
			}
		}
	}
	sort.Strings(documented)
	if strings.Join(served, "\n") != strings.Join(documented, "\n") {
		t.Errorf("served and documented routes differ\nserved only: %v\ndocumented only: %v",
			minus(served, documented), minus(documented, served))
	}
}

func minus(a, b []string) []string {
	in := map[string]bool{}
	for _, s := range b {
		in[s] = true
	}
	var out []string
	for _, s := range a {
		if !in[s] {
			out = append(out, s)
		}
	}
	return out
}

// minimalBody is a well-formed body for a route, so an authorisation test
// is not answered by body validation instead.
func minimalBody(method, pattern string, w *world) any {
	switch {
	case method == "GET" || method == "DELETE":
		return nil
	case strings.HasSuffix(pattern, "/auth/login"):
		return map[string]any{"email": "nobody@example.com", "password": "x"}
	case strings.HasSuffix(pattern, "/members/{userID}") && strings.HasPrefix(pattern, "/api/v1/orgs"):
		return map[string]any{"role": "member"}
	case strings.HasSuffix(pattern, "/members/{userID}"):
		return map[string]any{"role": "viewer"}
	case pattern == "/api/v1/orgs":
		return map[string]any{"name": "org-x"}
	case pattern == "/api/v1/users":
		return map[string]any{"email": "x@example.com", "password": "a-long-password"}
	case pattern == "/api/v1/projects":
		return map[string]any{"org_id": w.orgB, "name": "gamma"}
	case strings.HasSuffix(pattern, "/tokens"):
		return map[string]any{"name": "t", "role": "viewer"}
	case strings.HasSuffix(pattern, "/fleets"):
		return map[string]any{"name": "f2", "module": "local"}
	case strings.HasSuffix(pattern, "/pipelines"):
		return map[string]any{"name": "p2"}
	case strings.HasSuffix(pattern, "/revisions"):
		return map[string]any{"source": "x"}
	case strings.HasSuffix(pattern, "/deployments"):
		return map[string]any{"fleet_id": w.fleetB, "pipeline_id": w.pipeB}
	case strings.HasSuffix(pattern, "/deployments/{deploymentID}"):
		return map[string]any{"revision_id": w.revB}
	}
	return map[string]any{}
}

// fill puts project B's resources into a route pattern.
func fill(pattern string, w *world) string {
	return strings.NewReplacer(
		"{orgID}", w.orgB, "{projectID}", w.projB, "{fleetID}", w.fleetB, "{pipelineID}", w.pipeB,
		"{revisionID}", w.revB, "{deploymentID}", w.depB, "{tokenID}", w.tokenB, "{userID}", w.userB,
		"{rolloutID}", w.rolloutB, "{runnerID}", w.fleetB, "{runNumber}", "1",
		"{name}", "filter",
	).Replace(pattern)
}

func wantProblem(t *testing.T, r *response, status int, who string) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s as %s: status %d, want %d: %s", r.req, who, r.status, status, r.body)
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s as %s: Content-Type %q, want application/problem+json", r.req, who, ct)
	}
}

// The authorisation matrix, generated from the router's own route list:
// for every route, an anonymous caller gets 401, a token of project A gets
// 404 on everything of project B (and of B's organisation), and a viewer
// of project B cannot mutate anything (403).
func TestAuthorizationMatrix(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	info := map[string]api.RouteInfo{}
	for _, ri := range e.srv.Routes() {
		info[ri.Method+" "+ri.Pattern] = ri
	}
	anon := e.anonymous()
	tokenA := e.tokenClient(w.ownerA)
	viewerToken := e.tokenClient(w.viewerB)
	viewerSession := e.login("viewer@example.com", w.viewerUserPassword)

	var checked, mutations, projectScoped int
	for _, mr := range servedRoutes(t, e.srv) {
		method, pattern, _ := strings.Cut(mr, " ")
		ri, ok := info[mr]
		if !ok {
			t.Errorf("%s is served but not in Routes()", mr)
			continue
		}
		path := fill(pattern, w)
		body := minimalBody(method, pattern, w)
		checked++

		if !ri.Public {
			wantProblem(t, anon.do(method, path, body), http.StatusUnauthorized, "anonymous")
			// A bad token is a 401 too, never anonymous access.
			wantProblem(t, e.tokenClient("slc_not-a-real-token").do(method, path, body), http.StatusUnauthorized, "bad token")
		}
		// Users belong to the instance, not a project: tokens get 403 on
		// them (see TestUsersAreNotForTokens).
		touchesB := strings.Contains(pattern, "{projectID}") || strings.Contains(pattern, "{orgID}")
		if ri.ProjectScoped {
			projectScoped++
		}
		if touchesB {
			wantProblem(t, tokenA.do(method, path, body), http.StatusNotFound, "token of project A")
		}
		if ri.Mutates && !ri.Public {
			mutations++
			wantProblem(t, viewerToken.do(method, path, body), http.StatusForbidden, "viewer token of B")
			if ri.ProjectScoped {
				wantProblem(t, viewerSession.do(method, path, body), http.StatusForbidden, "viewer session of B")
			}
		}
		// The viewer may read what is in its project: the matrix is not
		// passing because everything is refused.
		if method == "GET" && ri.ProjectScoped && ri.MinRole == "viewer" {
			if r := viewerToken.do(method, path, nil); r.status != 200 {
				t.Errorf("%s as viewer of B: status %d, want 200: %s", r.req, r.status, r.body)
			}
		}
	}
	if checked < 40 || mutations < 20 || projectScoped < 25 {
		t.Errorf("matrix too small: %d routes, %d mutations, %d project-scoped", checked, mutations, projectScoped)
	}
	// Nothing above changed project B.
	r := e.tokenClient(w.ownerB).do("GET", "/api/v1/projects/"+w.projB+"/fleets", nil).want(200).json()
	if items := r["items"].([]any); len(items) != 1 {
		t.Errorf("project B has %d fleets after the matrix, want 1", len(items))
	}
	e.tokenClient(w.ownerB).do("GET", "/api/v1/projects/"+w.projB+"/tokens/"+w.tokenB, nil).want(200)
}

// Cookie-authenticated mutations need the session's CSRF token: a
// cross-site form post carries the cookie but cannot read the token.
func TestCSRF(t *testing.T) {
	e := newEnv(t)
	org := e.admin.do("POST", "/api/v1/orgs", map[string]any{"name": "acme"}).want(201).str("id")
	forged := *e.admin
	forged.csrf = ""
	wantProblem(t, forged.do("POST", "/api/v1/projects", map[string]any{"org_id": org, "name": "p"}), http.StatusForbidden, "no CSRF token")
	forged.csrf = "wrong"
	wantProblem(t, forged.do("POST", "/api/v1/projects", map[string]any{"org_id": org, "name": "p"}), http.StatusForbidden, "wrong CSRF token")
	// Reads need no token.
	forged.do("GET", "/api/v1/projects", nil).want(200)
	e.admin.do("POST", "/api/v1/projects", map[string]any{"org_id": org, "name": "p"}).want(201)
}
