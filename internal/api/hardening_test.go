package api_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/api"
)

// race runs n calls of fn at once: every goroutine waits at a barrier so
// the requests really overlap, which is what a limit that checks and
// records in separate steps loses to.
func race(n int, fn func(i int) *response) []*response {
	out := make([]*response, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// statuses counts responses by status.
func statuses(rs []*response) map[int]int {
	m := map[int]int{}
	for _, r := range rs {
		m[r.status]++
	}
	return m
}

// The per-account limit holds exactly when 20 wrong passwords arrive at
// once: with a limit of 3, three are checked and the rest are refused
// before any hashing.
func TestLoginLimitUnderConcurrency(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.LoginFailures = 3; c.LoginWindow = time.Minute })
	anon := e.anonymous()
	rs := race(20, func(int) *response {
		return anon.do("POST", "/api/v1/auth/login", map[string]any{"email": adminEmail, "password": "guess-guess"})
	})
	got := statuses(rs)
	if got[401] != 3 || got[429] != 17 {
		t.Fatalf("20 parallel wrong passwords with a limit of 3: %v, want 3x401 and 17x429", got)
	}
	for _, r := range rs {
		if r.status == 429 && r.header.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After")
		}
	}
	// The right password is locked out too.
	wantProblem(t, anon.do("POST", "/api/v1/auth/login", map[string]any{"email": adminEmail, "password": e.adminPassword}), 429, "locked account")
}

// One address trying many accounts at once is held to its own limit (5
// times the per-account one) exactly.
func TestLoginAddressLimitUnderConcurrency(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.LoginFailures = 2; c.LoginWindow = time.Minute })
	anon := e.anonymous()
	rs := race(20, func(i int) *response {
		return anon.do("POST", "/api/v1/auth/login", map[string]any{"email": fmt.Sprintf("user%d@example.com", i), "password": "guess-guess"})
	})
	if got := statuses(rs); got[401] != 10 || got[429] != 10 {
		t.Fatalf("20 parallel failures for 20 accounts with an address limit of 10: %v, want 10x401 and 10x429", got)
	}
}

// Input the database cannot hold (an email past the index's row size, a
// NUL byte) is a 422 naming the field, not a 500, and it still counts
// against the address.
func TestLoginInvalidInputCounts(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.LoginFailures = 1; c.LoginWindow = time.Minute })
	anon := e.anonymous()
	long := make([]byte, 5000)
	_, _ = rand.Read(long)
	cases := []struct {
		name, body, field string
	}{
		// Random, so PostgreSQL cannot compress it under its index row limit.
		{"long email", `{"email":"` + hex.EncodeToString(long) + `@example.com","password":"whatever-pass"}`, "email"},
		{"NUL in email", `{"email":"admin@example.com\u0000x","password":"whatever-pass"}`, "email"},
		{"long password", `{"email":"x@example.com","password":"` + strings.Repeat("p", 5000) + `"}`, "password"},
	}
	for _, tc := range cases {
		r := anon.do("POST", "/api/v1/auth/login", tc.body)
		wantProblem(t, r, 422, tc.name)
		if !strings.Contains(string(r.body), `"field":"`+tc.field+`"`) {
			t.Errorf("%s: errors do not name %s: %s", tc.name, tc.field, r.body)
		}
	}
	var n int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM login_attempts WHERE NOT ok").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(cases) {
		t.Errorf("%d failed attempts recorded for %d invalid logins", n, len(cases))
	}
	// 3 failures from one address with a per-address limit of 5: two more
	// and it is locked, whatever the account.
	for i := range 2 {
		wantProblem(t, anon.do("POST", "/api/v1/auth/login", map[string]any{"email": fmt.Sprintf("nobody%d@example.com", i), "password": "guess-guess"}), 401, "guess")
	}
	wantProblem(t, anon.do("POST", "/api/v1/auth/login", map[string]any{"email": adminEmail, "password": e.adminPassword}), 429, "address locked")
}

