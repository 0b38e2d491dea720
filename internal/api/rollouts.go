package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/gitops/deploy"
	"github.com/sluicehq/sluice/gitops/rollout"
	"github.com/sluicehq/sluice/internal/agentproto"
)

// runnerBody is a registered runner of a fleet and what it last reported.
type runnerBody struct {
	ID           uuid.UUID `json:"id"`
	FleetID      uuid.UUID `json:"fleet_id"`
	Name         string    `json:"name"`
	Version      string    `json:"version"`
	RegisteredAt time.Time `json:"registered_at"`
	LastSeenAt   time.Time `json:"last_seen_at"`
	// Live is true when the runner reported within three heartbeats.
	Live bool `json:"live"`
	// Generation is the desired-state generation it has applied.
	Generation int64                   `json:"generation"`
	Report     agentproto.StatusReport `json:"report"`
	Revoked    bool                    `json:"revoked"`
}

const runnerColumns = `u.id, u.fleet_id, u.name, u.version, u.registered_at, u.last_seen_at,
	u.last_seen_at > now() - interval '30 seconds' AND u.revoked_at IS NULL, u.generation, u.report, u.revoked_at IS NOT NULL`

func (b *runnerBody) scanDest() []any {
	return []any{&b.ID, &b.FleetID, &b.Name, &b.Version, &b.RegisteredAt, &b.LastSeenAt, &b.Live, &b.Generation, &b.Report, &b.Revoked}
}

type createBootstrapTokenRequest struct {
	// Uses is how many runners the token may register (default 1).
	Uses *int `json:"uses"`
	// TTL is how long it is valid, as a Go duration (default 1h, at most 24h).
	TTL string `json:"ttl"`
}

func (b *createBootstrapTokenRequest) validate() []FieldError {
	var errs []FieldError
	if b.Uses != nil && (*b.Uses < 1 || *b.Uses > maxRunners) {
		errs = append(errs, FieldError{Field: "uses", Detail: "must be from 1 to 1000"})
	}
	if b.TTL != "" {
		if d, err := time.ParseDuration(b.TTL); err != nil || d <= 0 || d > 24*time.Hour {
			errs = append(errs, FieldError{Field: "ttl", Detail: "must be a duration like 1h, at most 24h"})
		}
	}
	return errs
}

