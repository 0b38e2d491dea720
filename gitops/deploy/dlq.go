package deploy

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/internal/pgnotify"
	"github.com/sluicehq/sluice/internal/pipeline"
)

// DLQ replays and record previews on the runner side (docs/observability.md,
// docs/security.md). A replay request (table dlq_replays) is handed to the
// fleet's monitor runner in its assignments, claimed by it in the same
// breath (runner_id), and from then on only to that runner until it
// reports the request done or failed; a claimed request whose runner goes
// away stays claimed (ask for a new replay). Claiming means two runners
// can never replay the same request, and the runner remembers on disk
// which requests it carried out, so a restart does not replay twice.

// ReplaySelection is which dead letters a replay takes.
type ReplaySelection struct {
	Offsets []agentproto.DLQOffset `json:"offsets,omitempty"`
	UpTo    []agentproto.DLQOffset `json:"up_to,omitempty"`
}

// PipelineTopics compiles a pipeline revision's bundle and returns its
// stage inputs (source, then repartition topics) and its DLQ topic.
func (s *Store) PipelineTopics(ctx context.Context, projectID uuid.UUID, digest string) (inputs []string, dlq string, err error) {
	var data []byte
	err = s.pool.QueryRow(ctx, `SELECT data FROM bundles WHERE project_id = $1 AND digest = $2`, projectID, digest).Scan(&data)
	if err != nil {
		return nil, "", err
	}
	b, err := agentproto.DecodeBundle(data, digest)
	if err != nil {
		return nil, "", err
	}
	if s.reg == nil {
		return nil, "", errors.New("no operator registry to compile the pipeline with")
	}
	plan, err := (&pipeline.Compiler{Registry: s.reg, Files: b.FS()}).Compile(b.Path, b.Source())
	if err != nil {
		return nil, "", err
	}
	for _, st := range plan.Stages {
		inputs = append(inputs, st.Input)
	}
	return inputs, plan.DLQ, nil
}

// RequestReplay records a replay request for the pipeline on fleet and
// wakes the fleet's runners, when tx commits.
func RequestReplay(ctx context.Context, tx pgx.Tx, id, projectID, pipelineID, fleetID uuid.UUID, dlq string, inputs []string, sel ReplaySelection, by *uuid.UUID) error {
	selJSON, err := json.Marshal(sel)
	if err != nil {
		return err
	}
	in, err := json.Marshal(inputs)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO dlq_replays (id, project_id, pipeline_id, fleet_id, dlq_topic, selection, inputs, requested_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, id, projectID, pipelineID, fleetID, dlq, selJSON, in, by); err != nil {
		return err
	}
	return pgnotify.Notify(ctx, tx, Channel, fleetID.String())
}

// replays claims the fleet's unclaimed replay requests for r when it is
// the monitor, and returns every open request claimed by r.
func (s *Store) replays(ctx context.Context, r Runner, monitor bool) ([]agentproto.ReplayRequest, error) {
	if monitor {
		if _, err := s.pool.Exec(ctx, `UPDATE dlq_replays SET runner_id = $2, claimed_at = now(), state = 'claimed'
			WHERE fleet_id = $1 AND runner_id IS NULL AND state = 'pending'`, r.FleetID, r.ID); err != nil {
			return nil, err
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT q.id, p.name, q.pipeline_id, q.dlq_topic, q.inputs, q.selection
		FROM dlq_replays q JOIN pipelines p ON p.id = q.pipeline_id
		WHERE q.runner_id = $1 AND q.finished_at IS NULL ORDER BY q.requested_at, q.id`, r.ID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (agentproto.ReplayRequest, error) {
		var (
			q        agentproto.ReplayRequest
			id, pid  uuid.UUID
			in, sel  []byte
			selected ReplaySelection
		)
		if err := row.Scan(&id, &q.Pipeline, &pid, &q.DLQTopic, &in, &sel); err != nil {
			return q, err
		}
		q.ID, q.PipelineID = id.String(), pid.String()
		if err := json.Unmarshal(in, &q.Inputs); err != nil {
			return q, err
		}
		if err := json.Unmarshal(sel, &selected); err != nil {
			return q, err
		}
		q.Offsets, q.UpTo = selected.Offsets, selected.UpTo
		return q, nil
	})
}

// recordReplays stores the outcomes a runner reported for the requests it
// claimed.
func (s *Store) recordReplays(ctx context.Context, r Runner, outs []agentproto.ReplayOutcome) error {
	for _, o := range outs {
		id, err := uuid.Parse(o.ID)
		if err != nil {
			continue
		}
		switch o.State {
		case agentproto.ReplayRunning, agentproto.ReplayDone, agentproto.ReplayFailed:
		default:
			continue
		}
		errs := o.Errors
		if errs == nil {
			errs = []string{}
		}
		if len(errs) > 50 {
			errs = errs[:50]
		}
		ej, err := json.Marshal(errs)
		if err != nil {
			return err
		}
		if _, err := s.pool.Exec(ctx, `UPDATE dlq_replays SET state = $3, replayed = $4, errors = $5,
			finished_at = CASE WHEN $3 IN ('done', 'failed') THEN now() END
			WHERE id = $1 AND runner_id = $2 AND finished_at IS NULL`, id, r.ID, o.State, o.Replayed, ej); err != nil {
			return err
		}
	}
	return nil
}
