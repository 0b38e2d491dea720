package api_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/internal/api"
	"github.com/sluicehq/sluice/internal/record"
)

// A retried POST with the same Idempotency-Key is applied once and gets
// the first response; the key cannot be reused for another request.
func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	c := e.tokenClient(w.ownerB)
	path := "/api/v1/projects/" + w.projB + "/pipelines"
	body := map[string]any{"name": "payments"}

	// Concurrent retries race; exactly one applies.
	var wg sync.WaitGroup
	results := make([]*response, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = c.do("POST", path, body, api.IdempotencyHeader, "key-1")
		}()
	}
	wg.Wait()
	var created, inProgress int
	var id string
	for _, r := range results {
		switch r.status {
		case 201:
			created++
			if id == "" {
				id = r.str("id")
			} else if r.str("id") != id {
				t.Errorf("replay returned another pipeline: %s vs %s", r.str("id"), id)
			}
		case 409:
			inProgress++
		default:
			t.Errorf("status %d: %s", r.status, r.body)
		}
	}
	if created == 0 {
		t.Fatal("no request succeeded")
	}
	r := c.do("POST", path, body, api.IdempotencyHeader, "key-1").want(201)
	if r.str("id") != id || r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry: id %s replayed %q; want %s replayed", r.str("id"), r.header.Get("Idempotent-Replayed"), id)
	}
	list := c.do("GET", path, nil).want(200).json()["items"].([]any)
	n := 0
	for _, it := range list {
		if it.(map[string]any)["name"] == "payments" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d pipelines named payments, want 1", n)
	}
	// Same key, different request.
	wantProblem(t, c.do("POST", path, map[string]any{"name": "other"}, api.IdempotencyHeader, "key-1"), 422, "reused key")
	// Keys are per principal: another token's key-1 is its own.
	e.tokenClient(w.ownerA).do("POST", "/api/v1/projects/"+w.projA+"/pipelines", body, api.IdempotencyHeader, "key-1").want(201)

	// A failed request (4xx) is stored too: the retry gets the same answer.
	bad := map[string]any{"name": "BAD NAME"}
	c.do("POST", path, bad, api.IdempotencyHeader, "key-2").want(422)
	if r := c.do("POST", path, bad, api.IdempotencyHeader, "key-2"); r.status != 422 || r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry of a 422: %d replayed=%q", r.status, r.header.Get("Idempotent-Replayed"))
	}
}

// A replayed token creation does not show the secret again: only its hash
// is stored anywhere.
func TestIdempotentTokenCreationHidesSecret(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	path := "/api/v1/projects/" + w.projB + "/tokens"
	first := e.admin.do("POST", path, map[string]any{"name": "ci", "role": "developer"}, api.IdempotencyHeader, "tok").want(201)
	secret := first.str("secret")
	if !strings.HasPrefix(secret, "slc_") {
		t.Fatalf("no secret in %s", first.body)
	}
	again := e.admin.do("POST", path, map[string]any{"name": "ci", "role": "developer"}, api.IdempotencyHeader, "tok").want(201)
	if strings.Contains(string(again.body), secret) || again.str("secret") != "" {
		t.Errorf("replay shows the secret: %s", again.body)
	}
	if again.json()["token"].(map[string]any)["id"] != first.json()["token"].(map[string]any)["id"] {
		t.Errorf("replay names another token")
	}
	e.tokenClient(secret).do("GET", "/api/v1/me", nil).want(200)
}

// ETags make updates safe against lost updates: a stale If-Match is 412.
func TestETagIfMatch(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	c := e.tokenClient(w.ownerB)
	path := "/api/v1/projects/" + w.projB + "/fleets/" + w.fleetB
	tag := c.do("GET", path, nil).want(200).header.Get("ETag")
	if tag == "" {
		t.Fatal("no ETag")
	}
	r := c.do("PATCH", path, map[string]any{"runners": 3}, "If-Match", tag).want(200)
	newTag := r.header.Get("ETag")
	if newTag == tag || r.json()["runners"].(float64) != 3 {
		t.Fatalf("update: ETag %s -> %s, body %s", tag, newTag, r.body)
	}
	wantProblem(t, c.do("PATCH", path, map[string]any{"runners": 5}, "If-Match", tag), http.StatusPreconditionFailed, "stale ETag")
	if got := c.do("GET", path, nil).json()["runners"].(float64); got != 3 {
		t.Errorf("stale update applied: runners = %v", got)
	}
	wantProblem(t, c.do("DELETE", path, nil, "If-Match", tag), http.StatusPreconditionFailed, "stale delete")
	c.do("PATCH", path, map[string]any{"settings": map[string]any{"size": "m"}}).want(200) // no If-Match: unconditional
	c.do("DELETE", path, nil, "If-Match", c.do("GET", path, nil).header.Get("ETag")).want(204)
	wantProblem(t, c.do("GET", path, nil), http.StatusNotFound, "deleted")
}