// Checking current_password is a password guess like a login: the same
// limit holds, under concurrency too.
func TestPasswordChangeLimit(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.LoginFailures = 3; c.LoginWindow = time.Minute })
	w := e.world()
	b := e.login("b@example.com", w.userBPassword)
	path := "/api/v1/users/" + w.userB
	rs := race(20, func(int) *response {
		return b.do("PATCH", path, map[string]any{"password": "a-new-password-1", "current_password": "not-my-password"})
	})
	if got := statuses(rs); got[422] != 3 || got[429] != 17 {
		t.Fatalf("20 parallel wrong current passwords with a limit of 3: %v, want 3x422 and 17x429", got)
	}
	wantProblem(t, b.do("PATCH", path, map[string]any{"password": "a-new-password-1", "current_password": w.userBPassword}), 429, "locked")
}

// Argon2 hashing is capped: past the cap, callers wait briefly and then get
// 503 with Retry-After, never a 500 or an unbounded pile of 32 MiB hashes.
func TestPasswordHashingCap(t *testing.T) {
	e := newEnv(t, func(c *api.Config) {
		c.PasswordHashes, c.PasswordHashWait = 1, time.Millisecond
		c.LoginFailures = 100 // attempts being hashed count as failures: keep this test about the cap
	})
	anon := e.anonymous()
	rs := race(20, func(int) *response {
		return anon.do("POST", "/api/v1/auth/login", map[string]any{"email": adminEmail, "password": e.adminPassword})
	})
	got := statuses(rs)
	if got[200]+got[503] != 20 || got[200] == 0 || got[503] == 0 {
		t.Fatalf("20 parallel logins with one hashing slot: %v, want only 200s and some 503s", got)
	}
	for _, r := range rs {
		if r.status == 503 {
			if r.header.Get("Retry-After") == "" || r.header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("503 without Retry-After or problem+json: %v %s", r.header, r.body)
			}
		}
	}
	// A refused hash is no guess: it does not count towards the lock.
	var n int
	if err := e.pool.QueryRow(context.Background(), "SELECT count(*) FROM login_attempts WHERE NOT ok").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d failures recorded for logins refused before hashing", n)
	}
}

// A token never outranks its creator: a demotion caps it, a removal makes
// it authenticate as nothing, and restoring the role restores the token.
func TestTokenFollowsMembership(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	dev := e.login("b@example.com", w.userBPassword) // developer of B
	secret := dev.do("POST", "/api/v1/projects/"+w.projB+"/tokens", map[string]any{"name": "ci", "role": "developer"}).want(201).str("secret")
	tc := e.tokenClient(secret)
	pipelines := "/api/v1/projects/" + w.projB + "/pipelines"
	member := "/api/v1/projects/" + w.projB + "/members/" + w.userB
	tc.do("POST", pipelines, map[string]any{"name": "one"}).want(201)

	e.admin.do("PUT", member, map[string]any{"role": "viewer"}).want(200)
	wantProblem(t, tc.do("POST", pipelines, map[string]any{"name": "two"}), 403, "token of a demoted creator")
	tc.do("GET", pipelines, nil).want(200)
	if p := tc.do("GET", "/api/v1/projects/"+w.projB, nil).want(200).json(); p["role"] != "viewer" {
		t.Errorf("project role seen by the token = %v, want viewer", p["role"])
	}

	e.admin.do("DELETE", member, nil).want(204)
	r := tc.do("GET", pipelines, nil)
	wantProblem(t, r, 401, "token of a removed creator")
	if !strings.Contains(string(r.body), "no longer") {
		t.Errorf("401 does not say why: %s", r.body)
	}

	e.admin.do("PUT", member, map[string]any{"role": "owner"}).want(200)
	// The token keeps its own role, not the creator's new one.
	tc.do("POST", pipelines, map[string]any{"name": "two"}).want(201)
	wantProblem(t, tc.do("DELETE", "/api/v1/projects/"+w.projB+"/members/"+w.viewerUser, nil), 403, "developer token of an owner")
}

