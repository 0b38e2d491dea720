package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/internal/agentproto"
	"github.com/sluicehq/sluice/internal/identity"
)

// Errors of the runner side. The agent server maps them to statuses.
var (
	// ErrBadBootstrap: the bootstrap token is unknown, spent or expired.
	ErrBadBootstrap = errors.New("the bootstrap token is unknown, already used or expired; mint a new one for the fleet")
	// ErrBadCredential: the runner credential is unknown or revoked.
	ErrBadCredential = errors.New("unknown or revoked runner credential; register the runner again with a new bootstrap token")
	// ErrNoBundle: no such bundle is assigned to the runner's fleet.
	ErrNoBundle = errors.New("no such bundle in this runner's fleet")
)

// Runner is an authenticated runner.
type Runner struct {
	ID, FleetID, ProjectID uuid.UUID
	Name                   string
}

func newSecret(prefix string) (string, []byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	s := prefix + base64.RawURLEncoding.EncodeToString(b)
	return s, identity.HashSecret(s), nil
}

// BootstrapToken is a minted bootstrap token; Secret is its only copy.
type BootstrapToken struct {
	ID        uuid.UUID `json:"id"`
	FleetID   uuid.UUID `json:"fleet_id"`
	Secret    string    `json:"token,omitempty"`
	Prefix    string    `json:"prefix"`
	Uses      int       `json:"uses"`
	ExpiresAt time.Time `json:"expires_at"`
}

// MintBootstrapToken creates a token that registers up to uses runners in
// the fleet until ttl passes.
func MintBootstrapToken(ctx context.Context, tx pgx.Tx, fleetID uuid.UUID, uses int, ttl time.Duration, by *uuid.UUID) (BootstrapToken, error) {
	secret, hash, err := newSecret(agentproto.BootstrapPrefix)
	if err != nil {
		return BootstrapToken{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return BootstrapToken{}, err
	}
	t := BootstrapToken{ID: id, FleetID: fleetID, Secret: secret, Prefix: secret[:len(agentproto.BootstrapPrefix)+6], Uses: uses}
	err = tx.QueryRow(ctx, `INSERT INTO bootstrap_tokens (id, fleet_id, token_hash, prefix, uses_left, expires_at, created_by)
		VALUES ($1, $2, $3, $4, $5, now() + $6::interval, $7) RETURNING expires_at`,
		id, fleetID, hash, t.Prefix, uses, fmt.Sprintf("%d milliseconds", ttl.Milliseconds()), by).Scan(&t.ExpiresAt)
	return t, err
}

// Register spends one use of a bootstrap token and creates a runner with
// a fresh credential, returned once.
func (s *Store) Register(ctx context.Context, bootstrap string, req agentproto.RegisterRequest) (agentproto.RegisterResponse, error) {
	var resp agentproto.RegisterResponse
	if !strings.HasPrefix(bootstrap, agentproto.BootstrapPrefix) {
		return resp, ErrBadBootstrap
	}
	name := strings.TrimSpace(req.Name)
	if name == "" || len(name) > 200 || strings.ContainsRune(name, 0) {
		name = "runner"
	}
	version := req.Version
	if len(version) > 100 || strings.ContainsRune(version, 0) {
		version = ""
	}
	cred, hash, err := newSecret(agentproto.CredentialPrefix)
	if err != nil {
		return resp, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return resp, err
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var fleet uuid.UUID
		// Spending and checking in one statement: two runners racing on
		// the last use cannot both win.
		err := tx.QueryRow(ctx, `UPDATE bootstrap_tokens SET uses_left = uses_left - 1
			WHERE token_hash = $1 AND uses_left > 0 AND expires_at > now() RETURNING fleet_id`, identity.HashSecret(bootstrap)).Scan(&fleet)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrBadBootstrap
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO runners (id, fleet_id, name, version, credential_hash) VALUES ($1, $2, $3, $4, $5)`,
			id, fleet, name, version, hash); err != nil {
			return err
		}
		resp = agentproto.RegisterResponse{RunnerID: id.String(), FleetID: fleet.String(), Credential: cred}
		return nil
	})
	return resp, err
}

// Authenticate finds the runner of a credential and notes that it was seen.
func (s *Store) Authenticate(ctx context.Context, credential string) (Runner, error) {
	var r Runner
	if !strings.HasPrefix(credential, agentproto.CredentialPrefix) {
		return r, ErrBadCredential
	}
	err := s.pool.QueryRow(ctx, `UPDATE runners u SET last_seen_at = now() FROM fleets f
		WHERE u.credential_hash = $1 AND u.revoked_at IS NULL AND f.id = u.fleet_id
		RETURNING u.id, u.fleet_id, f.project_id, u.name`, identity.HashSecret(credential)).Scan(&r.ID, &r.FleetID, &r.ProjectID, &r.Name)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, ErrBadCredential
	}
	return r, err
}

// Generation is the fleet's current generation.
func (s *Store) Generation(ctx context.Context, fleetID uuid.UUID) (int64, error) {
	var g int64
	err := s.pool.QueryRow(ctx, "SELECT generation FROM fleets WHERE id = $1", fleetID).Scan(&g)
	return g, err
}

// Assignments is the runner's desired state: for every deployment of its
// fleet, the target revision if a rollout promoted the runner (or none is
// in progress), else the stable one; a pipeline whose group protocol
// changes is left out while its old members stop.
func (s *Store) Assignments(ctx context.Context, r Runner) (agentproto.Assignments, error) {
	var out agentproto.Assignments
	var monitor bool
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var org, project string
		var previews agentproto.RecordPreviews
		if err := tx.QueryRow(ctx, `SELECT f.generation, o.name, p.name, p.record_previews FROM fleets f JOIN projects p ON p.id = f.project_id
			JOIN organizations o ON o.id = p.org_id WHERE f.id = $1`, r.FleetID).Scan(&out.Generation, &org, &project, &previews); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT p.id, p.name,
				t.number, t.digest, t.commit_sha, s.number, s.digest, s.commit_sha,
				ro.promoted, coalesce(ri.recreate, false), coalesce(ro.phase, '')
			FROM deployments d
			JOIN pipelines p ON p.id = d.pipeline_id
			JOIN revisions t ON t.id = d.revision_id
			LEFT JOIN revisions s ON s.id = d.stable_revision_id
			LEFT JOIN rollouts ro ON ro.fleet_id = d.fleet_id AND ro.finished_at IS NULL
			LEFT JOIN rollout_items ri ON ri.rollout_id = ro.id AND ri.pipeline_id = d.pipeline_id
			WHERE d.fleet_id = $1 ORDER BY p.name`, r.FleetID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				pid              uuid.UUID
				name             string
				tNum             int
				tDigest, tCommit string
				sNum             *int
				sDigest, sCommit *string
				promoted         []uuid.UUID
				recreate         bool
				phase            string
			)
			if err := rows.Scan(&pid, &name, &tNum, &tDigest, &tCommit, &sNum, &sDigest, &sCommit, &promoted, &recreate, &phase); err != nil {
				return err
			}
			a := agentproto.Assignment{Name: name, PipelineID: pid.String(), Revision: tNum, Digest: tDigest, Commit: tCommit,
				Group: GroupID(org, project, name)}
			if sNum != nil && *sDigest != tDigest && !contains(promoted, r.ID) {
				if recreate && phase == PhaseStopping {
					continue
				}
				a.Revision, a.Digest, a.Commit = *sNum, *sDigest, *sCommit
			}
			if previews.Enabled {
				p := previews
				a.Previews = &p
			}
			out.Pipelines = append(out.Pipelines, a)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		mon, err := isMonitor(ctx, tx, r)
		if err != nil || !mon {
			return err
		}
		monitor = true
		out.Monitor, err = s.watches(ctx, tx, r, org, project)
		return err
	})
	if err != nil {
		return out, err
	}
	out.Replays, err = s.replays(ctx, r, monitor)
	return out, err
}