// Cursor pagination visits every item once, in creation order.
func TestPagination(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	c := e.tokenClient(w.ownerB)
	path := "/api/v1/projects/" + w.projB + "/pipelines"
	want := []string{"orders"}
	for i := range 9 {
		name := fmt.Sprintf("p%d", i)
		c.do("POST", path, map[string]any{"name": name}).want(201)
		want = append(want, name)
	}
	var got []string
	cursor, pages := "", 0
	for {
		r := c.do("GET", path+"?limit=4&cursor="+cursor, nil).want(200).json()
		pages++
		items := r["items"].([]any)
		if len(items) > 4 {
			t.Fatalf("page of %d items, limit 4", len(items))
		}
		for _, it := range items {
			got = append(got, it.(map[string]any)["name"].(string))
		}
		next, _ := r["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if pages != 3 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%d pages: %v, want 3 pages: %v", pages, got, want)
	}
}

func TestLoginSessionAndLogout(t *testing.T) {
	e := newEnv(t)
	anon := e.anonymous()
	wantProblem(t, anon.do("POST", "/api/v1/auth/login", map[string]any{"email": adminEmail, "password": "wrong-password"}), 401, "wrong password")
	wantProblem(t, anon.do("POST", "/api/v1/auth/login", map[string]any{"email": "ghost@example.com", "password": "whatever-pass"}), 401, "no such user")
	wantProblem(t, anon.do("POST", "/api/v1/auth/login", map[string]any{"email": adminEmail}), 422, "no password")

	r := anon.do("POST", "/api/v1/auth/login", map[string]any{"email": strings.ToUpper(adminEmail), "password": e.adminPassword}).want(200)
	cookie := r.header.Get("Set-Cookie")
	for _, attr := range []string{api.SessionCookie + "=", "HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(cookie, attr) {
			t.Errorf("session cookie %q lacks %s", cookie, attr)
		}
	}
	c := e.login(adminEmail, e.adminPassword)
	me := c.do("GET", "/api/v1/me", nil).want(200).json()
	if me["kind"] != "user" || me["csrf_token"] != c.csrf {
		t.Errorf("me = %v", me)
	}
	c.do("POST", "/api/v1/auth/logout", nil).want(204)
	wantProblem(t, c.do("GET", "/api/v1/me", nil), 401, "logged out")
}

func TestSecureCookies(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.SecureCookies = true })
	r := e.anonymous().do("POST", "/api/v1/auth/login", map[string]any{"email": adminEmail, "password": e.adminPassword}).want(200)
	if !strings.Contains(r.header.Get("Set-Cookie"), "Secure") {
		t.Errorf("cookie %q is not Secure", r.header.Get("Set-Cookie"))
	}
}

// Repeated failures lock the account for the window, even for the right
// password, and say when to come back.
func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.LoginFailures = 3; c.LoginWindow = time.Minute })
	anon := e.anonymous()
	for range 3 {
		wantProblem(t, anon.do("POST", "/api/v1/auth/login", map[string]any{"email": adminEmail, "password": "guess-guess"}), 401, "guess")
	}
	r := anon.do("POST", "/api/v1/auth/login", map[string]any{"email": adminEmail, "password": e.adminPassword})
	wantProblem(t, r, http.StatusTooManyRequests, "locked")
	if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After = %q", ra)
	}
	// Other accounts are not locked by it.
	w := e.world()
	e.login("b@example.com", w.userBPassword)
	// Failed logins are audited with where they came from.
	var n int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM audit_log WHERE action = 'auth.login_failed' AND remote_addr = '127.0.0.1'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("%d failed logins audited, want 3", n)
	}
}

