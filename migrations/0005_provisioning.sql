-- Provisioning (issue 13): fleets through Terraform. A fleet run plans a
-- change (create, scale, upgrade, destroy), waits for review, and applies
-- exactly the reviewed plan. Terraform's own state is not here: it is in
-- the pg backend, one schema per fleet (fleet_<id without dashes>).

-- runner_version is the version the fleet's runners run (or will, once a
-- run applies); provisioned_runners and resources are what the last apply
-- left (resources = 0: nothing to destroy before the record may go).
ALTER TABLE fleets
    ADD COLUMN runner_version      text    NOT NULL DEFAULT 'dev',
    ADD COLUMN provisioned_runners integer NOT NULL DEFAULT 0,
    ADD COLUMN resources           integer NOT NULL DEFAULT 0;

-- state: queued -> planning -> planned -> approved -> applying -> applied,
-- or unchanged (nothing to do), discarded, cancelled, failed. A run is
-- finished when finished_at is set; a fleet has at most one unfinished run,
-- so two runs can never interleave (the index refuses the second).
CREATE TABLE provisioning_runs (
    id                uuid PRIMARY KEY,
    fleet_id          uuid NOT NULL REFERENCES fleets (id) ON DELETE CASCADE,
    number            integer NOT NULL,
    reason            text NOT NULL CHECK (reason IN ('create', 'scale', 'upgrade', 'destroy', 'plan')),
    destroy           boolean NOT NULL DEFAULT false,
    runners           integer NOT NULL CHECK (runners >= 0),
    runner_version    text NOT NULL,
    state             text NOT NULL DEFAULT 'queued' CHECK (state IN
        ('queued', 'planning', 'planned', 'approved', 'applying', 'applied', 'unchanged', 'discarded', 'cancelled', 'failed')),
    phase             text NOT NULL DEFAULT '',
    plan_summary      jsonb,
    plan_digest       text NOT NULL DEFAULT '',
    resources_done    integer NOT NULL DEFAULT 0,
    resources_total   integer NOT NULL DEFAULT 0,
    error             text NOT NULL DEFAULT '',
    error_kind        text NOT NULL DEFAULT '',
    cancel_requested  boolean NOT NULL DEFAULT false,
    terraform         text NOT NULL DEFAULT '',
    token_prefix      text NOT NULL DEFAULT '',
    token_expires_at  timestamptz,
    requested_by      text NOT NULL DEFAULT '',
    approved_by       text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    heartbeat_at      timestamptz,
    finished_at       timestamptz,
    UNIQUE (fleet_id, number)
);

CREATE UNIQUE INDEX provisioning_runs_one_open ON provisioning_runs (fleet_id) WHERE finished_at IS NULL;
CREATE INDEX provisioning_runs_todo ON provisioning_runs (created_at) WHERE state IN ('queued', 'approved', 'planning', 'applying');

-- A run's log: terraform's messages and the control plane's own lines.
CREATE TABLE provisioning_logs (
    id      bigserial PRIMARY KEY,
    run_id  uuid NOT NULL REFERENCES provisioning_runs (id) ON DELETE CASCADE,
    at      timestamptz NOT NULL DEFAULT now(),
    line    text NOT NULL
);

CREATE INDEX provisioning_logs_run ON provisioning_logs (run_id, id);
