package apiload_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/bench/apiload"
)

func getOp(name string, weight int, url string) apiload.Op {
	return apiload.Op{Name: name, Weight: weight, Request: func(ctx context.Context, _ int) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	}}
}

// TestOpenLoopCountsQueueing offers twice what a server that handles one
// request at a time, 10ms each, can serve: the generator must keep sending
// on schedule (it does not wait for responses), so requests queue and their
// latency, measured from the scheduled send time, grows far beyond the
// 10ms of service time that a closed-loop generator would report.
func TestOpenLoopCountsQueueing(t *testing.T) {
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		time.Sleep(10 * time.Millisecond)
		mu.Unlock()
	}))
	defer srv.Close()
	res, err := apiload.Load{Rate: 200, Duration: 500 * time.Millisecond, Mix: []apiload.Op{getOp("get", 1, srv.URL)}}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 100 || res.Measured != 100 || len(res.Latencies) != 100 {
		t.Fatalf("sent %d, measured %d, %d latencies; want 100 each", res.Sent, res.Measured, len(res.Latencies))
	}
	if res.Errors != 0 {
		t.Fatalf("%d errors: %v", res.Errors, res.FirstErrors)
	}
	// 100 requests take at least 1s to serve; the last was scheduled at
	// 0.495s, so it waited about 0.5s.
	if p99 := res.Percentile(0.99); p99 < 300*time.Millisecond {
		t.Errorf("p99 = %v, want the queueing (~500ms) included", p99)
	}
	if res.Achieved > 120 {
		t.Errorf("achieved %.0f req/s, more than the server's 100 req/s", res.Achieved)
	}
}

// TestErrorsAndWarmup checks that non-2xx responses are errors, counted
// per op and in the warm-up too, and that the warm-up is not measured.
func TestErrorsAndWarmup(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			http.Error(w, "nope", http.StatusConflict)
		}
	}))
	defer srv.Close()
	res, err := apiload.Load{Rate: 400, Warmup: 100 * time.Millisecond, Duration: 200 * time.Millisecond, Seed: 1,
		Mix: []apiload.Op{getOp("good", 3, srv.URL+"/good"), getOp("bad", 1, srv.URL+"/bad")}}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 120 || res.Measured != 80 || len(res.Latencies) != 80 {
		t.Fatalf("sent %d, measured %d, %d latencies; want 120, 80, 80", res.Sent, res.Measured, len(res.Latencies))
	}
	good, bad := res.Ops[0], res.Ops[1]
	if good.Errors != 0 || bad.Errors == 0 || res.Errors != bad.Errors {
		t.Fatalf("errors: good %d, bad %d, total %d", good.Errors, bad.Errors, res.Errors)
	}
	if good.Requests+bad.Requests != 80 || bad.Requests == 0 || good.Requests < bad.Requests {
		t.Errorf("measured requests: good %d, bad %d; want 80 in all, about 3:1", good.Requests, bad.Requests)
	}
	// The 40 warm-up requests had bad ones too (seed 1).
	if bad.Errors <= bad.Requests {
		t.Errorf("bad: %d errors for %d measured requests; want the warm-up's errors too", bad.Errors, bad.Requests)
	}
	if !strings.Contains(res.FirstErrors[0], "409") {
		t.Errorf("first error %q does not name the status", res.FirstErrors[0])
	}
}
