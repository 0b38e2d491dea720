package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Bad input is a 4xx problem that names what is wrong, never a 500.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	c := e.tokenClient(w.ownerB)
	fleets := "/api/v1/projects/" + w.projB + "/fleets"
	huge := `{"name":"big","module":"local","settings":{"blob":"` + strings.Repeat("x", 2<<20) + `"}}`
	cases := []struct {
		name, method, path string
		body               any
		headers            []string
		status             int
		field              string // expected in errors[].field, if any
	}{
		{"malformed JSON", "POST", fleets, `{"name": "x",`, nil, 400, ""},
		{"not JSON", "POST", fleets, `name=x`, nil, 400, ""},
		{"empty body", "POST", fleets, ``, nil, 400, ""},
		{"array body", "POST", fleets, `[1,2]`, nil, 400, ""},
		{"trailing data", "POST", fleets, `{"name":"x","module":"local"} {}`, nil, 400, ""},
		{"wrong type", "POST", fleets, `{"name": 5, "module": "local"}`, nil, 422, "name"},
		{"wrong nested type", "POST", fleets, `{"name": "x", "module": "local", "runners": "three"}`, nil, 422, "runners"},
		{"unknown field", "POST", fleets, `{"name": "x", "module": "local", "colour": "red"}`, nil, 422, "colour"},
		{"missing required", "POST", fleets, `{"module": "local"}`, nil, 422, "name"},
		{"bad enum", "POST", fleets, `{"name": "x", "module": "gcp"}`, nil, 422, "module"},
		{"out of range", "POST", fleets, `{"name": "x", "module": "local", "runners": -1}`, nil, 422, "runners"},
		{"bad name", "POST", fleets, `{"name": "Not A Name", "module": "local"}`, nil, 422, "name"},
		{"oversize body", "POST", fleets, huge, nil, 413, ""},
		{"wrong content type", "POST", fleets, `{"name":"x","module":"local"}`, []string{"Content-Type", "text/plain"}, 415, "Content-Type"},
		{"bad UUID in path", "GET", "/api/v1/projects/not-a-uuid/fleets", nil, nil, 400, "projectID"},
		{"bad nested UUID", "GET", fleets + "/1234", nil, nil, 400, "fleetID"},
		{"unknown fleet", "GET", fleets + "/01900000-0000-7000-8000-000000000000", nil, nil, 404, ""},
		{"bad UUID in body", "POST", "/api/v1/projects/" + w.projB + "/deployments", `{"fleet_id": "nope", "pipeline_id": "` + w.pipeB + `"}`, nil, 422, "fleet_id"},
		{"bad limit", "GET", fleets + "?limit=0", nil, nil, 400, "limit"},
		{"huge limit", "GET", fleets + "?limit=100000", nil, nil, 400, "limit"},
		{"bad cursor", "GET", fleets + "?cursor=@@notacursor", nil, nil, 400, "cursor"},
		{"bad If-Match", "PATCH", fleets + "/" + w.fleetB, `{"runners": 2}`, []string{"If-Match", "soon"}, 412, "If-Match"},
		{"bad expiry", "POST", "/api/v1/projects/" + w.projB + "/tokens", `{"name":"t","role":"viewer","expires_at":"tomorrow"}`, nil, 400, ""},
		{"past expiry", "POST", "/api/v1/projects/" + w.projB + "/tokens", `{"name":"t","role":"viewer","expires_at":"2001-01-01T00:00:00Z"}`, nil, 422, "expires_at"},
		{"unknown route", "GET", "/api/v1/nothing", nil, nil, 404, ""},
		{"wrong method", "PUT", fleets, `{}`, nil, 405, ""},
		{"null body", "POST", fleets, `null`, nil, 422, "name"},
		{"unicode junk", "POST", fleets, "{\"name\": \"\xff\xfe\", \"module\": \"local\"}", nil, 422, "name"},
		// PostgreSQL refuses NUL in text and jsonb: without the decoder's
		// check each of these was a 500.
		{"NUL in a name", "POST", "/api/v1/projects/" + w.projB + "/tokens", `{"name":"a\u0000b","role":"viewer"}`, nil, 422, "name"},
		{"NUL in a description", "PATCH", "/api/v1/projects/" + w.projB, `{"description":"a\u0000b"}`, nil, 422, "description"},
		{"NUL in a settings value", "POST", fleets, `{"name":"nul","module":"local","settings":{"region":"eu\u0000"}}`, nil, 422, "settings.region"},
		{"NUL in a settings key", "POST", fleets, `{"name":"nul","module":"local","settings":{"a\u0000":1}}`, nil, 422, "settings.a\\u0000"},
		{"NUL in a login", "POST", "/api/v1/auth/login", `{"email":"a@b.c","password":"\u0000aaaaaaaaaaaa"}`, nil, 422, "password"},
		{"oversize If-Match", "PATCH", fleets + "/" + w.fleetB, `{"runners": 2}`, []string{"If-Match", `"99999999999"`}, 412, "If-Match"},
		{"negative If-Match", "PATCH", fleets + "/" + w.fleetB, `{"runners": 2}`, []string{"If-Match", `"-1"`}, 412, "If-Match"},
		{"weak If-Match", "PATCH", fleets + "/" + w.fleetB, `{"runners": 2}`, []string{"If-Match", `W/"1"`}, 412, "If-Match"},
		{"non-UTF-8 Idempotency-Key", "POST", fleets, `{"name":"idem","module":"local"}`, []string{"Idempotency-Key", "k\xff"}, 400, "Idempotency-Key"},
		{"overlong Idempotency-Key", "POST", fleets, `{"name":"idem","module":"local"}`, []string{"Idempotency-Key", strings.Repeat("k", 256)}, 400, "Idempotency-Key"},
		{"non-UTF-8 token", "GET", fleets, nil, []string{"Authorization", "Bearer slc_\xff\xfe"}, 401, ""},
		{"deep nesting", "POST", fleets, `{"name":"x","module":"local","settings":` + strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat(`}`, 5000) + `}`, nil, 201, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do(tc.method, tc.path, tc.body, tc.headers...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status < 400 {
				return
			}
			if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q, want application/problem+json", ct)
			}
			var p struct {
				Type   string `json:"type"`
				Status int    `json:"status"`
				Detail string `json:"detail"`
				Errors []struct{ Field, Detail string }
			}
			if err := json.Unmarshal(r.body, &p); err != nil || p.Status != tc.status || p.Type == "" || p.Detail == "" {
				t.Fatalf("not a complete problem (%v): %s", err, r.body)
			}
			if tc.field != "" {
				found := false
				for _, fe := range p.Errors {
					found = found || fe.Field == tc.field
				}
				if !found {
					t.Errorf("errors do not name %q: %s", tc.field, r.body)
				}
			}
		})
	}
}

