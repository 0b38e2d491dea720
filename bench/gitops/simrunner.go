package gitops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/internal/agentproto"
)

// SimRunner speaks agentproto like `runner agent` does but runs nothing:
// it registers with a bootstrap token, long-polls its assignments,
// downloads and verifies the bundles of each new generation, and reports
// every assigned pipeline as running after each new generation and at
// every heartbeat. It stands in for a runner where only the control
// plane's side is measured.
type SimRunner struct {
	Name              string
	RunnerID, FleetID string

	base  string
	http  *http.Client
	cred  string
	stats *SimStats

	mu       sync.Mutex
	gen      int64
	assigned []agentproto.Assignment
}

// SimStats counts what simulated runners did. It is safe for concurrent
// use; many runners share one.
type SimStats struct {
	Polls      atomic.Int64 // long-polls answered
	Changes    atomic.Int64 // answers that brought a new generation
	Bundles    atomic.Int64 // bundles downloaded and verified
	Heartbeats atomic.Int64 // status reports posted
	Errors     atomic.Int64 // failed calls (not counting those cut by the end of the run)
	Held       atomic.Int64 // long-polls in flight now

	mu       sync.Mutex
	firstErr error
}

// FirstErr is the first failure counted in Errors, or nil.
func (s *SimStats) FirstErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstErr
}

func (s *SimStats) fail(err error) {
	s.Errors.Add(1)
	s.mu.Lock()
	if s.firstErr == nil {
		s.firstErr = err
	}
	s.mu.Unlock()
}

// SimClient returns an HTTP client for many simulated runners: keep-alive
// connections without a per-host cap, as that many separate runners
// would hold.
func SimClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
}

// RegisterSim registers a simulated runner named name at the control
// plane base ("http://127.0.0.1:8080") with a bootstrap token.
func RegisterSim(ctx context.Context, client *http.Client, base, bootstrap, name string, stats *SimStats) (*SimRunner, error) {
	r := &SimRunner{Name: name, base: base, http: client, stats: stats}
	var resp agentproto.RegisterResponse
	if err := r.call(ctx, http.MethodPost, agentproto.RegisterPath, bootstrap,
		agentproto.RegisterRequest{Name: name, Version: "bench"}, &resp, nil); err != nil {
		return nil, fmt.Errorf("register %s: %w", name, err)
	}
	if resp.Credential == "" {
		return nil, fmt.Errorf("register %s: no credential in the answer", name)
	}
	r.RunnerID, r.FleetID, r.cred = resp.RunnerID, resp.FleetID, resp.Credential
	return r, nil
}

// SimConfig is how a simulated runner behaves.
type SimConfig struct {
	// Wait is the long-poll's wait parameter (the agent's default is 30s).
	Wait time.Duration
	// Heartbeat is the interval of status reports
	// (agentproto.HeartbeatInterval), the first one Phase after Run
	// starts, so that runners started together spread their reports as
	// runners started at different times do.
	Heartbeat, Phase time.Duration
}

// Generation is the generation the runner has applied.
func (r *SimRunner) Generation() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gen
}

// Run follows the assignments and posts heartbeats until ctx ends.
func (r *SimRunner) Run(ctx context.Context, cfg SimConfig) {
	var wg sync.WaitGroup
	wg.Go(func() { r.heartbeats(ctx, cfg) })
	defer wg.Wait()
	for ctx.Err() == nil {
		gen := r.Generation()
		as, err := r.poll(ctx, gen, cfg.Wait)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.stats.fail(err)
			sleep(ctx, time.Second)
			continue
		}
		r.stats.Polls.Add(1)
		if as.Generation == gen && gen != 0 {
			continue
		}
		r.stats.Changes.Add(1)
		if err := r.apply(ctx, as); err != nil {
			if ctx.Err() == nil {
				r.stats.fail(err)
				sleep(ctx, time.Second)
			}
			continue
		}
		r.report(ctx)
	}
}

func (r *SimRunner) poll(ctx context.Context, gen int64, wait time.Duration) (*agentproto.Assignments, error) {
	r.stats.Held.Add(1)
	defer r.stats.Held.Add(-1)
	ctx, cancel := context.WithTimeout(ctx, wait+15*time.Second)
	defer cancel()
	q := url.Values{"generation": {strconv.FormatInt(gen, 10)}, "wait": {wait.String()}}
	var as agentproto.Assignments
	if err := r.call(ctx, http.MethodGet, agentproto.AssignmentsPath+"?"+q.Encode(), r.cred, nil, &as, nil); err != nil {
		return nil, fmt.Errorf("poll: %w", err)
	}
	return &as, nil
}

// apply downloads and verifies the bundles the runner does not have yet,
// as the agent does before it runs them.
func (r *SimRunner) apply(ctx context.Context, as *agentproto.Assignments) error {
	r.mu.Lock()
	have := map[string]bool{}
	for _, a := range r.assigned {
		have[a.Digest] = true
	}
	r.mu.Unlock()
	for _, a := range as.Pipelines {
		if have[a.Digest] {
			continue
		}
		var data []byte
		if err := r.call(ctx, http.MethodGet, agentproto.BundlesPath+a.Digest, r.cred, nil, nil, &data); err != nil {
			return fmt.Errorf("bundle %s: %w", a.Digest, err)
		}
		if _, err := agentproto.DecodeBundle(data, a.Digest); err != nil {
			return err
		}
		r.stats.Bundles.Add(1)
	}
	r.mu.Lock()
	r.gen, r.assigned = as.Generation, as.Pipelines
	r.mu.Unlock()
	return nil
}

func (r *SimRunner) heartbeats(ctx context.Context, cfg SimConfig) {
	if !sleep(ctx, cfg.Phase) {
		return
	}
	t := time.NewTicker(cfg.Heartbeat)
	defer t.Stop()
	for {
		r.report(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// report posts every assigned pipeline as running on 2 partitions.
func (r *SimRunner) report(ctx context.Context) {
	r.mu.Lock()
	rep := agentproto.StatusReport{Generation: r.gen, Version: "bench", Pipelines: []agentproto.PipelineStatus{}}
	for _, a := range r.assigned {
		rep.Pipelines = append(rep.Pipelines, agentproto.PipelineStatus{Name: a.Name, Digest: a.Digest, State: "running",
			Partitions: []int32{0, 1}, Processed: 1000, Since: time.Now().Add(-time.Minute)})
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err := r.call(ctx, http.MethodPost, agentproto.StatusPath, r.cred, rep, nil, nil)
	switch {
	case err == nil:
		r.stats.Heartbeats.Add(1)
	case ctx.Err() == nil:
		r.stats.fail(fmt.Errorf("status: %w", err))
	}
}

// call makes one agentproto call with token; in is a JSON body, out
// receives a JSON answer, raw the answer's bytes.
func (r *SimRunner) call(ctx context.Context, method, path, token string, in, out any, raw *[]byte) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if raw != nil {
		*raw = b
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

// sleep waits d or until ctx ends, and reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
