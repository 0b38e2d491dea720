// Package agentserver serves the control plane's side of the runner
// protocol (internal/agentproto): registration with a bootstrap token,
// long-polled desired state woken by PostgreSQL notifications, bundles by
// digest, and status reports. Runner credentials are scoped to one fleet:
// every read goes through gitops/deploy with the runner's fleet, so a
// runner can never see another fleet's assignments or bundles.
package agentserver

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/gitops/deploy"
	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/internal/pgnotify"
)

// Server is the agent API. It is an http.Handler for the paths of
// agentproto.
type Server struct {
	store    *deploy.Store
	listener *pgnotify.Listener
	log      *slog.Logger
	mux      *http.ServeMux
}

// New returns the agent API over store, woken by listener (which must be
// listening on deploy.Channel).
func New(store *deploy.Store, listener *pgnotify.Listener, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{store: store, listener: listener, log: log, mux: http.NewServeMux()}
	s.mux.HandleFunc("POST "+agentproto.RegisterPath, s.register)
	s.mux.HandleFunc("GET "+agentproto.AssignmentsPath, s.assignments)
	s.mux.HandleFunc("GET "+agentproto.BundlesPath+"{digest}", s.bundle)
	s.mux.HandleFunc("POST "+agentproto.StatusPath, s.status)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// problem writes an application/problem+json error.
func problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail})
}

func bearer(r *http.Request) string {
	scheme, secret, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(secret)
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, deploy.ErrBadBootstrap), errors.Is(err, deploy.ErrBadCredential):
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice-runner"`)
		problem(w, http.StatusUnauthorized, err.Error())
	case errors.Is(err, deploy.ErrNoBundle):
		problem(w, http.StatusNotFound, err.Error())
	case r.Context().Err() != nil:
		// The runner went away; nobody reads the answer.
	default:
		s.log.Error("agent API", "path", r.URL.Path, "err", err)
		problem(w, http.StatusInternalServerError, "internal error; the control plane's log has the details")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var req agentproto.RegisterRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10)).Decode(&req); err != nil {
		problem(w, http.StatusBadRequest, "the body must be a JSON registration: "+err.Error())
		return
	}
	resp, err := s.store.Register(r.Context(), bearer(r), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("runner registered", "runner", resp.RunnerID, "fleet", resp.FleetID, "name", req.Name)
	writeJSON(w, http.StatusCreated, resp)
}

func (s *Server) runner(w http.ResponseWriter, r *http.Request) (deploy.Runner, bool) {
	rn, err := s.store.Authenticate(r.Context(), bearer(r))
	if err != nil {
		s.fail(w, r, err)
		return rn, false
	}
	return rn, true
}

// assignments answers at once when the runner's generation is stale, and
// otherwise holds the request until the fleet's desired state changes or
// the wait runs out.
func (s *Server) assignments(w http.ResponseWriter, r *http.Request) {
	rn, ok := s.runner(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	have, err := strconv.ParseInt(q.Get("generation"), 10, 64)
	if q.Get("generation") != "" && err != nil {
		problem(w, http.StatusBadRequest, "generation must be an integer")
		return
	}
	wait := 30 * time.Second
	if v := q.Get("wait"); v != "" {
		if wait, err = time.ParseDuration(v); err != nil || wait < 0 {
			problem(w, http.StatusBadRequest, "wait must be a duration like 30s")
			return
		}
	}
	wait = min(wait, agentproto.MaxWait)
	// Long polls outlive the server's write timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + 10*time.Second))
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	// Replay requests are not part of the generation: a change of the
	// runner's open requests answers the poll too.
	replays := ""
	for first := true; ; first = false {
		// Wait first, then read: a change between the two still wakes us.
		woken, stop := s.listener.Wait(rn.FleetID.String())
		a, err := s.store.Assignments(r.Context(), rn)
		if err != nil {
			stop()
			s.fail(w, r, err)
			return
		}
		ids := replayIDs(a)
		if first {
			replays = ids
		}
		if a.Generation != have || have == 0 || ids != replays {
			stop()
			writeJSON(w, http.StatusOK, a)
			return
		}
		select {
		case <-woken:
		case <-ctx.Done():
			stop()
			if r.Context().Err() != nil {
				return
			}
			writeJSON(w, http.StatusOK, a)
			return
		}
	}
}

// replayIDs lists the ids of a's replay requests, to tell a change.
func replayIDs(a agentproto.Assignments) string {
	var b strings.Builder
	for _, q := range a.Replays {
		b.WriteString(q.ID)
		b.WriteByte(',')
	}
	return b.String()
}

func (s *Server) bundle(w http.ResponseWriter, r *http.Request) {
	rn, ok := s.runner(w, r)
	if !ok {
		return
	}
	data, err := s.store.Bundle(r.Context(), rn, r.PathValue("digest"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	_, _ = w.Write(data)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	rn, ok := s.runner(w, r)
	if !ok {
		return
	}
	var rep agentproto.StatusReport
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, deploy.MaxReportBytes)).Decode(&rep); err != nil {
		problem(w, http.StatusBadRequest, "the body must be a JSON status report of at most 1 MiB: "+err.Error())
		return
	}
	if err := s.store.Report(r.Context(), rn, rep); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
