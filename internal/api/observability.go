package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/observability"
)

// The pipeline-wide view of lag and skew (DESIGN.md §6, docs/observability.md):
// the last reports of every runner of the fleets a pipeline is deployed
// to, merged (observability.Merge), and the history the database keeps of
// them (lag_samples, appended by a trigger when reports are stored).

// History limits: the longest range served, and how many points a range
// is thinned to (each point the worst of the samples it stands for).
const (
	maxLagRange     = 30 * 24 * time.Hour
	defaultLagRange = time.Hour
	maxLagPoints    = 720
)

// lagResolutions are the resolutions history is kept at, finest first,
// with how long each is kept (migrations/0006 and 0007): a range is
// served at the finest resolution kept for all of it.
var lagResolutions = []struct {
	seconds int
	kept    time.Duration
}{
	{10, 24 * time.Hour},
	{60, 7 * 24 * time.Hour},
	{600, 30 * 24 * time.Hour},
}

// lagResolution is the resolution, in seconds, that a range starting at
// since is served at.
func lagResolution(since, now time.Time) int {
	for _, r := range lagResolutions {
		if !since.Before(now.Add(-r.kept)) {
			return r.seconds
		}
	}
	return lagResolutions[len(lagResolutions)-1].seconds
}

// lagRunnerBody is one runner's part in a pipeline's view.
type lagRunnerBody struct {
	ID   uuid.UUID `json:"id"`
	Name string    `json:"name"`
	Live bool      `json:"live"`
	// State is the pipeline's state on the runner (running, failed, ...).
	State string `json:"state"`
	// Partitions are the source partitions (tasks) it holds.
	Partitions []int32 `json:"partitions"`
	// SampledAt is when it last sampled the lag (absent before the first
	// sample, or from runners that predate lag reports).
	SampledAt *time.Time `json:"sampled_at,omitempty"`
}

// lagPointBody is one sample of a pipeline's lag history.
type lagPointBody struct {
	At         time.Time `json:"at"`
	Status     string    `json:"status"`
	Lag        int64     `json:"lag"`
	EventAgeMs int64     `json:"event_age_ms"`
	// Stages are the sample's stage summaries (StageLag without
	// partitions), as stored.
	Stages json.RawMessage `json:"stages"`
}

// lagBody is GET .../lag: the merged current view and its history.
type lagBody struct {
	PipelineID uuid.UUID `json:"pipeline_id"`
	Pipeline   string    `json:"pipeline"`
	// Current is the merged view of the runners' last reports; null when no
	// runner has reported lag for the pipeline.
	Current *observability.PipelineLag `json:"current"`
	// Stale is true when no live runner reported and no monitor either:
	// Current is the last view a runner gave before it went quiet.
	Stale bool `json:"stale"`
	// Source says where Current comes from: "runners" (the live runners
	// of the pipeline), "monitor" (no live runner reports its lag; the
	// fleet's monitor runner sampled its consumer group), "stale" (the
	// last reports of runners no longer live) or "none".
	Source  string          `json:"source"`
	Runners []lagRunnerBody `json:"runners"`
	Since   time.Time       `json:"since"`
	Until   time.Time       `json:"until"`
	// ResolutionSeconds is the resolution of the history served: 10 for
	// ranges within the last 24 h, 60 within the last 7 days, 600 within
	// the last 30 days (the finest kept for the whole range).
	ResolutionSeconds int `json:"resolution_seconds"`
	// History is one point per ResolutionSeconds (thinned to at most 720),
	// oldest first.
	History []lagPointBody `json:"history"`
}

// skewBody is GET .../skew.
type skewBody struct {
	PipelineID uuid.UUID `json:"pipeline_id"`
	Pipeline   string    `json:"pipeline"`
	observability.SkewView
	// KeyPreviews maps hot key hashes to redacted, capped previews of the
	// keys: present only while the project enables record previews.
	KeyPreviews map[string]agentproto.Preview `json:"key_previews,omitempty"`
}

// stageHealthBody is one stage in a health answer.
type stageHealthBody struct {
	Stage        int    `json:"stage"`
	Topic        string `json:"topic"`
	Status       string `json:"status"`
	Lag          int64  `json:"lag"`
	MaxTimeLagMs int64  `json:"max_time_lag_ms"`
	Reason       string `json:"reason,omitempty"`
}