// A key claimed by a request that died is taken over once its lease has
// passed; a live claim is a 409 with Retry-After.
func TestIdempotencyLeaseTakeover(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	ctx := context.Background()
	c := e.tokenClient(w.ownerB)
	path := "/api/v1/projects/" + w.projB + "/pipelines"
	body := map[string]any{"name": "payments"}
	claimOf := func(key string) string {
		var s string
		if err := e.pool.QueryRow(ctx, "SELECT claim::text FROM idempotency_keys WHERE key = $1", key).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}

	// A request that claimed its key and died before committing: nothing
	// applied, the row stays at status 0.
	c.do("POST", path, body, api.IdempotencyHeader, "dead").want(201)
	if _, err := e.pool.Exec(ctx, "DELETE FROM pipelines WHERE name = 'payments'"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `UPDATE idempotency_keys SET status = 0, headers = '{}', body = '', applied_at = NULL,
		claimed_at = now() WHERE key = 'dead'`); err != nil {
		t.Fatal(err)
	}
	r := c.do("POST", path, body, api.IdempotencyHeader, "dead")
	wantProblem(t, r, 409, "live claim")
	if r.header.Get("Retry-After") == "" {
		t.Errorf("409 for a live claim has no Retry-After")
	}
	// The lease passes: the retry takes the key over and runs.
	if _, err := e.pool.Exec(ctx, "UPDATE idempotency_keys SET claimed_at = now() - interval '1 hour' WHERE key = 'dead'"); err != nil {
		t.Fatal(err)
	}
	before := claimOf("dead")
	id := c.do("POST", path, body, api.IdempotencyHeader, "dead").want(201).str("id")
	if claimOf("dead") == before {
		t.Errorf("the claim was not taken over")
	}
	// And its response is stored and replays.
	again := c.do("POST", path, body, api.IdempotencyHeader, "dead").want(201)
	if again.str("id") != id || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay after takeover: %s", again.body)
	}

	// A request that committed but died before storing its response is
	// never run again: the retry learns that it was applied.
	if _, err := e.pool.Exec(ctx, `UPDATE idempotency_keys SET status = 0, headers = '{}', body = '',
		claimed_at = now() - interval '1 hour' WHERE key = 'dead'`); err != nil {
		t.Fatal(err)
	}
	r = c.do("POST", path, body, api.IdempotencyHeader, "dead")
	wantProblem(t, r, 409, "applied, response lost")
	if !strings.Contains(string(r.body), "applied") || !strings.Contains(string(r.body), id) {
		t.Errorf("the retry of an applied request does not say what was applied: %s", r.body)
	}
}

// A request still running past its lease cannot commit once a retry took
// its key over: exactly one of the two applies.
func TestIdempotencyTakeoverAppliesOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	w := e.world()
	path := "/api/v1/projects/" + w.projB + "/tokens"
	body := map[string]any{"name": "once", "role": "viewer"}

	// Hold inserts into api_tokens so the first request stalls mid-flight.
	hold, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback(ctx)
	if _, err := hold.Exec(ctx, "LOCK TABLE api_tokens IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	waitFor := func(what, query string) string {
		t.Helper()
		for range 500 {
			var s string
			if err := e.pool.QueryRow(ctx, query).Scan(&s); err == nil && s != "" {
				return s
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("timed out waiting for %s", what)
		return ""
	}
	results := make(chan *response, 2)
	go func() { results <- e.admin.do("POST", path, body, api.IdempotencyHeader, "slow") }()
	first := waitFor("the first claim", "SELECT claim::text FROM idempotency_keys WHERE key = 'slow'")
	if _, err := e.pool.Exec(ctx, "UPDATE idempotency_keys SET claimed_at = now() - interval '1 hour' WHERE key = 'slow'"); err != nil {
		t.Fatal(err)
	}
	go func() { results <- e.admin.do("POST", path, body, api.IdempotencyHeader, "slow") }()
	waitFor("the takeover", "SELECT claim::text FROM idempotency_keys WHERE key = 'slow' AND claim <> '"+first+"'")
	time.Sleep(100 * time.Millisecond) // let the retry reach the held insert
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	got := statuses([]*response{<-results, <-results})
	if got[201] != 1 || got[409] != 1 {
		t.Errorf("original and takeover: %v, want one 201 and one 409", got)
	}
	var n int
	if err := e.pool.QueryRow(ctx, "SELECT count(*) FROM api_tokens WHERE name = 'once'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d tokens created by one idempotent request", n)
	}
}

