package deploy

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/internal/pipeline"
)

// The fleet's monitor runner (docs/observability.md): one live runner per
// fleet samples the consumer group of every pipeline deployed to the
// fleet, whether or not any runner runs it, so the control plane can show
// the lag of a pipeline that has no live runner. It is the live runner
// registered first (then the lowest id); when it stops being heard from
// for MonitorLiveness the next one takes over at its next assignments
// poll. The role is not part of the fleet's generation: bumping it would
// look like a change of desired state to rollouts and runners.

// MonitorLiveness is how recently a runner must have been heard from to
// be the monitor: the API's notion of a live runner.
const MonitorLiveness = "30 seconds"

// monitorQuery selects the monitor of fleet $1.
const monitorQuery = `SELECT id FROM runners WHERE fleet_id = $1 AND revoked_at IS NULL
	AND last_seen_at > now() - $2::interval ORDER BY registered_at, id LIMIT 1`

// isMonitor reports whether r is its fleet's monitor.
func isMonitor(ctx context.Context, tx pgx.Tx, r Runner) (bool, error) {
	var id uuid.UUID
	err := tx.QueryRow(ctx, monitorQuery, r.FleetID, MonitorLiveness).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return id == r.ID, err
}

// MonitorOf returns the fleet's monitor runner, uuid.Nil when no runner
// of the fleet is live.
func (s *Store) MonitorOf(ctx context.Context, fleetID uuid.UUID) (uuid.UUID, error) {
	var id uuid.UUID
	err := s.pool.QueryRow(ctx, monitorQuery, fleetID, MonitorLiveness).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, nil
	}
	return id, err
}

// watches lists every pipeline deployed to the fleet with its group and
// its stages' input topics, from its target revision.
func (s *Store) watches(ctx context.Context, tx pgx.Tx, r Runner, org, project string) ([]agentproto.Watch, error) {
	rows, err := tx.Query(ctx, `SELECT p.id, p.name, t.digest FROM deployments d
		JOIN pipelines p ON p.id = d.pipeline_id JOIN revisions t ON t.id = d.revision_id
		WHERE d.fleet_id = $1 ORDER BY p.name`, r.FleetID)
	if err != nil {
		return nil, err
	}
	type dep struct {
		id           uuid.UUID
		name, digest string
	}
	deps, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (dep, error) {
		var d dep
		err := row.Scan(&d.id, &d.name, &d.digest)
		return d, err
	})
	if err != nil {
		return nil, err
	}
	out := make([]agentproto.Watch, 0, len(deps))
	for _, d := range deps {
		topics, err := s.stageTopics(ctx, tx, r.ProjectID, d.digest)
		if err != nil {
			return nil, err
		}
		out = append(out, agentproto.Watch{Name: d.name, PipelineID: d.id.String(), Group: GroupID(org, project, d.name), Topics: topics})
	}
	return out, nil
}

// stageTopics returns the input topics of the stages of the bundle's
// pipeline, compiled once per digest (bundles never change). A bundle
// that no longer compiles (the catalog changed) has none: the monitor
// then watches the topics its group committed.
func (s *Store) stageTopics(ctx context.Context, tx pgx.Tx, projectID uuid.UUID, digest string) ([]string, error) {
	if v, ok := s.topics.Load(digest); ok {
		return v.([]string), nil
	}
	var data []byte
	err := tx.QueryRow(ctx, `SELECT data FROM bundles WHERE project_id = $1 AND digest = $2`, projectID, digest).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var topics []string
	if b, err := agentproto.DecodeBundle(data, digest); err == nil && s.reg != nil {
		if plan, err := (&pipeline.Compiler{Registry: s.reg, Files: b.FS()}).Compile(b.Path, b.Source()); err == nil {
			for _, st := range plan.Stages {
				topics = append(topics, st.Input)
			}
		}
	}
	s.topics.Store(digest, topics)
	return topics, nil
}