// FuzzRequestBody sends arbitrary bytes to every route that takes a body:
// the answer is never a 5xx, and every 4xx is problem+json.
func FuzzRequestBody(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"name":"x","module":"local"}`, `{"name":1}`, `[]`, `null`, `"s"`, `{"a":{"b":[1,2,{"c":null}]}}`,
		`{"role":"owner"}`, `{"source":"apiVersion: sluice/v1\nkind: Pipeline\n"}`, `{"email":"a@b.c","password":"xxxxxxxxxxxxxxxx"}`,
		`{"runners":1e309}`, `{"runners":1.5}`, `{"expires_at":"2999-01-01T00:00:00Z","name":"n","role":"viewer"}`,
		"{\"name\":\"\\ud800\"}", `{"settings":{"k":"v"},"runners":3}`, `{"revision_id":"00000000-0000-0000-0000-000000000000"}`,
		`{"org_id":"00000000-0000-0000-0000-000000000000","name":"p"}`, "\x00\x01", `{"name":"x"}garbage`,
	} {
		f.Add(seed)
	}
	// One server for all inputs: its cleanup belongs to f, not to the
	// first input's t.
	e := newEnv(f)
	w := e.world()
	var routes []string
	for _, ri := range e.srv.Routes() {
		if ri.Method == "POST" || ri.Method == "PATCH" || ri.Method == "PUT" {
			routes = append(routes, ri.Method+" "+fill(ri.Pattern, w))
		}
	}
	f.Fuzz(func(t *testing.T, body string) {
		e.t = t
		c := e.tokenClient(w.ownerB)
		admin := *e.admin
		admin.e = e
		for _, rt := range routes {
			method, path, _ := strings.Cut(rt, " ")
			for _, cl := range []*client{c, &admin} {
				r := cl.do(method, path, body)
				if r.status >= 500 {
					t.Fatalf("%s with body %q: %d: %s", rt, body, r.status, r.body)
				}
				if r.status >= 400 && r.header.Get("Content-Type") != "application/problem+json" {
					t.Fatalf("%s with body %q: %d without problem+json", rt, body, r.status)
				}
			}
		}
	})
}

// Tokens are for automating a project; users are managed by people.
func TestUsersAreNotForTokens(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	c := e.tokenClient(w.ownerB)
	wantProblem(t, c.do("PATCH", "/api/v1/users/"+w.userB, map[string]any{"name": "x"}), http.StatusForbidden, "owner token")
	wantProblem(t, c.do("GET", "/api/v1/users/"+w.userB, nil), http.StatusNotFound, "owner token")
	wantProblem(t, c.do("GET", "/api/v1/users", nil), http.StatusForbidden, "owner token")
	// A user sees themselves but not others.
	b := e.login("b@example.com", w.userBPassword)
	b.do("GET", "/api/v1/users/"+w.userB, nil).want(200)
	wantProblem(t, b.do("GET", "/api/v1/users/"+w.viewerUser, nil), http.StatusNotFound, "other user")
	wantProblem(t, b.do("PATCH", "/api/v1/users/"+w.userB, map[string]any{"is_admin": true}), http.StatusForbidden, "self-promotion")
}