// healthBody is GET .../health: the roll-up in one answer.
type healthBody struct {
	PipelineID uuid.UUID `json:"pipeline_id"`
	Pipeline   string    `json:"pipeline"`
	// Status is the worst stage's Burrow status, or UNKNOWN when no runner
	// has reported lag; Healthy is Status == OK with a live runner.
	Status      string                 `json:"status"`
	Healthy     bool                   `json:"healthy"`
	Stale       bool                   `json:"stale"`
	Source      string                 `json:"source"`
	LiveRunners int                    `json:"live_runners"`
	SampledAt   *time.Time             `json:"sampled_at,omitempty"`
	EventAgeMs  int64                  `json:"event_age_ms"`
	Slowest     *observability.Slowest `json:"slowest,omitempty"`
	Stages      []stageHealthBody      `json:"stages"`
	// Restoring lists the state stores being restored from their
	// changelogs, with progress and ETA: their tasks process nothing yet.
	Restoring []observability.Restore `json:"restoring"`
	// State is the size of the pipeline's state stores.
	State stateHealthBody `json:"state"`
}

// stateHealthBody is a pipeline's state: each store (step and partition,
// with the runner holding it), and the totals per step.
type stateHealthBody struct {
	Keys   int64                     `json:"keys"`
	Bytes  int64                     `json:"bytes"`
	Steps  []stepStateBody           `json:"steps"`
	Stores []observability.StoreSize `json:"stores"`
}

// stepStateBody is one stateful step's stores summed.
type stepStateBody struct {
	Step   string `json:"step"`
	Stores int    `json:"stores"`
	Keys   int64  `json:"keys"`
	Bytes  int64  `json:"bytes"`
	// Estimated is true when any of the sums is an estimate (disk stores).
	Estimated bool `json:"estimated,omitempty"`
}

func (s *Server) observabilityResource() resource {
	return resource{prefix: "/projects/{projectID}/pipelines/{pipelineID}", tag: "observability", routes: []route{
		{method: http.MethodGet, path: "/lag", op: "getPipelineLag", summary: "A pipeline's lag on every stage and partition, merged from its runners (or its fleet's monitor runner), with its history (?since=&until=, RFC 3339, at most 30 days; default the last hour; 10 s resolution within the last 24 h, 1 min within 7 days, 10 min within 30 days)",
			access: inProject, role: "viewer", resp: lagBody{}, handle: s.getPipelineLag},
		{method: http.MethodGet, path: "/skew", op: "getPipelineSkew", summary: "A pipeline's partition skew, runner imbalance and hot keys (as hashes; with previews of the keys when the project enables record previews)",
			access: inProject, role: "viewer", resp: skewBody{}, handle: s.getPipelineSkew},
		{method: http.MethodGet, path: "/health", op: "getPipelineHealth", summary: "A pipeline's lag status (Burrow's rules), event age and slowest stage with the reason, restores with their ETA and state store sizes",
			access: inProject, role: "viewer", resp: healthBody{}, handle: s.getPipelineHealth},
	}}
}

// pipelineView is a pipeline's merged view and the reports it came from.
type pipelineView struct {
	id      uuid.UUID
	name    string
	lag     *observability.PipelineLag
	stale   bool
	source  string
	live    int
	runners []lagRunnerBody
	reports []observability.RunnerReport // live runners only: their tasks are current
	// keyPreviews are the live runners' previews of hot keys, by hash
	// (only from projects that enable record previews).
	keyPreviews map[string]agentproto.Preview
}

// loadView merges the last reports of the runners of every fleet the
// pipeline is deployed to. Every fleet's runners of a pipeline share its
// consumer group, so they are one view. Without a live runner, the last
// reports of the others still show the lag, marked stale.
func (s *Server) loadView(r *http.Request) (pipelineView, error) {
	p, err := s.loadPipeline(r)
	if err != nil {
		return pipelineView{}, err
	}
	v := pipelineView{id: p.ID, name: p.Name, runners: []lagRunnerBody{}}
	rows, err := s.pool.Query(r.Context(), `SELECT u.id, u.name, u.last_seen_at > now() - interval '30 seconds', u.report
		FROM runners u WHERE u.revoked_at IS NULL AND u.fleet_id IN (SELECT fleet_id FROM deployments WHERE pipeline_id = $1)
		ORDER BY u.name, u.id`, p.ID)
	if err != nil {
		return v, err
	}
	defer rows.Close()
	var live, all []observability.RunnerReport
	var monitor *observability.PipelineLag
	for rows.Next() {
		var (
			id   uuid.UUID
			name string
			ok   bool
			rep  agentproto.StatusReport
		)
		if err := rows.Scan(&id, &name, &ok, &rep); err != nil {
			return v, err
		}
		for _, m := range rep.Monitor {
			if ok && m.Name == p.Name && m.Lag != nil && (monitor == nil || m.Lag.SampledAt.After(monitor.SampledAt)) {
				monitor = m.Lag
			}
		}
		for _, ps := range rep.Pipelines {
			if ps.Name != p.Name {
				continue
			}
			rb := lagRunnerBody{ID: id, Name: name, Live: ok, State: ps.State, Partitions: ps.Partitions}
			if rb.Partitions == nil {
				rb.Partitions = []int32{}
			}
			if ps.Lag != nil {
				at := ps.Lag.SampledAt
				rb.SampledAt = &at
			}
			v.runners = append(v.runners, rb)
			rr := observability.RunnerReport{Runner: name, Partitions: ps.Partitions, Lag: ps.Lag}
			all = append(all, rr)
			if ok {
				live = append(live, rr)
				v.live++
				for h, pv := range ps.KeyPreviews {
					if v.keyPreviews == nil {
						v.keyPreviews = map[string]agentproto.Preview{}
					}
					v.keyPreviews[h] = pv
				}
			}
		}
	}
	if err := rows.Err(); err != nil {
		return v, err
	}
	v.reports = live
	v.lag, v.source = observability.Merge(live), "runners"
	if v.lag == nil && monitor != nil {
		m := *monitor
		m.Source = observability.SourceMonitor
		v.lag, v.source = &m, "monitor"
	}
	if v.lag == nil {
		v.lag = observability.Merge(all)
		v.stale = v.lag != nil
		v.source = "stale"
	}
	if v.lag == nil {
		v.source = "none"
	}
	return v, nil
}

