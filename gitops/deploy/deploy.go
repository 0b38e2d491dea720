// Package deploy records what should run where, for the git server, the
// REST API and the rollout reconciler alike (DESIGN.md §5): revisions made
// from commits, the bundles they deploy, deployments of pipelines to fleets,
// the rollouts that move a fleet from one set of revisions to the next, and
// from all of that each runner's desired state. It is the one place that
// writes these tables, so a push and an API call cannot disagree on what a
// revision or a rollout is.
//
// Desired state is per runner: a deployment names a target revision and
// the stable revision it replaces; runners a rollout has promoted run the
// target, the others keep the stable one. Every change that moves any
// runner bumps the fleet's generation and notifies Channel, which wakes
// the runners' long polls.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicehq/sluice/catalog"
	"github.com/sluicehq/sluice/gitops/validate"
	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/internal/pgnotify"
	"github.com/sluicehq/sluice/internal/pipeline"
)

// Channel is the NOTIFY channel whose payload is a fleet id whose desired
// state changed.
const Channel = "sluice_fleet"

// Store reads and writes desired state. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	reg  *catalog.Registry
	// topics caches each bundle's stage input topics, by digest, for the
	// fleet's monitor runner (monitor.go).
	topics sync.Map
}

// New returns a Store over pool; reg compiles stored revisions for state
// checks.
func New(pool *pgxpool.Pool, reg *catalog.Registry) *Store {
	return &Store{pool: pool, reg: reg}
}

// Pool is the store's database pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Commit describes the commit whose pipelines are recorded.
type Commit struct {
	SHA     string
	Parent  string // the deploy branch's previous head; "" for the first
	Author  string
	Message string
	// By is the user who pushed, when known.
	By *uuid.UUID
}

// Summary is what recording a commit did.
type Summary struct {
	// Changed pipelines got a new revision; Removed ones left the
	// repository and stop running; Unchanged kept their revision.
	Changed, Removed []string
	Unchanged        int
	// Rollouts started, one per fleet whose runners must change.
	Rollouts []RolloutRef
	// StateResets name the stateful steps that start from empty state.
	StateResets []string
}

// RolloutRef names a rollout for messages.
type RolloutRef struct {
	ID    uuid.UUID
	Fleet string
}

