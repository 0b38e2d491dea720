package api

import (
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/gitops/deploy"
	"github.com/sluicehq/sluice/internal/agentproto"
)

// The DLQ viewer and replay (docs/observability.md): runners read their
// pipelines' DLQ topics and report the last dead letters in their status
// (agentproto.DLQView); the API merges the reports of every runner of the
// fleets the pipeline is deployed to. A replay is recorded here and
// carried out by the fleet's monitor runner (gitops/deploy/dlq.go).

// maxReplayOffsets bounds the dead letters one request names.
const maxReplayOffsets = 10000

// dlqReasonBody is the number of dead letters of one reason.
type dlqReasonBody struct {
	Reason string `json:"reason"`
	Count  int64  `json:"count"`
}

// dlqBody is GET .../dlq.
type dlqBody struct {
	PipelineID uuid.UUID `json:"pipeline_id"`
	Pipeline   string    `json:"pipeline"`
	// Topic is the DLQ topic; empty when no runner has read it yet.
	Topic string `json:"topic"`
	// SampledAt is when the freshest report read it.
	SampledAt *time.Time `json:"sampled_at,omitempty"`
	// Total counts the dead letters in the topic (as read from its start),
	// Reasons splits it, largest first.
	Total   int64           `json:"total"`
	Reasons []dlqReasonBody `json:"reasons"`
	// Letters are the latest dead letters (at most 100), newest first.
	// Their key and value previews, and the values of headers other than
	// sluice.*, are present only while the project enables record
	// previews.
	Letters []agentproto.DeadLetter `json:"letters"`
	// Previews says whether the project enables record previews.
	Previews bool `json:"previews"`
	// Runners counts the runners whose reports are merged.
	Runners int `json:"runners"`
}

// replayRequestBody is POST .../dlq/replay: either offsets, or up_to.
type replayRequestBody struct {
	// Offsets names dead letters by DLQ partition and offset.
	Offsets []agentproto.DLQOffset `json:"offsets"`
	// UpTo takes every dead letter of a partition up to an offset
	// (inclusive).
	UpTo []agentproto.DLQOffset `json:"up_to"`
}

func (b *replayRequestBody) validate() []FieldError {
	var errs []FieldError
	switch {
	case len(b.Offsets) == 0 && len(b.UpTo) == 0:
		errs = append(errs, FieldError{Field: "offsets", Detail: "name the dead letters to replay: offsets, or up_to per partition"})
	case len(b.Offsets) > 0 && len(b.UpTo) > 0:
		errs = append(errs, FieldError{Field: "up_to", Detail: "give offsets or up_to, not both"})
	case len(b.Offsets) > maxReplayOffsets:
		errs = append(errs, FieldError{Field: "offsets", Detail: "at most 10000 dead letters per request; use up_to for more"})
	case len(b.UpTo) > 1000:
		errs = append(errs, FieldError{Field: "up_to", Detail: "at most 1000 partitions"})
	}
	for _, o := range append(append([]agentproto.DLQOffset(nil), b.Offsets...), b.UpTo...) {
		if o.Partition < 0 || o.Offset < 0 {
			errs = append(errs, FieldError{Field: "offsets", Detail: "partitions and offsets are not negative"})
			break
		}
	}
	return errs
}