func (s *Server) getPipelineLag(w http.ResponseWriter, r *http.Request) error {
	until, since, err := lagRange(r)
	if err != nil {
		return err
	}
	v, err := s.loadView(r)
	if err != nil {
		return err
	}
	res := lagResolution(since, time.Now())
	hist, err := s.lagHistory(r.Context(), v.id, since, until, res)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, lagBody{PipelineID: v.id, Pipeline: v.name, Current: v.lag, Stale: v.stale, Source: v.source,
		Runners: v.runners, Since: since, Until: until, ResolutionSeconds: res, History: hist})
}

func (s *Server) getPipelineSkew(w http.ResponseWriter, r *http.Request) error {
	v, err := s.loadView(r)
	if err != nil {
		return err
	}
	out := skewBody{PipelineID: v.id, Pipeline: v.name, SkewView: observability.Skew(v.lag, v.reports)}
	if len(v.keyPreviews) > 0 && len(out.HotKeys) > 0 {
		var on bool
		if err := s.pool.QueryRow(r.Context(), `SELECT (record_previews ->> 'enabled')::boolean FROM projects p
			JOIN pipelines pl ON pl.project_id = p.id WHERE pl.id = $1`, v.id).Scan(&on); err != nil {
			return err
		}
		if on {
			out.KeyPreviews = map[string]agentproto.Preview{}
			for _, k := range out.HotKeys {
				if pv, ok := v.keyPreviews[k.Hash]; ok {
					out.KeyPreviews[k.Hash] = pv
				}
			}
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) getPipelineHealth(w http.ResponseWriter, r *http.Request) error {
	v, err := s.loadView(r)
	if err != nil {
		return err
	}
	h := healthBody{PipelineID: v.id, Pipeline: v.name, Status: "UNKNOWN", Stale: v.stale, Source: v.source, LiveRunners: v.live,
		Stages: []stageHealthBody{}, Restoring: []observability.Restore{},
		State: stateHealthBody{Steps: []stepStateBody{}, Stores: []observability.StoreSize{}}}
	if v.lag != nil {
		at := v.lag.SampledAt
		h.Status, h.SampledAt, h.EventAgeMs, h.Slowest = v.lag.Status.String(), &at, v.lag.EventAgeMs, v.lag.Slowest
		h.Healthy = v.lag.Status == observability.StatusOK && !v.stale
		for _, st := range v.lag.Stages {
			h.Stages = append(h.Stages, stageHealthBody{Stage: st.Stage, Topic: st.Topic, Status: st.Status.String(),
				Lag: st.Lag, MaxTimeLagMs: st.MaxTimeLagMs, Reason: st.Reason})
		}
		for _, rs := range v.lag.Restores {
			if rs.Restoring {
				h.Restoring = append(h.Restoring, rs)
			}
		}
		h.State = stateOf(v.lag.Stores)
	}
	return writeJSON(w, http.StatusOK, h)
}

// stateOf sums the stores of a merged view per step (stores come sorted
// by step).
func stateOf(stores []observability.StoreSize) stateHealthBody {
	st := stateHealthBody{Steps: []stepStateBody{}, Stores: stores}
	if st.Stores == nil {
		st.Stores = []observability.StoreSize{}
	}
	for _, ss := range stores {
		st.Keys += ss.Keys
		st.Bytes += ss.Bytes
		if n := len(st.Steps); n == 0 || st.Steps[n-1].Step != ss.Step {
			st.Steps = append(st.Steps, stepStateBody{Step: ss.Step})
		}
		step := &st.Steps[len(st.Steps)-1]
		step.Stores++
		step.Keys += ss.Keys
		step.Bytes += ss.Bytes
		step.Estimated = step.Estimated || ss.Estimated
	}
	return st
}

// lagRange reads ?since= and ?until= (RFC 3339): until defaults to now,
// since to an hour before until; the range may not pass 30 days.
func lagRange(r *http.Request) (until, since time.Time, err error) {
	q := r.URL.Query()
	until = time.Now().UTC()
	if u := q.Get("until"); u != "" {
		if until, err = time.Parse(time.RFC3339, u); err != nil {
			return until, since, invalidField("until", "must be an RFC 3339 time like 2026-01-02T15:04:05Z")
		}
	}
	since = until.Add(-defaultLagRange)
	if sv := q.Get("since"); sv != "" {
		if since, err = time.Parse(time.RFC3339, sv); err != nil {
			return until, since, invalidField("since", "must be an RFC 3339 time like 2026-01-02T15:04:05Z")
		}
	}
	switch {
	case !since.Before(until):
		return until, since, invalidField("since", "must be before until")
	case until.Sub(since) > maxLagRange:
		return until, since, invalidField("since", "the range may span at most 30 days (the history kept)")
	}
	return until, since, nil
}

// lagHistory reads the samples in [since, until] at resolution res (10:
// lag_samples; 60, 600: the points of lag_history), thinned to
// maxLagPoints in the database: each point stands for a run of
// consecutive samples and is the one of them with the worst status, then
// the largest event age, so thinning never hides a problem. The stage
// summaries pass through as the stored JSON, fetched for the picked
// points only, one index probe each (LATERAL ... LIMIT 1): a join back,
// planned without statistics, became a nested loop over every sample.
func (s *Server) lagHistory(ctx context.Context, pipeline uuid.UUID, since, until time.Time, res int) ([]lagPointBody, error) {
	if res != 10 {
		return s.lagHistoryDownsampled(ctx, pipeline, since, until, res)
	}
	rows, err := s.pool.Query(ctx, `WITH g AS (
			SELECT bucket, status, event_age_ms,
				(row_number() OVER (ORDER BY bucket) - 1) / greatest(ceil(count(*) OVER () / $6::numeric), 1)::bigint AS grp
			FROM lag_samples WHERE pipeline_id = $1 AND bucket BETWEEN $2 AND $3 AND at >= $4 AND at <= $5),
		pick AS MATERIALIZED (
			SELECT DISTINCT ON (grp) bucket FROM g
			ORDER BY grp, lag_status_rank(status) DESC, event_age_ms DESC)
		SELECT l.at, l.status, l.lag, l.event_age_ms, l.stages FROM pick CROSS JOIN LATERAL (
			SELECT at, status, lag, event_age_ms, stages FROM lag_samples
			WHERE pipeline_id = $1 AND bucket = pick.bucket LIMIT 1) l
		ORDER BY pick.bucket`,
		pipeline, since.Unix()/10, until.Unix()/10+1, since, until, maxLagPoints)
	if err != nil {
		return nil, err
	}
	pts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (lagPointBody, error) {
		var p lagPointBody
		err := row.Scan(&p.At, &p.Status, &p.Lag, &p.EventAgeMs, &p.Stages)
		return p, err
	})
	if pts == nil {
		pts = []lagPointBody{}
	}
	return pts, err
}

// lagHistoryDownsampled is lagHistory over lag_history's points at
// resolution res: a point's period starts in [since, until].
func (s *Server) lagHistoryDownsampled(ctx context.Context, pipeline uuid.UUID, since, until time.Time, res int) ([]lagPointBody, error) {
	r := int64(res)
	rows, err := s.pool.Query(ctx, `WITH g AS (
			SELECT bucket, status, event_age_ms,
				(row_number() OVER (ORDER BY bucket) - 1) / greatest(ceil(count(*) OVER () / $5::numeric), 1)::bigint AS grp
			FROM lag_history WHERE pipeline_id = $1 AND resolution = $2 AND bucket BETWEEN $3 AND $4),
		pick AS MATERIALIZED (
			SELECT DISTINCT ON (grp) bucket FROM g
			ORDER BY grp, lag_status_rank(status) DESC, event_age_ms DESC)
		SELECT l.at, l.status, l.lag, l.event_age_ms, l.stages FROM pick CROSS JOIN LATERAL (
			SELECT at, status, lag, event_age_ms, stages FROM lag_history
			WHERE pipeline_id = $1 AND resolution = $2 AND bucket = pick.bucket LIMIT 1) l
		ORDER BY pick.bucket`,
		pipeline, res, (since.Unix()+r-1)/r, until.Unix()/r, maxLagPoints)
	if err != nil {
		return nil, err
	}
	pts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (lagPointBody, error) {
		var p lagPointBody
		err := row.Scan(&p.At, &p.Status, &p.Lag, &p.EventAgeMs, &p.Stages)
		return p, err
	})
	if pts == nil {
		pts = []lagPointBody{}
	}
	return pts, err
}
