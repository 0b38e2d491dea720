package opsserver_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/internal/opsserver"
	"github.com/sluicehq/sluice/internal/runtime"
)

// fakeStatus is a StatusSource whose answer the test changes.
type fakeStatus struct {
	mu  sync.Mutex
	sts []runtime.Status
}

func (f *fakeStatus) Status() []runtime.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]runtime.Status(nil), f.sts...)
}

func (f *fakeStatus) set(sts ...runtime.Status) {
	f.mu.Lock()
	f.sts = sts
	f.mu.Unlock()
}

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func newServer(t *testing.T) (*httptest.Server, *fakeStatus, *prometheus.Registry) {
	t.Helper()
	st := &fakeStatus{}
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(opsserver.New("", st, reg).Handler())
	t.Cleanup(srv.Close)
	return srv, st, reg
}

// /readyz gates traffic and rollouts: it must say not-ready while any
// pipeline is not running, and name each such pipeline with its error so an
// operator sees why without reading logs.
func TestReadyz(t *testing.T) {
	srv, st, _ := newServer(t)

	code, body := get(t, srv, "/readyz")
	if code != http.StatusOK || !strings.Contains(body, `"ready": true`) {
		t.Fatalf("no pipelines: %d %s, want 200 ready", code, body)
	}

	st.set(
		runtime.Status{Name: "a", Revision: "r1", State: runtime.Running},
		runtime.Status{Name: "b", Revision: "r2", State: runtime.Failed, Error: "operator panicked: boom"},
		runtime.Status{Name: "c", Revision: "r3", State: runtime.Waiting, Error: "input topic in does not exist yet"},
		runtime.Status{Name: "d", Revision: "r4", State: runtime.Starting},
	)
	code, body = get(t, srv, "/readyz")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("code %d, want 503", code)
	}
	var got opsserver.Readiness
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	want := []opsserver.NotReady{
		{Name: "b", Revision: "r2", State: runtime.Failed, Error: "operator panicked: boom"},
		{Name: "c", Revision: "r3", State: runtime.Waiting, Error: "input topic in does not exist yet"},
		{Name: "d", Revision: "r4", State: runtime.Starting},
	}
	if got.Ready || len(got.Pipelines) != len(want) {
		t.Fatalf("got %+v, want not ready with %+v", got, want)
	}
	for i := range want {
		if got.Pipelines[i] != want[i] {
			t.Errorf("pipeline %d: got %+v, want %+v", i, got.Pipelines[i], want[i])
		}
	}

	st.set(runtime.Status{Name: "a", State: runtime.Running}, runtime.Status{Name: "b", State: runtime.Running})
	if code, body := get(t, srv, "/readyz"); code != http.StatusOK {
		t.Fatalf("all running: %d %s", code, body)
	}
}

// While shutting down, the runner must stop looking ready even though its
// pipelines still run (they are finishing in-flight work), so that load
// balancers and rollouts move on; liveness stays green.
func TestDrain(t *testing.T) {
	st := &fakeStatus{}
	st.set(runtime.Status{Name: "a", State: runtime.Running})
	s := opsserver.New("", st, prometheus.NewRegistry())
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	if code, _ := get(t, srv, "/readyz"); code != http.StatusOK {
		t.Fatalf("before Drain: %d", code)
	}
	s.Drain()
	code, body := get(t, srv, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"draining": true`) {
		t.Fatalf("after Drain: %d %s", code, body)
	}
	if code, _ := get(t, srv, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz after Drain: %d", code)
	}
}

func TestHealthzStatusMetrics(t *testing.T) {
	srv, st, reg := newServer(t)
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_records_in_total", Help: "x"}, []string{"pipeline", "stage"})
	reg.MustRegister(c)
	c.WithLabelValues("p1", "0").Add(3)
	st.set(runtime.Status{Name: "p1", Revision: "abc", State: runtime.Running, Processed: 3, Partitions: []int32{0, 1}})

	if code, _ := get(t, srv, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	code, body := get(t, srv, "/status")
	var sts []runtime.Status
	if err := json.Unmarshal([]byte(body), &sts); code != http.StatusOK || err != nil {
		t.Fatalf("/status: %d %v %s", code, err, body)
	}
	if len(sts) != 1 || sts[0].Name != "p1" || sts[0].Processed != 3 || len(sts[0].Partitions) != 2 {
		t.Errorf("/status = %+v", sts)
	}
	code, body = get(t, srv, "/metrics")
	if code != http.StatusOK || !strings.Contains(body, `sluice_records_in_total{pipeline="p1",stage="0"} 3`) {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if code, _ := get(t, srv, "/nope"); code != http.StatusNotFound {
		t.Errorf("/nope: %d, want 404", code)
	}
}

// Run must serve until its context ends and then return nil promptly, so
// the runner's shutdown is not held up by its ops server.
func TestRunShutsDownGracefully(t *testing.T) {
	s := opsserver.New("127.0.0.1:0", &fakeStatus{}, prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := s.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
}

// A busy port is reported by Run, not swallowed.
func TestRunReportsListenError(t *testing.T) {
	s1 := opsserver.New("127.0.0.1:0", &fakeStatus{}, prometheus.NewRegistry())
	ln, err := s1.Listen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s2 := opsserver.New(ln.Addr().String(), &fakeStatus{}, prometheus.NewRegistry())
	if err := s2.Run(context.Background()); err == nil {
		t.Fatal("Run on a busy port returned nil")
	}
}
