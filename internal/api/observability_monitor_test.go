package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/catalog/operators/all"
	"github.com/sluicehq/sluice/gitops/agentserver"
	"github.com/sluicehq/sluice/gitops/deploy"
	"github.com/sluicehq/sluice/internal/agent"
	"github.com/sluicehq/sluice/internal/kafkatest"
	"github.com/sluicehq/sluice/internal/pgnotify"
	"github.com/sluicehq/sluice/internal/runtime"
	"github.com/sluicehq/sluice/observability"
)

// healthView is the part of GET .../health these tests read.
type healthView struct {
	Status      string `json:"status"`
	Source      string `json:"source"`
	Stale       bool   `json:"stale"`
	LiveRunners int    `json:"live_runners"`
	EventAgeMs  int64  `json:"event_age_ms"`
	Stages      []struct {
		Lag          int64 `json:"lag"`
		MaxTimeLagMs int64 `json:"max_time_lag_ms"`
	} `json:"stages"`
}

// A pipeline whose runners are all gone still shows its lag, growing while
// producers continue, through the API: the fleet's monitor runner samples
// its consumer group. Runner "worker" runs pipeline orders and, registered
// first, is the fleet's monitor; runner "watcher" cannot run orders (its
// catalog lacks the filter operator), so once the worker stops, no runner
// runs the pipeline, and the watcher, now the oldest live runner, becomes
// the monitor at its next poll. The view then comes from it (source
// "monitor"), its lag and event age grow with the records produced and
// the wall time, and the status is STOPPED (Burrow: no commits for longer
// than the window spans). This is real agents, the real agent server and
// API over one database, on kfake.
func TestLagAPIMonitorRunner(t *testing.T) {
	e := newEnv(t)
	w := e.world()
	ctx := context.Background()
	brokers := kafkatest.Brokers(t)
	kafkatest.CreateTopic(t, brokers, "orders", 2)
	kafkatest.CreateTopic(t, brokers, "big-orders", 2)

	store := deploy.New(e.pool, all.New())
	listener := pgnotify.New(e.pool, deploy.Channel, nil)
	lctx, lcancel := context.WithCancel(ctx)
	t.Cleanup(lcancel)
	go func() { _ = listener.Run(lctx) }()
	as := httptest.NewServer(agentserver.New(store, listener, nil))
	t.Cleanup(as.Close)
	var token string
	if err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		bt, err := deploy.MintBootstrapToken(ctx, tx, uuid.MustParse(w.fleetB), 2, time.Hour, nil)
		token = bt.Secret
		return err
	}); err != nil {
		t.Fatal(err)
	}

	// Producers run throughout: 40 records a second.
	var produced atomic.Int64
	pctx, pcancel := context.WithCancel(ctx)
	t.Cleanup(pcancel)
	go func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			return
		}
		defer cl.Close()
		for i := 0; pctx.Err() == nil; i++ {
			cl.Produce(pctx, &kgo.Record{Topic: "orders", Key: fmt.Appendf(nil, "k%d", i%10), Value: fmt.Appendf(nil, `{"amount": %d}`, i%30)}, func(*kgo.Record, error) {})
			produced.Add(1)
			time.Sleep(25 * time.Millisecond)
		}
	}()

	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agents' log:\n%s", logs.String())
		}
	})
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	start := func(name string, reg agent.Opt) (stop func()) {
		rt, err := runtime.New(runtime.Brokers(brokers...), runtime.CommitInterval(50*time.Millisecond), runtime.SessionTimeout(time.Second),
			runtime.RetryBackoff(50*time.Millisecond, time.Second), runtime.StateDir(t.TempDir()), runtime.Logger(log.With("runner", name)),
			runtime.LagInterval(300*time.Millisecond), runtime.LagWindow(4))
		if err != nil {
			t.Fatal(err)
		}
		a, err := agent.New(agent.ControlPlane(as.URL), agent.AllowHTTP(), agent.BootstrapToken(token), agent.DataDir(t.TempDir()), reg,
			agent.Runtime(rt), agent.Logger(log.With("runner", name)), agent.Name(name), agent.PollWait(time.Second),
			agent.HeartbeatInterval(200*time.Millisecond), agent.RetryBackoff(20*time.Millisecond, 200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		actx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = a.Run(actx) }()
		stopped := false
		stop = func() {
			if stopped {
				return
			}
			stopped = true
			cancel()
			<-done
			cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
			defer ccancel()
			_ = rt.Close(cctx)
		}
		t.Cleanup(stop)
		return stop
	}
	c := e.tokenClient(w.viewerB)
	base := "/api/v1/projects/" + w.projB + "/pipelines/" + w.pipeB
	health := func() healthView {
		var h healthView
		if err := json.Unmarshal(c.do("GET", base+"/health", nil).want(200).body, &h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	waitHealth := func(what string, timeout time.Duration, ok func(healthView) bool) healthView {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			h := health()
			if ok(h) {
				return h
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s: health %+v", what, h)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	stopWorker := start("worker", agent.Registry(all.New()))
	time.Sleep(50 * time.Millisecond) // registered_at orders the runners
	start("watcher", agent.Registry(all.New().Only("map")))
	waitHealth("the worker's view", 30*time.Second, func(h healthView) bool {
		return h.Source == "runners" && h.LiveRunners == 1 && h.Status == "OK"
	})
	worker, err := store.MonitorOf(ctx, uuid.MustParse(w.fleetB))
	if err != nil {
		t.Fatal(err)
	}

	// The worker stops; the control plane stops counting it as live.
	stopWorker()
	if _, err := e.pool.Exec(ctx, `UPDATE runners SET last_seen_at = now() - interval '5 minutes' WHERE id = $1`, worker); err != nil {
		t.Fatal(err)
	}
	h1 := waitHealth("the monitor's view, STOPPED", 30*time.Second, func(h healthView) bool {
		return h.Source == "monitor" && !h.Stale && h.LiveRunners == 0 && h.Status == "STOPPED" && len(h.Stages) == 1 && h.Stages[0].Lag > 0
	})
	if m, err := store.MonitorOf(ctx, uuid.MustParse(w.fleetB)); err != nil || m == worker || m == uuid.Nil {
		t.Fatalf("monitor %s (%v): want the watcher", m, err)
	}
	n1 := produced.Load()
	h2 := waitHealth("lag and event age growing", 30*time.Second, func(h healthView) bool {
		return h.Source == "monitor" && h.Status == "STOPPED" && h.Stages[0].Lag > h1.Stages[0].Lag+20 && h.EventAgeMs >= h1.EventAgeMs+1500
	})
	if produced.Load() <= n1 {
		t.Fatal("the producers stopped")
	}
	// The monitor's reports keep the history going: one sample per 10 s
	// bucket, so the next bucket's is STOPPED.
	var lag struct {
		Source  string                     `json:"source"`
		Current *observability.PipelineLag `json:"current"`
		History []struct {
			Status string `json:"status"`
		} `json:"history"`
	}
	deadline := time.Now().Add(25 * time.Second)
	for {
		if err := json.Unmarshal(c.do("GET", base+"/lag", nil).want(200).body, &lag); err != nil {
			t.Fatal(err)
		}
		if lag.Source != "monitor" || lag.Current == nil || lag.Current.Source != observability.SourceMonitor || lag.Current.Stages[0].Topic != "orders" {
			t.Fatalf("lag %+v", lag)
		}
		if n := len(lag.History); n > 0 && lag.History[n-1].Status == "STOPPED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the history has no STOPPED sample from the monitor's reports: %+v", lag.History)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("monitor view: lag %d -> %d records, event age %d -> %d ms", h1.Stages[0].Lag, h2.Stages[0].Lag, h1.EventAgeMs, h2.EventAgeMs)
}
