package agent_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/agentproto"
)

// controlPlane is the other end of agentproto, in the test: it registers
// runners with one-time bootstrap tokens, holds long-polls until the
// desired state changes, serves bundles and collects status reports. It
// is a protocol peer, written from agentproto's package doc, not a mock of
// the agent: the agent under test cannot tell it from the real one.
type controlPlane struct {
	t   *testing.T
	srv *httptest.Server

	mu            sync.Mutex
	bootstrap     map[string]bool   // unspent bootstrap tokens
	creds         map[string]string // live credential -> runner id
	registrations int
	desired       agentproto.Assignments
	bundles       map[string][]byte // served at BundlesPath+digest
	reports       []agentproto.StatusReport
	changed       chan struct{} // closed when desired or reports change
	quit          chan struct{} // closed by stop: held polls end
}

const bootstrapToken = "slb_test-bootstrap-token-0123456789"

func newControlPlane(t *testing.T) *controlPlane {
	cp := &controlPlane{
		t:         t,
		bootstrap: map[string]bool{bootstrapToken: true},
		creds:     map[string]string{},
		bundles:   map[string][]byte{},
		changed:   make(chan struct{}),
		quit:      make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+agentproto.RegisterPath, cp.register)
	mux.HandleFunc("GET "+agentproto.AssignmentsPath, cp.assignments)
	mux.HandleFunc("GET "+agentproto.BundlesPath+"{digest}", cp.bundle)
	mux.HandleFunc("POST "+agentproto.StatusPath, cp.status)
	cp.srv = httptest.NewServer(mux)
	t.Cleanup(cp.stop)
	return cp
}

func (cp *controlPlane) URL() string { return cp.srv.URL }

// stop takes the control plane away: held polls end, the listener closes
// and every later call is refused.
func (cp *controlPlane) stop() {
	cp.mu.Lock()
	select {
	case <-cp.quit:
	default:
		close(cp.quit)
	}
	cp.mu.Unlock()
	cp.srv.CloseClientConnections()
	cp.srv.Close()
}

func problem(w http.ResponseWriter, code int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"title": http.StatusText(code), "status": code, "detail": detail})
}