func TestTokenLifecycle(t *testing.T) {
	// The server checks expiry against this clock, which the test moves on
	// instead of waiting for a token to expire.
	var skew atomic.Int64 // how far the clock is ahead of time.Now
	e := newEnv(t, func(c *api.Config) {
		c.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	w := e.world()
	dev := e.login("b@example.com", w.userBPassword) // developer of B
	path := "/api/v1/projects/" + w.projB + "/tokens"
	wantProblem(t, dev.do("POST", path, map[string]any{"name": "x", "role": "owner"}), 403, "developer minting an owner token")
	r := dev.do("POST", path, map[string]any{"name": "ci", "role": "developer"}).want(201).json()
	secret := r["secret"].(string)
	id := r["token"].(map[string]any)["id"].(string)
	tc := e.tokenClient(secret)
	if me := tc.do("GET", "/api/v1/me", nil).want(200).json(); me["token"].(map[string]any)["role"] != "developer" {
		t.Errorf("me = %v", me)
	}
	// Listing never shows secrets.
	list := dev.do("GET", path, nil).want(200)
	if strings.Contains(string(list.body), secret) || strings.Contains(string(list.body), "secret") {
		t.Errorf("token list leaks secrets: %s", list.body)
	}
	wantProblem(t, dev.do("DELETE", path+"/"+w.tokenB, nil), 403, "developer revoking an owner token")
	dev.do("DELETE", path+"/"+id, nil).want(204)
	r2 := tc.do("GET", "/api/v1/me", nil)
	wantProblem(t, r2, 401, "revoked token")
	if !strings.Contains(string(r2.body), "revoked") {
		t.Errorf("revoked token error does not say so: %s", r2.body)
	}

	// Expiry: a token works until its expiry and not from then on.
	exp := time.Now().Add(time.Hour)
	r = dev.do("POST", path, map[string]any{"name": "short", "role": "viewer", "expires_at": exp.UTC().Format(time.RFC3339Nano)}).want(201).json()
	short := e.tokenClient(r["secret"].(string))
	short.do("GET", "/api/v1/me", nil).want(200)
	skew.Store(int64(time.Hour - time.Minute))
	short.do("GET", "/api/v1/me", nil).want(200)
	skew.Store(int64(time.Hour))
	if r := short.do("GET", "/api/v1/me", nil); r.status != 401 || !strings.Contains(string(r.body), "expired") {
		t.Errorf("expired token: %d %s", r.status, r.body)
	}
}

// Every mutation lands in the audit log with who, what and from where.
func TestAuditLog(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	c := e.tokenClient(w.ownerB)
	before := auditCount(t, e)
	c.do("PATCH", "/api/v1/projects/"+w.projB, map[string]any{"description": "beta project"}).want(200)
	c.do("POST", "/api/v1/projects/"+w.projB+"/pipelines", map[string]any{"name": "audited"}).want(201)
	c.do("PATCH", "/api/v1/projects/"+w.projB+"/deployments/"+w.depB, map[string]any{"revision_id": w.revB}).want(200)
	c.do("DELETE", "/api/v1/projects/"+w.projB+"/members/"+w.viewerUser, nil).want(204)
	wantProblem(t, c.do("POST", "/api/v1/projects/"+w.projB+"/pipelines", map[string]any{"name": "audited"}), 409, "duplicate")
	if got := auditCount(t, e) - before; got != 4 {
		t.Errorf("%d audit records for 4 mutations (and one refused)", got)
	}
	r := c.do("GET", "/api/v1/projects/"+w.projB+"/audit?limit=4", nil).want(200).json()
	items := r["items"].([]any)
	actions := []string{}
	for _, it := range items {
		m := it.(map[string]any)
		actions = append(actions, m["action"].(string))
		if m["actor_type"] != "token" || m["actor_name"] != "owner-token" || m["remote_addr"] != "127.0.0.1" || m["request_id"] == "" {
			t.Errorf("audit record lacks who/where: %v", m)
		}
	}
	want := "project.member.delete,deployment.update,pipeline.create,project.update"
	if strings.Join(actions, ",") != want {
		t.Errorf("audit (newest first) = %v, want %s", actions, want)
	}
	// Project A's owner sees none of it; the instance log is for admins.
	wantProblem(t, e.tokenClient(w.ownerA).do("GET", "/api/v1/projects/"+w.projB+"/audit", nil), 404, "other project")
	wantProblem(t, c.do("GET", "/api/v1/audit", nil), 403, "token")
	all := e.admin.do("GET", "/api/v1/audit?limit=200", nil).want(200).json()["items"].([]any)
	if len(all) < 10 {
		t.Errorf("instance audit log has %d records", len(all))
	}
}

func auditCount(t *testing.T, e *env) int {
	var n int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM audit_log").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Passwords and token secrets never appear in logs, in later API
// responses or in the database.
func TestSecretsNeverLeak(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	password := "very-secret-password-42"
	e.admin.do("PATCH", "/api/v1/users/"+w.userB, map[string]any{"password": password}).want(200)
	u := e.login("b@example.com", password)
	tok := u.do("POST", "/api/v1/projects/"+w.projB+"/tokens", map[string]any{"name": "leaky", "role": "viewer"}).want(201).str("secret")
	tc := e.tokenClient(tok)
	secrets := []string{password, tok, w.ownerA, w.ownerB, w.viewerB, e.adminPassword, w.userBPassword}

	// Exercise reads of everything, with failures too.
	var bodies []string
	for _, ri := range e.srv.Routes() {
		if ri.Method != "GET" {
			continue
		}
		path := fill(ri.Pattern, w)
		for _, c := range []*client{e.admin, tc, u} {
			bodies = append(bodies, string(c.do("GET", path, nil).body))
		}
	}
	bodies = append(bodies, string(e.anonymous().do("POST", "/api/v1/auth/login", map[string]any{"email": "b@example.com", "password": password + "x"}).body))
	bodies = append(bodies, string(e.tokenClient(tok+"x").do("GET", "/api/v1/me", nil).body))

	logs := e.logs.String()
	if !strings.Contains(logs, "msg=request") {
		t.Fatal("no request logs captured; the scan would prove nothing")
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("a secret appears in the logs")
		}
		for _, b := range bodies {
			if strings.Contains(b, s) {
				t.Errorf("a secret appears in a response: %.200s", b)
			}
		}
	}
	// The database holds hashes only.
	ctx := context.Background()
	rows, err := e.pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		_ = rows.Scan(&name)
		tables = append(tables, name)
	}
	rows.Close()
	for _, table := range tables {
		var dump string
		if err := e.pool.QueryRow(ctx, fmt.Sprintf(`SELECT coalesce(string_agg(t::text, E'\n'), '') FROM %q t`, table)).Scan(&dump); err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if strings.Contains(dump, s) {
				t.Errorf("table %s holds a secret in clear", table)
			}
		}
	}
}

