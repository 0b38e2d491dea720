// Package opsserver serves a runner's operational endpoints over HTTP:
//
//	GET /metrics   Prometheus metrics of the given registry
//	GET /healthz   200 while the process is up
//	GET /readyz    200 when every pipeline is running; otherwise 503 with
//	               {"ready":false,"pipelines":[...]} naming each pipeline
//	               that is starting, waiting or failed, with its error;
//	               503 with "draining":true once Drain was called
//	GET /status    every pipeline's status as JSON
package opsserver

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/internal/runtime"
)

// StatusSource reports the pipelines' statuses; *runtime.Runtime is one.
type StatusSource interface {
	Status() []runtime.Status
}

// Server is the ops HTTP server. Create it with New; serve with Run.
type Server struct {
	addr     string
	status   StatusSource
	gatherer prometheus.Gatherer
	log      *slog.Logger
	grace    time.Duration
	draining atomic.Bool
}

// Opt configures a Server.
type Opt func(*Server)

// Logger sets the logger (default: discard).
func Logger(l *slog.Logger) Opt { return func(s *Server) { s.log = l } }

// ShutdownGrace bounds how long Run waits for in-flight requests after its
// context ends (default 5s).
func ShutdownGrace(d time.Duration) Opt { return func(s *Server) { s.grace = d } }

// New returns a server for addr (host:port) reporting status and serving
// reg's metrics (and the Go and process collectors if reg holds them).
func New(addr string, status StatusSource, reg *prometheus.Registry, opts ...Opt) *Server {
	s := &Server{addr: addr, status: status, gatherer: reg, log: slog.New(slog.DiscardHandler), grace: 5 * time.Second}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Handler returns the router, for tests and for mounting elsewhere.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{ErrorLog: slogErrorLog{s.log}}))
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	r.Get("/readyz", s.readyz)
	r.Get("/status", s.statusz)
	return r
}

// Drain makes /readyz answer 503 from now on: the process is shutting down
// and should get no new work, while /healthz, /metrics and /status go on.
func (s *Server) Drain() { s.draining.Store(true) }

// Readiness is the /readyz body.
type Readiness struct {
	Ready bool `json:"ready"`
	// Draining is set while the runner shuts down.
	Draining bool `json:"draining,omitempty"`
	// Pipelines lists the pipelines that are not running.
	Pipelines []NotReady `json:"pipelines"`
}

// NotReady is a pipeline that holds readiness back.
type NotReady struct {
	Name     string        `json:"name"`
	Revision string        `json:"revision"`
	State    runtime.State `json:"state"`
	Error    string        `json:"error,omitempty"`
}

// Ready computes readiness from statuses: ready when every pipeline runs.
// No pipelines at all is ready (there is nothing to wait for).
func Ready(sts []runtime.Status) Readiness {
	r := Readiness{Ready: true, Pipelines: []NotReady{}}
	for _, st := range sts {
		if st.State == runtime.Running {
			continue
		}
		r.Ready = false
		r.Pipelines = append(r.Pipelines, NotReady{Name: st.Name, Revision: st.Revision, State: st.State, Error: st.Error})
	}
	return r
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	r := Ready(s.status.Status())
	if s.draining.Load() {
		r.Ready, r.Draining = false, true
	}
	code := http.StatusOK
	if !r.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, r)
}

func (s *Server) statusz(w http.ResponseWriter, _ *http.Request) {
	sts := s.status.Status()
	if sts == nil {
		sts = []runtime.Status{}
	}
	writeJSON(w, http.StatusOK, sts)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Listen opens the server's address. Run calls it; callers that need the
// bound address first (port 0) call it themselves and pass the listener to
// Serve.
func (s *Server) Listen(ctx context.Context) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", s.addr)
}

// Run listens and serves until ctx ends, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	ln, err := s.Listen(ctx)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then stops accepting and waits up to
// the shutdown grace for in-flight requests. It returns nil after a clean
// shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// slogErrorLog adapts slog to promhttp's error logger.
type slogErrorLog struct{ l *slog.Logger }

func (e slogErrorLog) Println(v ...any) { e.l.Error("serving metrics", "err", v) }