// GroupID is a pipeline's consumer group: unique per organisation, project
// and pipeline, so projects sharing a Kafka cluster never share a group.
func GroupID(org, project, pipeline string) string {
	return "sluice." + org + "." + project + "." + pipeline
}

func contains(ids []uuid.UUID, id uuid.UUID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// Bundle returns a bundle's bytes if a revision of a pipeline deployed to
// the runner's fleet uses it (target or stable), so a runner can read only
// what its own fleet runs.
func (s *Store) Bundle(ctx context.Context, r Runner, digest string) ([]byte, error) {
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT b.data FROM bundles b WHERE b.project_id = $1 AND b.digest = $2 AND EXISTS (
			SELECT 1 FROM deployments d JOIN revisions v ON v.id IN (d.revision_id, d.stable_revision_id)
			WHERE d.fleet_id = $3 AND v.digest = $2)`, r.ProjectID, digest, r.FleetID).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNoBundle
	}
	return data, err
}

// MaxReportBytes bounds a stored status report.
const MaxReportBytes = 1 << 20

// Report stores a runner's status report and refreshes the deployments'
// status it bears on at the next reconcile.
func (s *Store) Report(ctx context.Context, r Runner, rep agentproto.StatusReport) error {
	data, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	// PostgreSQL's jsonb refuses NUL; an error message may carry one.
	data = bytes.ReplaceAll(data, []byte(`\u0000`), []byte(`\ufffd`))
	if len(data) > MaxReportBytes {
		return fmt.Errorf("a status report may take %d KiB, this one %d", MaxReportBytes>>10, len(data)>>10)
	}
	if _, err = s.pool.Exec(ctx, `UPDATE runners SET report = $2, generation = $3, version = $4, last_seen_at = now() WHERE id = $1`,
		r.ID, data, rep.Generation, rep.Version); err != nil {
		return err
	}
	return s.recordReplays(ctx, r, rep.Replays)
}
