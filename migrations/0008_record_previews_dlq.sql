-- Record previews and the DLQ viewer (docs/security.md, docs/observability.md).
--
-- record_previews is a project's opt-in to let payload and key previews
-- leave its runners: {"enabled": bool, "redact": [field paths], "max_bytes":
-- int}. Off by default: runners then report no key or value at all.
ALTER TABLE projects ADD COLUMN record_previews jsonb NOT NULL
    DEFAULT '{"enabled": false, "redact": [], "max_bytes": 1024}';

-- A request to re-produce dead letters of a pipeline's DLQ to the stage
-- inputs they came from. The fleet's monitor runner that first receives it
-- in its assignments claims it (runner_id), so two runners never replay the
-- same request; the runner remembers the ids it has replayed on disk.
CREATE TABLE dlq_replays (
    id           uuid PRIMARY KEY,
    project_id   uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    pipeline_id  uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    fleet_id     uuid NOT NULL REFERENCES fleets (id) ON DELETE CASCADE,
    dlq_topic    text NOT NULL,
    -- selection: {"offsets": [{"partition": p, "offset": o}, ...]} or
    -- {"up_to": [{"partition": p, "offset": o}, ...]} (inclusive).
    selection    jsonb NOT NULL,
    -- inputs: the stage input topics a dead letter may go back to.
    inputs       jsonb NOT NULL DEFAULT '[]',
    requested_by uuid,
    requested_at timestamptz NOT NULL DEFAULT now(),
    runner_id    uuid REFERENCES runners (id) ON DELETE SET NULL,
    claimed_at   timestamptz,
    -- state: pending (not yet claimed), claimed, running, done, failed.
    state        text NOT NULL DEFAULT 'pending',
    replayed     integer NOT NULL DEFAULT 0,
    errors       jsonb NOT NULL DEFAULT '[]',
    finished_at  timestamptz
);

CREATE INDEX dlq_replays_pipeline ON dlq_replays (pipeline_id, requested_at DESC);
CREATE INDEX dlq_replays_open ON dlq_replays (fleet_id) WHERE finished_at IS NULL;