func bearer(r *http.Request) string {
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

// notify wakes whoever waits on a change; the caller holds mu.
func (cp *controlPlane) notify() {
	close(cp.changed)
	cp.changed = make(chan struct{})
}

func (cp *controlPlane) register(w http.ResponseWriter, r *http.Request) {
	var req agentproto.RegisterRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Name == "" {
		problem(w, http.StatusBadRequest, "bad registration")
		return
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	tok := bearer(r)
	if !cp.bootstrap[tok] {
		problem(w, http.StatusUnauthorized, "unknown or spent bootstrap token")
		return
	}
	delete(cp.bootstrap, tok) // spent
	cp.registrations++
	id := fmt.Sprintf("runner-%d", cp.registrations)
	cred := fmt.Sprintf("%stest-credential-%d", agentproto.CredentialPrefix, cp.registrations)
	cp.creds[cred] = id
	_ = json.NewEncoder(w).Encode(agentproto.RegisterResponse{RunnerID: id, FleetID: "fleet-1", Credential: cred})
}

// authorized checks the runner credential; the caller holds mu.
func (cp *controlPlane) authorized(w http.ResponseWriter, r *http.Request) bool {
	if _, ok := cp.creds[bearer(r)]; !ok {
		problem(w, http.StatusUnauthorized, "unknown or revoked runner credential")
		return false
	}
	return true
}

func (cp *controlPlane) assignments(w http.ResponseWriter, r *http.Request) {
	gen, err := strconv.ParseInt(r.URL.Query().Get("generation"), 10, 64)
	wait, werr := time.ParseDuration(r.URL.Query().Get("wait"))
	if err != nil || werr != nil || wait <= 0 || wait > agentproto.MaxWait {
		problem(w, http.StatusBadRequest, "bad generation or wait")
		return
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		cp.mu.Lock()
		if !cp.authorized(w, r) {
			cp.mu.Unlock()
			return
		}
		cur, changed := cp.desired, cp.changed
		cp.mu.Unlock()
		if gen == 0 || cur.Generation != gen {
			_ = json.NewEncoder(w).Encode(cur)
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			_ = json.NewEncoder(w).Encode(cur)
			return
		case <-cp.quit:
			problem(w, http.StatusServiceUnavailable, "shutting down")
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (cp *controlPlane) bundle(w http.ResponseWriter, r *http.Request) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if !cp.authorized(w, r) {
		return
	}
	data, ok := cp.bundles[r.PathValue("digest")]
	if !ok {
		problem(w, http.StatusNotFound, "no such bundle for this fleet")
		return
	}
	_, _ = w.Write(data)
}

func (cp *controlPlane) status(w http.ResponseWriter, r *http.Request) {
	var rep agentproto.StatusReport
	if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
		problem(w, http.StatusBadRequest, err.Error())
		return
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if !cp.authorized(w, r) {
		return
	}
	cp.reports = append(cp.reports, rep)
	cp.notify()
	w.WriteHeader(http.StatusNoContent)
}

// assign publishes a new desired state (the next generation) with the
// given bundles, each served as it is; tampered maps a digest to the
// bytes served instead of the bundle's own.
func (cp *controlPlane) assign(bundles []testBundle, tampered map[string][]byte) agentproto.Assignments {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	next := agentproto.Assignments{Generation: cp.desired.Generation + 1, Pipelines: []agentproto.Assignment{}}
	for _, b := range bundles {
		next.Pipelines = append(next.Pipelines, b.assignment)
		cp.bundles[b.assignment.Digest] = b.data
		if alt, ok := tampered[b.assignment.Digest]; ok {
			cp.bundles[b.assignment.Digest] = alt
		}
	}
	cp.desired = next
	cp.notify()
	return next
}

// revoke makes every runner credential unknown, as deleting the runner
// does.
func (cp *controlPlane) revoke() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.creds = map[string]string{}
	cp.notify()
}

func (cp *controlPlane) registered() int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.registrations
}

// waitReport waits for a status report that ok accepts and returns it.
func (cp *controlPlane) waitReport(timeout time.Duration, what string, ok func(agentproto.StatusReport) bool) agentproto.StatusReport {
	cp.t.Helper()
	deadline := time.After(timeout)
	seen := 0
	for {
		cp.mu.Lock()
		reports, changed := cp.reports[seen:], cp.changed
		seen = len(cp.reports)
		cp.mu.Unlock()
		for _, r := range reports {
			if ok(r) {
				return r
			}
		}
		select {
		case <-changed:
		case <-deadline:
			cp.mu.Lock()
			last := "none"
			if n := len(cp.reports); n > 0 {
				b, _ := json.Marshal(cp.reports[n-1])
				last = string(b)
			}
			cp.mu.Unlock()
			cp.t.Fatalf("no status report with %s after %v; last: %s", what, timeout, last)
		}
	}
}

// testBundle is a bundle and the assignment that names it.
type testBundle struct {
	assignment agentproto.Assignment
	data       []byte
}

func makeBundle(t *testing.T, revision int, files map[string]string) testBundle {
	t.Helper()
	b := &agentproto.Bundle{Pipeline: "tagger", Path: "pipelines/tagger.yaml", Commit: fmt.Sprintf("c0ffee%02d", revision), Files: map[string][]byte{}}
	for name, content := range files {
		b.Files[name] = []byte(content)
	}
	data, digest, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return testBundle{
		assignment: agentproto.Assignment{Name: "tagger", PipelineID: "pl-1", Revision: revision, Digest: digest, Group: "sluice-test-tagger", Commit: b.Commit},
		data:       data,
	}
}