// replayBody is a replay request and how it went.
type replayBody struct {
	ID         uuid.UUID `json:"id"`
	PipelineID uuid.UUID `json:"pipeline_id"`
	FleetID    uuid.UUID `json:"fleet_id"`
	DLQTopic   string    `json:"dlq_topic"`
	// Inputs are the stage inputs dead letters may go back to.
	Inputs  []string               `json:"inputs"`
	Offsets []agentproto.DLQOffset `json:"offsets,omitempty"`
	UpTo    []agentproto.DLQOffset `json:"up_to,omitempty"`
	// State is pending (no runner has it yet), claimed (the fleet's
	// monitor runner has it), running, done or failed.
	State       string     `json:"state"`
	Replayed    int        `json:"replayed"`
	Errors      []string   `json:"errors"`
	RunnerID    *uuid.UUID `json:"runner_id,omitempty"`
	RequestedBy *uuid.UUID `json:"requested_by,omitempty"`
	RequestedAt time.Time  `json:"requested_at"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	// Duplicate is true in the answer to a request identical to an
	// earlier one that has not failed: that one is returned, and nothing
	// more is replayed.
	Duplicate bool `json:"duplicate,omitempty"`
}

// replaysBody is GET .../dlq/replays: the latest 50, newest first.
type replaysBody struct {
	Items []replayBody `json:"items"`
}

const replayColumns = "id, pipeline_id, fleet_id, dlq_topic, inputs, selection, state, replayed, errors, runner_id, requested_by, requested_at, finished_at"

func scanReplay(row pgx.Row) (replayBody, error) {
	var (
		b   replayBody
		sel deploy.ReplaySelection
	)
	err := row.Scan(&b.ID, &b.PipelineID, &b.FleetID, &b.DLQTopic, &b.Inputs, &sel, &b.State, &b.Replayed, &b.Errors,
		&b.RunnerID, &b.RequestedBy, &b.RequestedAt, &b.FinishedAt)
	b.Offsets, b.UpTo = sel.Offsets, sel.UpTo
	return b, err
}

func (s *Server) dlqResource() resource {
	return resource{prefix: "/projects/{projectID}/pipelines/{pipelineID}/dlq", tag: "dlq", routes: []route{
		{method: http.MethodGet, path: "", op: "getPipelineDLQ", summary: "A pipeline's dead letters as its runners read them: totals per reason and the latest 100 with reason, error, step, source offset and headers; payload previews only when the project enables record previews",
			access: inProject, role: "viewer", resp: dlqBody{}, handle: s.getPipelineDLQ},
		{method: http.MethodPost, path: "/replay", op: "replayPipelineDLQ", summary: "Replay dead letters (by DLQ partition and offset, or every one up to an offset per partition) into the stage inputs they came from, once; the fleet's monitor runner carries it out",
			access: inProject, role: "developer", body: replayRequestBody{}, resp: replayBody{}, status: http.StatusAccepted, handle: s.replayPipelineDLQ},
		{method: http.MethodGet, path: "/replays", op: "listPipelineDLQReplays", summary: "A pipeline's latest DLQ replays and how they went",
			access: inProject, role: "viewer", resp: replaysBody{}, handle: s.listPipelineDLQReplays},
	}}
}

func (s *Server) getPipelineDLQ(w http.ResponseWriter, r *http.Request) error {
	p, err := s.loadPipeline(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	out := dlqBody{PipelineID: p.ID, Pipeline: p.Name, Reasons: []dlqReasonBody{}, Letters: []agentproto.DeadLetter{}}
	var previews agentproto.RecordPreviews
	if err := s.pool.QueryRow(ctx, "SELECT record_previews FROM projects WHERE id = $1", p.ProjectID).Scan(&previews); err != nil {
		return err
	}
	out.Previews = previews.Enabled
	rows, err := s.pool.Query(ctx, `SELECT u.report FROM runners u WHERE u.revoked_at IS NULL
		AND u.fleet_id IN (SELECT fleet_id FROM deployments WHERE pipeline_id = $1) ORDER BY u.id`, p.ID)
	if err != nil {
		return err
	}
	reps, err := pgx.CollectRows(rows, pgx.RowTo[agentproto.StatusReport])
	if err != nil {
		return err
	}
	// Every runner reads the whole topic: totals are the largest any
	// reported (the freshest reader's), letters the union.
	reasons := map[string]int64{}
	seen := map[[2]int64]bool{}
	for _, rep := range reps {
		for _, ps := range rep.Pipelines {
			v := ps.DLQ
			if ps.Name != p.Name || v == nil {
				continue
			}
			out.Runners++
			if out.SampledAt == nil || v.SampledAt.After(*out.SampledAt) {
				at := v.SampledAt
				out.SampledAt, out.Topic = &at, v.Topic
			}
			out.Total = max(out.Total, v.Total)
			for k, n := range v.Reasons {
				reasons[k] = max(reasons[k], n)
			}
			for _, dl := range v.Letters {
				k := [2]int64{int64(dl.Partition), dl.Offset}
				if seen[k] {
					continue
				}
				seen[k] = true
				if !previews.Enabled {
					withoutPreviews(&dl)
				}
				out.Letters = append(out.Letters, dl)
			}
		}
	}
	for k, n := range reasons {
		out.Reasons = append(out.Reasons, dlqReasonBody{Reason: k, Count: n})
	}
	sort.Slice(out.Reasons, func(i, j int) bool {
		if out.Reasons[i].Count != out.Reasons[j].Count {
			return out.Reasons[i].Count > out.Reasons[j].Count
		}
		return out.Reasons[i].Reason < out.Reasons[j].Reason
	})
	sort.Slice(out.Letters, func(i, j int) bool {
		a, b := out.Letters[i], out.Letters[j]
		if !a.Timestamp.Equal(b.Timestamp) {
			return a.Timestamp.After(b.Timestamp)
		}
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		return a.Offset > b.Offset
	})
	if len(out.Letters) > agentproto.MaxDeadLetters {
		out.Letters = out.Letters[:agentproto.MaxDeadLetters]
	}
	return writeJSON(w, http.StatusOK, out)
}

// withoutPreviews drops what only previews may show from a dead letter a
// runner reported while the project still enabled them.
func withoutPreviews(dl *agentproto.DeadLetter) {
	dl.Key, dl.Value = nil, nil
	hs := make([]agentproto.HeaderReport, len(dl.Headers))
	for i, h := range dl.Headers {
		if !strings.HasPrefix(h.Name, "sluice.") {
			h.Value = nil
		}
		hs[i] = h
	}
	dl.Headers = hs
}

func (s *Server) replayPipelineDLQ(w http.ResponseWriter, r *http.Request) error {
	p, err := s.loadPipeline(r)
	if err != nil {
		return err
	}
	var body replayRequestBody
	if err := decode(r, &body); err != nil {
		return err
	}
	ctx := r.Context()
	// A pipeline deployed to several fleets has one DLQ (one plan, one
	// group): one fleet replays it, the one with a live runner first.
	var (
		fleet  uuid.UUID
		digest string
	)
	err = s.pool.QueryRow(ctx, `SELECT d.fleet_id, v.digest FROM deployments d JOIN revisions v ON v.id = d.revision_id
		WHERE d.pipeline_id = $1
		ORDER BY EXISTS (SELECT 1 FROM runners u WHERE u.fleet_id = d.fleet_id AND u.revoked_at IS NULL
			AND u.last_seen_at > now() - interval '30 seconds') DESC, d.fleet_id LIMIT 1`, p.ID).Scan(&fleet, &digest)
	if errors.Is(err, pgx.ErrNoRows) {
		return conflict("the pipeline is not deployed to a fleet: a fleet's runner replays dead letters")
	}
	if err != nil {
		return err
	}
	inputs, dlq, err := s.deploy.PipelineTopics(ctx, p.ProjectID, digest)
	if err != nil {
		return conflict("the deployed revision does not compile on the control plane, so its topics are unknown: " + err.Error())
	}
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	pr := PrincipalFrom(ctx)
	var by *uuid.UUID
	if pr != nil {
		u := pr.auditID()
		by = &u
	}
	sel := deploy.ReplaySelection{Offsets: normalizeOffsets(body.Offsets), UpTo: normalizeOffsets(body.UpTo)}
	var out replayBody
	err = s.tx(ctx, func(tx pgx.Tx) error {
		// One request at a time per pipeline decides whether it repeats
		// an earlier one.
		if _, err := tx.Exec(ctx, "SELECT 1 FROM pipelines WHERE id = $1 FOR UPDATE", p.ID); err != nil {
			return err
		}
		prev, err := scanReplay(tx.QueryRow(ctx, "SELECT "+replayColumns+` FROM dlq_replays
			WHERE pipeline_id = $1 AND dlq_topic = $2 AND selection = $3::jsonb AND state <> 'failed'
			ORDER BY requested_at DESC LIMIT 1`, p.ID, dlq, sel))
		if err == nil {
			out = prev
			out.Duplicate = true
			return s.audit(ctx, tx, r, auditEntry{action: "pipeline.dlq.replay", resourceType: "pipeline", resourceID: p.ID.String(),
				projectID: &p.ProjectID, details: map[string]any{"replay": prev.ID.String(), "duplicate": true}})
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if err := deploy.RequestReplay(ctx, tx, id, p.ProjectID, p.ID, fleet, dlq, inputs, sel, by); err != nil {
			return err
		}
		if out, err = scanReplay(tx.QueryRow(ctx, "SELECT "+replayColumns+" FROM dlq_replays WHERE id = $1", id)); err != nil {
			return err
		}
		return s.audit(ctx, tx, r, auditEntry{action: "pipeline.dlq.replay", resourceType: "pipeline", resourceID: p.ID.String(),
			projectID: &p.ProjectID, details: map[string]any{"replay": id.String(), "dlq_topic": dlq, "offsets": len(body.Offsets), "up_to": body.UpTo}})
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/projects/"+p.ProjectID.String()+"/pipelines/"+p.ID.String()+"/dlq/replays")
	return writeJSON(w, http.StatusAccepted, out)
}

// normalizeOffsets sorts offsets and drops repeats, so equal selections
// are equal.
func normalizeOffsets(os []agentproto.DLQOffset) []agentproto.DLQOffset {
	if len(os) == 0 {
		return nil
	}
	out := append([]agentproto.DLQOffset(nil), os...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Offset < out[j].Offset
	})
	n := 1
	for _, o := range out[1:] {
		if o != out[n-1] {
			out[n] = o
			n++
		}
	}
	return out[:n]
}

func (s *Server) listPipelineDLQReplays(w http.ResponseWriter, r *http.Request) error {
	p, err := s.loadPipeline(r)
	if err != nil {
		return err
	}
	rows, err := s.pool.Query(r.Context(), "SELECT "+replayColumns+" FROM dlq_replays WHERE pipeline_id = $1 ORDER BY requested_at DESC, id DESC LIMIT 50", p.ID)
	if err != nil {
		return err
	}
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (replayBody, error) { return scanReplay(row) })
	if err != nil {
		return err
	}
	if items == nil {
		items = []replayBody{}
	}
	return writeJSON(w, http.StatusOK, replaysBody{Items: items})
}