// A revision must compile; errors carry file:line:col.
func TestRevisionsCompile(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	c := e.tokenClient(w.ownerB)
	path := "/api/v1/projects/" + w.projB + "/pipelines/" + w.pipeB + "/revisions"
	bad := strings.Replace(fmt.Sprintf(examplePipeline, "orders"), "amount > 10", "amount >", 1)
	r := c.do("POST", path, map[string]any{"source": bad})
	wantProblem(t, r, 422, "bad expression")
	p := r.json()
	errs := p["errors"].([]any)
	first := errs[0].(map[string]any)
	if first["field"] != "source" || first["line"].(float64) != 9 || first["column"] == nil ||
		!strings.HasPrefix(first["detail"].(string), "orders.yaml:9:") {
		t.Errorf("compile error not positioned: %s", r.body)
	}
	wantProblem(t, c.do("POST", path, map[string]any{"source": fmt.Sprintf(examplePipeline, "other")}), 422, "wrong name")
	r = c.do("POST", path, map[string]any{"source": fmt.Sprintf(examplePipeline, "orders"), "commit_sha": "abc123"}).want(201)
	if r.json()["number"].(float64) != 2 || len(r.str("digest")) != 64 {
		t.Errorf("second revision: %s", r.body)
	}
	if p := c.do("GET", "/api/v1/projects/"+w.projB+"/pipelines/"+w.pipeB, nil).json(); p["latest_revision"].(float64) != 2 {
		t.Errorf("latest_revision = %v", p["latest_revision"])
	}
}

func TestOperatorsCatalog(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	c := e.tokenClient(w.viewerB)
	items := c.do("GET", "/api/v1/operators", nil).want(200).json()["items"].([]any)
	names := map[string]bool{}
	for _, it := range items {
		m := it.(map[string]any)
		names[m["name"].(string)] = true
		if _, ok := m["config_schema"].(map[string]any); !ok {
			t.Errorf("%s: config_schema is not a JSON object", m["name"])
		}
		if d, _ := m["docs"].(string); !strings.Contains(d, "# "+m["name"].(string)) {
			t.Errorf("%s: no docs page in the list", m["name"])
		}
	}
	for _, want := range []string{"filter", "map", "route", "script"} {
		if !names[want] {
			t.Errorf("catalog lacks %s", want)
		}
	}
	op := c.do("GET", "/api/v1/operators/filter", nil).want(200).json()
	if !strings.Contains(op["docs"].(string), "# filter") || len(op["examples"].([]any)) == 0 {
		t.Errorf("filter has no docs or examples: %v", op)
	}
	wantProblem(t, c.do("GET", "/api/v1/operators/nope", nil), 404, "unknown operator")
}