// Previous returns, for validation, the plan of each pipeline's latest
// revision in the project (compiled from its bundle), so a push is checked
// against what runs.
func (s *Store) Previous(ctx context.Context, projectID uuid.UUID) (validate.Previous, error) {
	rows, err := s.pool.Query(ctx, `SELECT p.name, b.data, r.digest FROM pipelines p
		JOIN LATERAL (SELECT digest FROM revisions WHERE pipeline_id = p.id ORDER BY number DESC LIMIT 1) r ON true
		JOIN bundles b ON b.project_id = p.project_id AND b.digest = r.digest
		WHERE p.project_id = $1`, projectID)
	if err != nil {
		return nil, err
	}
	type stored struct {
		data   []byte
		digest string
	}
	bundles := map[string]stored{}
	for rows.Next() {
		var name string
		var st stored
		if err := rows.Scan(&name, &st.data, &st.digest); err != nil {
			return nil, err
		}
		bundles[name] = st
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return func(name string) *pipeline.Plan {
		st, ok := bundles[name]
		if !ok {
			return nil
		}
		b, err := agentproto.DecodeBundle(st.data, st.digest)
		if err != nil {
			return nil
		}
		plan, err := (&pipeline.Compiler{Registry: s.reg, Files: b.FS()}).Compile(b.Path, b.Source())
		if err != nil {
			return nil // the catalog changed; nothing to compare with
		}
		return plan
	}, nil
}

type latest struct {
	pipelineID uuid.UUID
	revisionID *uuid.UUID
	digest     string
	path       string
}

// RecordCommit records a validated commit of the project's deploy branch
// in tx: a new revision for every pipeline whose bundle changed, the
// removal of pipelines that left the repository, and a rollout on every
// fleet of the project whose runners must change.
func (s *Store) RecordCommit(ctx context.Context, tx pgx.Tx, projectID uuid.UUID, c Commit, pipes []validate.Pipeline) (Summary, error) {
	var sum Summary
	// One commit at a time per project: revision numbers and rollouts are
	// decided from what the previous commit left.
	if _, err := tx.Exec(ctx, "SELECT 1 FROM projects WHERE id = $1 FOR UPDATE", projectID); err != nil {
		return sum, err
	}
	rows, err := tx.Query(ctx, `SELECT p.name, p.id, r.id, coalesce(r.digest, ''), coalesce(r.path, '') FROM pipelines p
		LEFT JOIN LATERAL (SELECT id, digest, path FROM revisions WHERE pipeline_id = p.id ORDER BY number DESC LIMIT 1) r ON true
		WHERE p.project_id = $1`, projectID)
	if err != nil {
		return sum, err
	}
	existing := map[string]latest{}
	for rows.Next() {
		var name string
		var l latest
		if err := rows.Scan(&name, &l.pipelineID, &l.revisionID, &l.digest, &l.path); err != nil {
			return sum, err
		}
		existing[name] = l
	}
	if err := rows.Err(); err != nil {
		return sum, err
	}

	targets := map[uuid.UUID]*uuid.UUID{} // pipeline -> new revision (nil: remove)
	inCommit := map[string]bool{}
	for _, p := range pipes {
		inCommit[p.Name] = true
		for _, r := range p.StateResets {
			sum.StateResets = append(sum.StateResets, fmt.Sprintf("pipeline %s: the state of step %s starts empty (%s)", p.Name, r.Step, r.Reason))
		}
		l, ok := existing[p.Name]
		if ok && l.digest == p.Digest && l.revisionID != nil {
			sum.Unchanged++
			continue
		}
		if !ok {
			id, err := uuid.NewV7()
			if err != nil {
				return sum, err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO pipelines (id, project_id, name) VALUES ($1, $2, $3)`,
				id, projectID, p.Name); err != nil {
				return sum, err
			}
			l = latest{pipelineID: id}
		}
		rev, err := insertRevision(ctx, tx, projectID, l.pipelineID, c, p)
		if err != nil {
			return sum, err
		}
		targets[l.pipelineID] = &rev
		sum.Changed = append(sum.Changed, p.Name)
	}
	for name, l := range existing {
		// Only pipelines that came from the repository leave with it;
		// those made through the API have no path.
		if !inCommit[name] && l.path != "" {
			targets[l.pipelineID] = nil
			sum.Removed = append(sum.Removed, name)
		}
	}
	if len(targets) == 0 {
		return sum, nil
	}
	fleets, err := tx.Query(ctx, "SELECT id, name FROM fleets WHERE project_id = $1 ORDER BY name", projectID)
	if err != nil {
		return sum, err
	}
	type fleet struct {
		id   uuid.UUID
		name string
	}
	var fs []fleet
	for fleets.Next() {
		var f fleet
		if err := fleets.Scan(&f.id, &f.name); err != nil {
			return sum, err
		}
		fs = append(fs, f)
	}
	if err := fleets.Err(); err != nil {
		return sum, err
	}
	for _, f := range fs {
		id, err := s.SetTargets(ctx, tx, f.id, targets, RolloutInfo{Commit: c.SHA, FromCommit: c.Parent, Message: c.Message, By: c.By})
		if err != nil {
			return sum, err
		}
		if id != uuid.Nil {
			sum.Rollouts = append(sum.Rollouts, RolloutRef{ID: id, Fleet: f.name})
		}
	}
	return sum, nil
}

func insertRevision(ctx context.Context, tx pgx.Tx, projectID, pipelineID uuid.UUID, c Commit, p validate.Pipeline) (uuid.UUID, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return id, err
	}
	side := p.SideFiles
	if side == nil {
		side = []string{}
	}
	_, err = tx.Exec(ctx, `INSERT INTO revisions (id, pipeline_id, project_id, number, commit_sha, message, source, digest, created_by, path, author, side_files)
		VALUES ($1, $2, $3, (SELECT coalesce(max(number), 0) + 1 FROM revisions WHERE pipeline_id = $2), $4, $5, $6, $7, $8, $9, $10, $11)`,
		id, pipelineID, projectID, c.SHA, c.Message, string(p.Bundle.Source()), p.Digest, c.By, p.Path, c.Author, side)
	if err != nil {
		return id, err
	}
	_, err = tx.Exec(ctx, `INSERT INTO bundles (project_id, digest, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		projectID, p.Digest, p.Data)
	return id, err
}

// RecordRevision records one pipeline revision made through the API (no
// commit, no rollout: deployments pick revisions explicitly there). It
// returns the revision's id and number.
func (s *Store) RecordRevision(ctx context.Context, tx pgx.Tx, projectID, pipelineID uuid.UUID, c Commit, p validate.Pipeline) (uuid.UUID, error) {
	if _, err := tx.Exec(ctx, "SELECT 1 FROM pipelines WHERE id = $1 FOR UPDATE", pipelineID); err != nil {
		return uuid.Nil, err
	}
	return insertRevision(ctx, tx, projectID, pipelineID, c, p)
}

// RolloutInfo describes why targets change.
type RolloutInfo struct {
	Commit, FromCommit, Message string
	By                          *uuid.UUID
	// Strategy overrides the fleet's (a revert rolls out all at once).
	Strategy string
}

// SetTargets moves the fleet's deployments of the given pipelines to new
// target revisions (nil: stop deploying it) in tx, and starts a rollout of
// the change, superseding any rollout in progress on the fleet. It returns
// the rollout's id, or uuid.Nil when nothing changed.
func (s *Store) SetTargets(ctx context.Context, tx pgx.Tx, fleetID uuid.UUID, targets map[uuid.UUID]*uuid.UUID, info RolloutInfo) (uuid.UUID, error) {
	var projectID uuid.UUID
	var strategy string
	if err := tx.QueryRow(ctx, "SELECT project_id, strategy FROM fleets WHERE id = $1 FOR UPDATE", fleetID).Scan(&projectID, &strategy); err != nil {
		return uuid.Nil, err
	}
	if info.Strategy != "" {
		strategy = info.Strategy
	}
	type item struct {
		pipeline      uuid.UUID
		from, to      *uuid.UUID
		recreate      bool
		stableBefore  *uuid.UUID
		deploymentRow bool
	}
	var items []item
	for pid, to := range targets {
		it := item{pipeline: pid, to: to}
		var cur, stable *uuid.UUID
		err := tx.QueryRow(ctx, "SELECT revision_id, stable_revision_id FROM deployments WHERE fleet_id = $1 AND pipeline_id = $2",
			fleetID, pid).Scan(&cur, &stable)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return uuid.Nil, err
		default:
			it.deploymentRow = true
			// What runners not promoted run: the stable revision of a
			// rollout still in progress, else the current target.
			it.from = cur
			if stable != nil {
				it.from = stable
			}
			it.stableBefore = stable
		}
		if it.to == nil && !it.deploymentRow {
			continue // nothing deployed, nothing to stop
		}
		if it.to != nil && it.from != nil && *it.to == *it.from && (it.stableBefore == nil || *it.stableBefore == *it.to) {
			continue
		}
		if it.to != nil && it.from != nil && it.deploymentRow {
			same, err := sameBundle(ctx, tx, *it.from, *it.to)
			if err != nil {
				return uuid.Nil, err
			}
			if same {
				// A new revision with the bundle that runs (a revert, or a
				// commit that changed other pipelines): runners see the same
				// digest, so record it without a rollout.
				if _, err := tx.Exec(ctx, `UPDATE deployments SET revision_id = $3, stable_revision_id = NULL, updated_at = now(),
					version = version + 1 WHERE fleet_id = $1 AND pipeline_id = $2`, fleetID, pid, it.to); err != nil {
					return uuid.Nil, err
				}
				continue
			}
		}
		if it.to != nil && it.from != nil {
			rc, err := s.protocolChanges(ctx, tx, *it.from, *it.to)
			if err != nil {
				return uuid.Nil, err
			}
			it.recreate = rc
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		return uuid.Nil, nil
	}
	// A rollout in progress is superseded: its runners move to the new
	// rollout's plan from wherever they are.
	if _, err := tx.Exec(ctx, `UPDATE rollouts SET phase = 'Superseded', status = 'Synced', finished_at = now(), updated_at = now(),
		reason = 'superseded by a newer rollout' WHERE fleet_id = $1 AND finished_at IS NULL`, fleetID); err != nil {
		return uuid.Nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.Nil, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rollouts (id, project_id, fleet_id, commit_sha, from_commit, message, strategy, created_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, id, projectID, fleetID, info.Commit, info.FromCommit, firstLine(info.Message), strategy, info.By); err != nil {
		return uuid.Nil, err
	}
	for _, it := range items {
		if _, err := tx.Exec(ctx, `INSERT INTO rollout_items (rollout_id, pipeline_id, from_revision_id, to_revision_id, recreate) VALUES ($1, $2, $3, $4, $5)`,
			id, it.pipeline, it.from, it.to, it.recreate); err != nil {
			return uuid.Nil, err
		}
		switch {
		case it.to == nil:
			if _, err := tx.Exec(ctx, "DELETE FROM deployments WHERE fleet_id = $1 AND pipeline_id = $2", fleetID, it.pipeline); err != nil {
				return uuid.Nil, err
			}
		case it.deploymentRow:
			if _, err := tx.Exec(ctx, `UPDATE deployments SET revision_id = $3, stable_revision_id = $4, status = 'Progressing',
				message = '', updated_at = now(), version = version + 1 WHERE fleet_id = $1 AND pipeline_id = $2`,
				fleetID, it.pipeline, it.to, it.from); err != nil {
				return uuid.Nil, err
			}
		default:
			did, err := uuid.NewV7()
			if err != nil {
				return uuid.Nil, err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO deployments (id, project_id, fleet_id, pipeline_id, revision_id, status)
				VALUES ($1, $2, $3, $4, $5, 'Progressing')`, did, projectID, fleetID, it.pipeline, it.to); err != nil {
				return uuid.Nil, err
			}
		}
	}
	if err := AddEvent(ctx, tx, id, rolloutStartMessage(strategy, len(items), info)); err != nil {
		return uuid.Nil, err
	}
	return id, BumpGeneration(ctx, tx, fleetID)
}

// sameBundle reports whether two revisions deploy the same bundle.
func sameBundle(ctx context.Context, tx pgx.Tx, a, b uuid.UUID) (bool, error) {
	var same bool
	err := tx.QueryRow(ctx, `SELECT (SELECT digest FROM revisions WHERE id = $1) = (SELECT digest FROM revisions WHERE id = $2)`, a, b).Scan(&same)
	return same, err
}

func rolloutStartMessage(strategy string, n int, info RolloutInfo) string {
	what := "pipeline"
	if n != 1 {
		what += "s"
	}
	msg := fmt.Sprintf("rollout started (%s): %d %s", strategy, n, what)
	if info.Commit != "" {
		msg += " from commit " + short(info.Commit)
	}
	return msg
}

// protocolChanges reports whether moving from one revision to another
// changes the pipeline's consumer-group protocol (a join added or removed
// changes its balancer), which old and new members cannot share.
func (s *Store) protocolChanges(ctx context.Context, tx pgx.Tx, from, to uuid.UUID) (bool, error) {
	var sides [2]bool
	for i, id := range []uuid.UUID{from, to} {
		var data []byte
		var digest string
		err := tx.QueryRow(ctx, `SELECT b.data, b.digest FROM revisions r JOIN bundles b ON b.project_id = r.project_id AND b.digest = r.digest
			WHERE r.id = $1`, id).Scan(&data, &digest)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil // an API revision of old: no bundle to look at
		}
		if err != nil {
			return false, err
		}
		b, err := agentproto.DecodeBundle(data, digest)
		if err != nil {
			return false, nil
		}
		plan, err := (&pipeline.Compiler{Registry: s.reg, Files: b.FS()}).Compile(b.Path, b.Source())
		if err != nil {
			return false, nil
		}
		sides[i] = hasSideInputs(plan)
	}
	return sides[0] != sides[1], nil
}

func hasSideInputs(plan *pipeline.Plan) bool {
	for _, st := range plan.Steps {
		if _, ok := st.Operator.(catalog.SideInputOperator); ok {
			return true
		}
	}
	return false
}

// BumpGeneration moves the fleet's generation on and wakes its runners
// when tx commits.
func BumpGeneration(ctx context.Context, tx pgx.Tx, fleetID uuid.UUID) error {
	if _, err := tx.Exec(ctx, "UPDATE fleets SET generation = generation + 1 WHERE id = $1", fleetID); err != nil {
		return err
	}
	return pgnotify.Notify(ctx, tx, Channel, fleetID.String())
}

// AddEvent appends a line to a rollout's history.
func AddEvent(ctx context.Context, tx pgx.Tx, rollout uuid.UUID, message string) error {
	_, err := tx.Exec(ctx, "INSERT INTO rollout_events (rollout_id, message) VALUES ($1, $2)", rollout, message)
	return err
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}

// Rollout phases, in the order a rollout moves through them. Stopping is
// taken only by rollouts that change a pipeline's group protocol.
const (
	PhasePending    = "Pending"
	PhaseStopping   = "Stopping"
	PhaseRolling    = "Rolling"
	PhaseSucceeded  = "Succeeded"
	PhaseRolledBack = "RolledBack"
	PhaseFailed     = "Failed"
	PhaseSuperseded = "Superseded"
)

// Statuses of a rollout and of a deployment, in Argo CD's words.
const (
	StatusSynced      = "Synced"
	StatusOutOfSync   = "OutOfSync"
	StatusProgressing = "Progressing"
	StatusDegraded    = "Degraded"
)
