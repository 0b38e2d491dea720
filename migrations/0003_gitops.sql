-- GitOps (DESIGN.md §1, §5): revisions made from commits, the bundles
-- runners download, runner registration, rollouts and their events.

-- The branch whose pushes deploy; other branches are stored only.
ALTER TABLE projects ADD COLUMN deploy_branch text NOT NULL DEFAULT 'main';

-- A revision made from a push names the pipeline file, the commit's author
-- and the bundle (YAML and side files) that runners execute. The digest of
-- a revision is its bundle's digest, so a changed side file is a new
-- revision. Revisions made through the API have a bundle too.
ALTER TABLE revisions ADD COLUMN path text NOT NULL DEFAULT '';
ALTER TABLE revisions ADD COLUMN author text NOT NULL DEFAULT '';
ALTER TABLE revisions ADD COLUMN side_files text[] NOT NULL DEFAULT '{}';

-- Bundles by digest (SHA-256 of their canonical bytes), per project so a
-- runner of one project can never fetch another's, even by guessing.
CREATE TABLE bundles (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    digest     text NOT NULL,
    data       bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, digest)
);

-- generation changes whenever any runner of the fleet should run something
-- else; runners long-poll for it. strategy and the gate settings shape new
-- rollouts on the fleet.
ALTER TABLE fleets ADD COLUMN generation bigint NOT NULL DEFAULT 1;
ALTER TABLE fleets ADD COLUMN strategy text NOT NULL DEFAULT 'all-at-once'
    CHECK (strategy IN ('all-at-once', 'rolling', 'canary'));
ALTER TABLE fleets ADD COLUMN bake_seconds integer NOT NULL DEFAULT 30 CHECK (bake_seconds >= 0);
ALTER TABLE fleets ADD COLUMN max_dlq_ratio double precision NOT NULL DEFAULT 0.05
    CHECK (max_dlq_ratio >= 0 AND max_dlq_ratio <= 1);

-- Bootstrap tokens: minted per fleet, short-lived, each registers at most
-- uses runners. Only a SHA-256 of the secret is kept.
CREATE TABLE bootstrap_tokens (
    id         uuid PRIMARY KEY,
    fleet_id   uuid NOT NULL REFERENCES fleets (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE,
    prefix     text NOT NULL,
    uses_left  integer NOT NULL CHECK (uses_left >= 0),
    expires_at timestamptz NOT NULL,
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bootstrap_tokens_fleet ON bootstrap_tokens (fleet_id);

-- Runners: one row per registration; the credential authenticates every
-- later call and is scoped to the fleet. report is the last status report
-- (counts, states and error messages only, never record contents).
CREATE TABLE runners (
    id              uuid PRIMARY KEY,
    fleet_id        uuid NOT NULL REFERENCES fleets (id) ON DELETE CASCADE,
    name            text NOT NULL,
    version         text NOT NULL DEFAULT '',
    credential_hash bytea NOT NULL UNIQUE,
    registered_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    generation      bigint NOT NULL DEFAULT 0,
    report          jsonb NOT NULL DEFAULT '{}',
    revoked_at      timestamptz
);
CREATE INDEX runners_fleet ON runners (fleet_id, name);

-- A deployment's revision_id is the target; stable_revision_id is what
-- runners not yet promoted by a rollout keep running (NULL: nothing ran
-- before, so every runner takes the target).
ALTER TABLE deployments ADD COLUMN stable_revision_id uuid REFERENCES revisions (id);
ALTER TABLE deployments ADD COLUMN message text NOT NULL DEFAULT '';

-- A rollout moves one fleet from the revisions it ran to those of a commit.
CREATE TABLE rollouts (
    id           uuid PRIMARY KEY,
    project_id   uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    fleet_id     uuid NOT NULL REFERENCES fleets (id) ON DELETE CASCADE,
    commit_sha   text NOT NULL DEFAULT '',
    from_commit  text NOT NULL DEFAULT '',
    message      text NOT NULL DEFAULT '',
    strategy     text NOT NULL,
    -- phase: Pending, Canary, Rolling, Baking, Succeeded, RolledBack, Failed, Superseded
    phase        text NOT NULL DEFAULT 'Pending',
    -- status: Progressing, Synced, Degraded
    status       text NOT NULL DEFAULT 'Progressing',
    reason       text NOT NULL DEFAULT '',
    paused       boolean NOT NULL DEFAULT false,
    promoted     uuid[] NOT NULL DEFAULT '{}',
    step_started timestamptz NOT NULL DEFAULT now(),
    baseline     jsonb NOT NULL DEFAULT '{}',
    revert_commit text NOT NULL DEFAULT '',
    created_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX rollouts_fleet ON rollouts (fleet_id, id);
CREATE INDEX rollouts_project ON rollouts (project_id, id);
CREATE INDEX rollouts_active ON rollouts (id) WHERE finished_at IS NULL;

-- The pipelines a rollout changes, from and to.
CREATE TABLE rollout_items (
    rollout_id       uuid NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    pipeline_id      uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    from_revision_id uuid REFERENCES revisions (id),
    to_revision_id   uuid REFERENCES revisions (id),
    -- recreate: the consumer group's protocol changes (a join added or
    -- removed), so old members stop before new ones start.
    recreate         boolean NOT NULL DEFAULT false,
    PRIMARY KEY (rollout_id, pipeline_id)
);

-- What happened, in order, for `sluice rollout watch` and the IDE.
CREATE TABLE rollout_events (
    id         bigserial PRIMARY KEY,
    rollout_id uuid NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    at         timestamptz NOT NULL DEFAULT now(),
    message    text NOT NULL
);
CREATE INDEX rollout_events_rollout ON rollout_events (rollout_id, id);