// A project keeps at least one owner.
func TestLastOwner(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	members := e.admin.do("GET", "/api/v1/projects/"+w.projB+"/members", nil).want(200).json()["items"].([]any)
	var owner string
	for _, m := range members {
		if mm := m.(map[string]any); mm["role"] == "owner" {
			owner = mm["user_id"].(string)
		}
	}
	wantProblem(t, e.admin.do("PUT", "/api/v1/projects/"+w.projB+"/members/"+owner, map[string]any{"role": "viewer"}), 409, "demote last owner")
	wantProblem(t, e.admin.do("DELETE", "/api/v1/projects/"+w.projB+"/members/"+owner, nil), 409, "remove last owner")
	e.admin.do("PUT", "/api/v1/projects/"+w.projB+"/members/"+w.userB, map[string]any{"role": "owner"}).want(200)
	e.admin.do("DELETE", "/api/v1/projects/"+w.projB+"/members/"+owner, nil).want(204)
}

// Behind a proxy, the audit log records the address the proxy saw, not
// one the client wrote into the header.
func TestTrustProxy(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.TrustProxy = true })
	e.anonymous().do("POST", "/api/v1/auth/login", map[string]any{"email": adminEmail, "password": "wrong-password"},
		"X-Forwarded-For", "6.6.6.6, 203.0.113.7").want(401)
	var addr string
	if err := e.pool.QueryRow(context.Background(), "SELECT remote_addr FROM audit_log WHERE action = 'auth.login_failed'").Scan(&addr); err != nil {
		t.Fatal(err)
	}
	if addr != "203.0.113.7" {
		t.Errorf("audited address %q, want the proxy's hop 203.0.113.7", addr)
	}
}

// The example pipelines are accepted as revisions, as pushed by a user.
func TestExamplesAsRevisions(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	c := e.tokenClient(w.ownerB)
	files, _ := filepath.Glob("../../examples/*/*.yaml")
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.yaml") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^  name: (\S+)`).FindSubmatch(src)
		if m == nil {
			t.Fatalf("%s: no metadata.name", f)
		}
		id := c.do("POST", "/api/v1/projects/"+w.projB+"/pipelines", map[string]any{"name": string(m[1])}).want(201).str("id")
		r := c.do("POST", "/api/v1/projects/"+w.projB+"/pipelines/"+id+"/revisions", map[string]any{"source": string(src)})
		// A revision made through the API is one file: an example that
		// reads side files (zones, scripts) is refused, saying which file
		// it could not read; a git push brings them.
		if side, _ := filepath.Glob(filepath.Join(filepath.Dir(f), "*/*")); len(side) > 0 && r.status == 422 {
			if !strings.Contains(string(r.body), "cannot read") {
				t.Errorf("%s: %s", f, r.body)
			}
			continue
		}
		r.want(201)
		n++
	}
	if n < 3 {
		t.Errorf("only %d examples found", n)
	}
}

// A revision that would make the running state unreadable is refused with
// the step's position unless the step says reset: true.
func TestRevisionStateCompatibility(t *testing.T) {
	reg := all.New().Clone()
	if err := reg.Register(catalog.Spec{
		Name: "count", Summary: "Counts per key (test operator).",
		Config: `{"type": "object", "properties": {"by": {"type": "string"}, "window": {"type": "string"}}}`,
		State:  &catalog.StateSpec{KeyField: "by", ShapeFields: []string{"window"}},
		New: func(*catalog.Build, catalog.Config) (catalog.Operator, error) {
			return catalog.OperatorFunc(func(ctx context.Context, r *record.Record, out catalog.Output) error { return out.Next(ctx, r) }), nil
		},
	}); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *api.Config) { c.Registry = reg })
	w := e.world()
	c := e.tokenClient(w.ownerB)
	id := c.do("POST", "/api/v1/projects/"+w.projB+"/pipelines", map[string]any{"name": "counts"}).want(201).str("id")
	path := "/api/v1/projects/" + w.projB + "/pipelines/" + id + "/revisions"
	src := func(window, extra string) string {
		return "apiVersion: sluice/v1\nkind: Pipeline\nmetadata: {name: counts}\nspec:\n  source: {topic: in}\n  steps:\n" +
			"    - count: {by: url, window: " + window + "}\n" + extra + "  sink: {topic: out}\n"
	}
	c.do("POST", path, map[string]any{"source": src("1m", "")}).want(201)
	r := c.do("POST", path, map[string]any{"source": src("5m", "")})
	wantProblem(t, r, 422, "reshaped")
	if !strings.Contains(string(r.body), "counts.yaml:7:7: step count: key or state shape changed") {
		t.Errorf("refusal does not point at the step: %s", r.body)
	}
	ok := c.do("POST", path, map[string]any{"source": src("5m", "      reset: true\n")}).want(201).json()
	if resets, _ := ok["state_resets"].([]any); len(resets) != 1 {
		t.Errorf("state_resets = %v", ok["state_resets"])
	}
}