// rolloutBody is a rollout of a commit (or an API change) on one fleet.
type rolloutBody struct {
	ID         uuid.UUID  `json:"id"`
	ProjectID  uuid.UUID  `json:"project_id"`
	FleetID    uuid.UUID  `json:"fleet_id"`
	Fleet      string     `json:"fleet"`
	Commit     string     `json:"commit,omitempty"`
	FromCommit string     `json:"from_commit,omitempty"`
	Message    string     `json:"message,omitempty"`
	Strategy   string     `json:"strategy"`
	Phase      string     `json:"phase"`
	Status     string     `json:"status"`
	Reason     string     `json:"reason,omitempty"`
	Paused     bool       `json:"paused"`
	Promoted   []string   `json:"promoted_runners"`
	Revert     string     `json:"revert_commit,omitempty"`
	Pipelines  []string   `json:"pipelines"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

const rolloutColumns = `ro.id, ro.project_id, ro.fleet_id, f.name, ro.commit_sha, ro.from_commit, ro.message, ro.strategy, ro.phase, ro.status,
	ro.reason, ro.paused, (SELECT coalesce(array_agg(u.name ORDER BY u.name), '{}') FROM runners u WHERE u.id = ANY(ro.promoted)),
	ro.revert_commit, (SELECT coalesce(array_agg(p.name ORDER BY p.name), '{}') FROM rollout_items ri JOIN pipelines p ON p.id = ri.pipeline_id WHERE ri.rollout_id = ro.id),
	ro.created_at, ro.updated_at, ro.finished_at`

func (b *rolloutBody) scanDest() []any {
	return []any{&b.ID, &b.ProjectID, &b.FleetID, &b.Fleet, &b.Commit, &b.FromCommit, &b.Message, &b.Strategy, &b.Phase, &b.Status,
		&b.Reason, &b.Paused, &b.Promoted, &b.Revert, &b.Pipelines, &b.CreatedAt, &b.UpdatedAt, &b.FinishedAt}
}

// rolloutEventBody is one line of a rollout's history.
type rolloutEventBody struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Message string    `json:"message"`
}

type rollbackRequest struct {
	// Reason is recorded in the rollout and the revert commit.
	Reason string `json:"reason"`
}

func (b *rollbackRequest) validate() []FieldError { return checkText("reason", b.Reason, 2000) }

func (s *Server) rolloutResource() resource {
	return resource{prefix: "/projects/{projectID}", tag: "rollouts", routes: []route{
		{method: http.MethodGet, path: "/fleets/{fleetID}/runners", op: "listRunners", summary: "List a fleet's registered runners with their last status report",
			access: inProject, role: "viewer", resp: runnerBody{}, list: true, handle: s.listRunners},
		{method: http.MethodDelete, path: "/fleets/{fleetID}/runners/{runnerID}", op: "revokeRunner", summary: "Revoke a runner's credential; it keeps running its cached pipelines but gets no new ones",
			access: inProject, role: "owner", handle: s.revokeRunner},
		{method: http.MethodPost, path: "/fleets/{fleetID}/bootstrap-tokens", op: "createBootstrapToken", summary: "Mint a short-lived token that registers runners in the fleet (shown once)",
			access: inProject, role: "owner", body: createBootstrapTokenRequest{}, resp: deploy.BootstrapToken{}, status: http.StatusCreated, handle: s.createBootstrapToken},
		{method: http.MethodGet, path: "/rollouts", op: "listRollouts", summary: "List the project's rollouts, oldest first",
			access: inProject, role: "viewer", resp: rolloutBody{}, list: true, handle: s.listRollouts},
		{method: http.MethodGet, path: "/rollouts/{rolloutID}", op: "getRollout", summary: "Get a rollout",
			access: inProject, role: "viewer", resp: rolloutBody{}, handle: s.getRollout},
		{method: http.MethodGet, path: "/rollouts/{rolloutID}/events", op: "listRolloutEvents", summary: "A rollout's events; with Accept: text/event-stream, streamed until it finishes (curl -N)",
			access: inProject, role: "viewer", resp: rolloutEventBody{}, handle: s.rolloutEvents},
		{method: http.MethodPost, path: "/rollouts/{rolloutID}/rollback", op: "rollbackRollout", summary: "Roll back: restore the previous revisions now and write a revert commit",
			access: inProject, role: "developer", body: rollbackRequest{}, resp: rolloutBody{}, handle: s.rollbackRollout},
		{method: http.MethodPost, path: "/rollouts/{rolloutID}/pause", op: "pauseRollout", summary: "Pause a rollout: promoted runners keep the new revision, others the old",
			access: inProject, role: "developer", resp: rolloutBody{}, handle: s.pauseRollout},
		{method: http.MethodPost, path: "/rollouts/{rolloutID}/resume", op: "resumeRollout", summary: "Resume a paused rollout",
			access: inProject, role: "developer", resp: rolloutBody{}, handle: s.resumeRollout},
	}}
}

func (s *Server) listRunners(w http.ResponseWriter, r *http.Request) error {
	f, err := s.loadFleet(r)
	if err != nil {
		return err
	}
	return writePage(w, r, s.pool, "SELECT "+runnerColumns+" FROM runners u WHERE u.fleet_id = $1 AND u.id > $2 ORDER BY u.id LIMIT $3",
		(*runnerBody).scanDest, func(b runnerBody) uuid.UUID { return b.ID }, f.ID)
}

func (s *Server) revokeRunner(w http.ResponseWriter, r *http.Request) error {
	f, err := s.loadFleet(r)
	if err != nil {
		return err
	}
	id, err := pathID(r, "runnerID")
	if err != nil {
		return err
	}
	ctx := r.Context()
	err = s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "UPDATE runners SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND fleet_id = $2", id, f.ID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return notFound("runner")
		}
		return s.audit(ctx, tx, r, auditEntry{action: "runner.revoke", resourceType: "runner", resourceID: id.String()})
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) createBootstrapToken(w http.ResponseWriter, r *http.Request) error {
	f, err := s.loadFleet(r)
	if err != nil {
		return err
	}
	var body createBootstrapTokenRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	uses, ttl := 1, time.Hour
	if body.Uses != nil {
		uses = *body.Uses
	}
	if body.TTL != "" {
		ttl, _ = time.ParseDuration(body.TTL)
	}
	ctx := r.Context()
	var by *uuid.UUID
	if p := PrincipalFrom(ctx); p.UserID != uuid.Nil {
		by = &p.UserID
	}
	var tok deploy.BootstrapToken
	err = s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		if tok, err = deploy.MintBootstrapToken(ctx, tx, f.ID, uses, ttl, by); err != nil {
			return err
		}
		return s.audit(ctx, tx, r, auditEntry{action: "fleet.bootstrap_token.create", resourceType: "fleet", resourceID: f.ID.String(),
			details: map[string]any{"prefix": tok.Prefix, "uses": uses, "expires_at": tok.ExpiresAt}})
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, tok)
}

func (s *Server) listRollouts(w http.ResponseWriter, r *http.Request) error {
	q := "SELECT " + rolloutColumns + " FROM rollouts ro JOIN fleets f ON f.id = ro.fleet_id WHERE ro.project_id = $1 AND ro.id > $2 ORDER BY ro.id LIMIT $3"
	return writePage(w, r, s.pool, q, (*rolloutBody).scanDest, func(b rolloutBody) uuid.UUID { return b.ID }, projectFrom(r.Context()).ID)
}

func (s *Server) loadRollout(r *http.Request) (rolloutBody, error) {
	return loadInProject(r, s.pool, "rolloutID", "rollout",
		"SELECT "+rolloutColumns+" FROM rollouts ro JOIN fleets f ON f.id = ro.fleet_id WHERE ro.id = $1 AND ro.project_id = $2", (*rolloutBody).scanDest)
}

func (s *Server) getRollout(w http.ResponseWriter, r *http.Request) error {
	ro, err := s.loadRollout(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ro)
}

func (s *Server) events(r *http.Request, rollout uuid.UUID, after int64) ([]rolloutEventBody, error) {
	rows, err := s.pool.Query(r.Context(), "SELECT id, at, message FROM rollout_events WHERE rollout_id = $1 AND id > $2 ORDER BY id LIMIT 1000", rollout, after)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (rolloutEventBody, error) {
		var e rolloutEventBody
		err := row.Scan(&e.ID, &e.At, &e.Message)
		return e, err
	})
}

// rolloutEvents lists the events, or streams them as server-sent events
// (one `data:` JSON line per event, then `event: end` with the rollout
// when it has finished).
func (s *Server) rolloutEvents(w http.ResponseWriter, r *http.Request) error {
	ro, err := s.loadRollout(r)
	if err != nil {
		return err
	}
	if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		evs, err := s.events(r, ro.ID, 0)
		if err != nil {
			return err
		}
		if evs == nil {
			evs = []rolloutEventBody{}
		}
		return writeJSON(w, http.StatusOK, map[string]any{"items": evs})
	}
	stream := startEventStream(w)
	var last int64
	stream.poll(r.Context(), func() (bool, error) {
		evs, err := s.events(r, ro.ID, last)
		if err != nil {
			return false, err
		}
		for _, e := range evs {
			stream.send("", e.ID, e)
			last = e.ID
		}
		if len(evs) > 0 {
			return false, nil
		}
		cur, err := s.loadRollout(r)
		if err != nil {
			return false, err
		}
		if cur.FinishedAt != nil {
			stream.send("end", 0, cur)
			return true, nil
		}
		return false, nil
	})
	return nil
}

func (s *Server) rollbackRollout(w http.ResponseWriter, r *http.Request) error {
	ro, err := s.loadRollout(r)
	if err != nil {
		return err
	}
	var body rollbackRequest
	if err := decode(r, &body); err != nil {
		return err
	}
	p := PrincipalFrom(r.Context())
	reason := body.Reason
	if reason == "" {
		reason = "rolled back by " + p.Name
	}
	if err := s.rollback(r.Context(), ro.ProjectID, ro.ID, reason); err != nil {
		if errors.Is(err, rollout.ErrNothingToRollBack) {
			return conflict(err.Error())
		}
		return err
	}
	err = s.tx(r.Context(), func(tx pgx.Tx) error {
		return s.audit(r.Context(), tx, r, auditEntry{action: "rollout.rollback", resourceType: "rollout", resourceID: ro.ID.String(),
			details: map[string]any{"reason": reason}})
	})
	if err != nil {
		return err
	}
	ro, err = s.loadRollout(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ro)
}

func (s *Server) pauseRollout(w http.ResponseWriter, r *http.Request) error {
	return s.setPaused(w, r, true)
}

func (s *Server) resumeRollout(w http.ResponseWriter, r *http.Request) error {
	return s.setPaused(w, r, false)
}

func (s *Server) setPaused(w http.ResponseWriter, r *http.Request, paused bool) error {
	ro, err := s.loadRollout(r)
	if err != nil {
		return err
	}
	if ro.FinishedAt != nil {
		return conflict("the rollout has finished (" + ro.Phase + ")")
	}
	ctx := r.Context()
	verb := map[bool]string{true: "paused", false: "resumed"}[paused]
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE rollouts SET paused = $2, updated_at = now() WHERE id = $1", ro.ID, paused); err != nil {
			return err
		}
		if err := deploy.AddEvent(ctx, tx, ro.ID, verb+" by "+PrincipalFrom(ctx).Name); err != nil {
			return err
		}
		return s.audit(ctx, tx, r, auditEntry{action: "rollout." + strings.TrimSuffix(verb, "d"), resourceType: "rollout", resourceID: ro.ID.String()})
	})
	if err != nil {
		return err
	}
	ro, err = s.loadRollout(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ro)
}