// Concurrent removals and demotions of owners never leave a project
// without one: in each of ten projects with two owners, one owner is
// removed and the other demoted at the same moment; exactly one of each
// pair may succeed.
func TestLastOwnerUnderConcurrency(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	ctx := context.Background()
	var admin string
	if err := e.pool.QueryRow(ctx, "SELECT id::text FROM users WHERE is_admin").Scan(&admin); err != nil {
		t.Fatal(err)
	}
	var projects []string
	for i := range 10 {
		// The administrator creating it is its first owner.
		id := e.admin.do("POST", "/api/v1/projects", map[string]any{"org_id": w.orgB, "name": fmt.Sprintf("owners-%d", i)}).want(201).str("id")
		e.admin.do("PUT", "/api/v1/projects/"+id+"/members/"+w.userB, map[string]any{"role": "owner"}).want(200)
		projects = append(projects, id)
	}
	// Widen the window between a change and the owner count, as a busy
	// database would, so the race is lost reliably rather than sometimes.
	if _, err := e.pool.Exec(ctx, `CREATE FUNCTION slow_member_change() RETURNS trigger LANGUAGE plpgsql
		AS $$ BEGIN PERFORM pg_sleep(0.2); RETURN NULL; END $$;
		CREATE TRIGGER slow_member_change AFTER UPDATE OR DELETE ON project_members
		FOR EACH ROW EXECUTE FUNCTION slow_member_change()`); err != nil {
		t.Fatal(err)
	}
	rs := race(2*len(projects), func(i int) *response {
		members := "/api/v1/projects/" + projects[i/2] + "/members/"
		if i%2 == 0 {
			return e.admin.do("DELETE", members+admin, nil)
		}
		return e.admin.do("PUT", members+w.userB, map[string]any{"role": "viewer"})
	})
	for j, id := range projects {
		a, b := rs[2*j].status, rs[2*j+1].status
		if ok := (a == 204) != (b == 200); !ok || (a != 204 && a != 409) || (b != 200 && b != 409) {
			t.Errorf("project %d: removal %d and demotion %d; want exactly one applied and the other 409", j, a, b)
		}
		var n int
		if err := e.pool.QueryRow(ctx, "SELECT count(*) FROM project_members WHERE project_id = $1 AND role = 'owner'", id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("project %d has %d owners after the race, want 1", j, n)
		}
	}
}

// A weak ETag never satisfies If-Match (RFC 9110 compares strongly).
func TestIfMatchIsStrong(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	c := e.tokenClient(w.ownerB)
	path := "/api/v1/projects/" + w.projB
	tag := c.do("GET", path, nil).want(200).header.Get("ETag")
	wantProblem(t, c.do("PATCH", path, map[string]any{"description": "x"}, "If-Match", "W/"+tag), http.StatusPreconditionFailed, "weak ETag")
	c.do("PATCH", path, map[string]any{"description": "x"}, "If-Match", tag).want(200)
}

// Headers a session sends that are not UTF-8 are refused with a 4xx.
func TestNonUTF8SessionHeaders(t *testing.T) {
	e := newEnv(t)
	a := e.admin
	wantProblem(t, a.do("POST", "/api/v1/orgs", map[string]any{"name": "x1"}, api.CSRFHeader, "\xff\xfe"), 403, "CSRF token")
	wantProblem(t, a.do("POST", "/api/v1/orgs", map[string]any{"name": "x2"}, api.IdempotencyHeader, "k\xff"), 400, "idempotency key")
	wantProblem(t, a.do("POST", "/api/v1/orgs", map[string]any{"name": "x3"}, api.IdempotencyHeader, "k\u00e9"), 400, "idempotency key")
	// A client's own request id lands in the audit log: it must not break it.
	a.do("POST", "/api/v1/orgs", map[string]any{"name": "x4"}, "X-Request-Id", "id-\xff\xfe").want(201)
	wantProblem(t, a.do("GET", "/api/v1/me", nil, "Authorization", "Bearer slc_\xff\xfe"), 401, "token")
	wantProblem(t, a.do("GET", "/api/v1/me", nil, "Authorization", "Bearer\xff slc_x"), 401, "scheme")
}
