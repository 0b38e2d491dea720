-- Lag history beyond 24 hours and the fleet's monitor runner
-- (docs/observability.md, "History").
--
-- lag_samples keeps a pipeline's samples at 10 s resolution for 24 h, as
-- before. lag_history keeps them downsampled: one point per minute for
-- 7 days and one per 10 minutes for 30 days. Each point is the worst
-- sample of its period (worst status, then largest event age: the rule the
-- API's thinning uses), so downsampling never hides a problem; samples
-- counts the 10 s samples it stands for.
--
-- The rollup and the pruning run in the trigger that writes the samples,
-- per pipeline, when a sample opens a new period: the minute (or ten)
-- that just ended is complete, so it is rolled up once, from the rows of
-- the finer table. It costs one indexed read per sample and a few rows
-- once a minute per pipeline, and needs no job to be scheduled: a
-- pipeline whose samples stop (no runner, no monitor) keeps its last rows
-- until its next sample or until it is deleted.
CREATE TABLE lag_history (
    pipeline_id  uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    -- resolution is 60 or 600 seconds; bucket is unix seconds / resolution.
    resolution   integer NOT NULL CHECK (resolution IN (60, 600)),
    bucket       bigint NOT NULL,
    at           timestamptz NOT NULL,
    status       text NOT NULL,
    lag          bigint NOT NULL,
    event_age_ms bigint NOT NULL,
    stages       jsonb NOT NULL,
    samples      integer NOT NULL,
    PRIMARY KEY (pipeline_id, resolution, bucket)
);

-- Burrow's severity order, for "the worst sample".
CREATE FUNCTION lag_status_rank(status text) RETURNS integer LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE status WHEN 'REWIND' THEN 4 WHEN 'STALLED' THEN 3 WHEN 'STOPPED' THEN 2 WHEN 'WARNING' THEN 1 ELSE 0 END
$$;

-- lag_history_rollup rolls the complete periods of pipeline pid up to the
-- 10 s bucket b (exclusive of the period b is in) into lag_history, and
-- prunes what is past each resolution's retention.
CREATE FUNCTION lag_history_rollup(pid uuid, b bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    m      bigint := b / 6;     -- the minute of b
    t      bigint := b / 60;    -- its ten minutes
    last_m bigint;
    last_t bigint;
BEGIN
    SELECT max(bucket) INTO last_m FROM lag_history WHERE pipeline_id = pid AND resolution = 60;
    last_m := coalesce(last_m, m - 1441);
    IF last_m < m - 1 THEN
        INSERT INTO lag_history (pipeline_id, resolution, bucket, at, status, lag, event_age_ms, stages, samples)
        SELECT DISTINCT ON (s.bucket / 6) pid, 60, s.bucket / 6, to_timestamp((s.bucket / 6) * 60), s.status, s.lag, s.event_age_ms, s.stages,
            count(*) OVER (PARTITION BY s.bucket / 6)
        FROM lag_samples s
        WHERE s.pipeline_id = pid AND s.bucket >= (last_m + 1) * 6 AND s.bucket < m * 6
        ORDER BY s.bucket / 6, lag_status_rank(s.status) DESC, s.event_age_ms DESC, s.bucket DESC
        ON CONFLICT DO NOTHING;
        DELETE FROM lag_history WHERE pipeline_id = pid AND resolution = 60 AND bucket < m - 7 * 1440;
    END IF;

    SELECT max(bucket) INTO last_t FROM lag_history WHERE pipeline_id = pid AND resolution = 600;
    last_t := coalesce(last_t, t - 7 * 144 - 1);
    IF last_t < t - 1 THEN
        INSERT INTO lag_history (pipeline_id, resolution, bucket, at, status, lag, event_age_ms, stages, samples)
        SELECT DISTINCT ON (h.bucket / 10) pid, 600, h.bucket / 10, to_timestamp((h.bucket / 10) * 600), h.status, h.lag, h.event_age_ms, h.stages,
            sum(h.samples) OVER (PARTITION BY h.bucket / 10)
        FROM lag_history h
        WHERE h.pipeline_id = pid AND h.resolution = 60 AND h.bucket >= (last_t + 1) * 10 AND h.bucket < t * 10
        ORDER BY h.bucket / 10, lag_status_rank(h.status) DESC, h.event_age_ms DESC, h.bucket DESC
        ON CONFLICT DO NOTHING;
        DELETE FROM lag_history WHERE pipeline_id = pid AND resolution = 600 AND bucket < t - 30 * 144;
    END IF;
END
$$;

-- The trigger now also records the lag the fleet's monitor runner reports
-- (report -> 'monitor', one entry per pipeline of the fleet), so a
-- pipeline without a live runner keeps its history, and rolls history up.
CREATE OR REPLACE FUNCTION record_lag_samples() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    p      jsonb;
    l      jsonb;
    pid    uuid;
    b      bigint := floor(extract(epoch FROM now()) / 10)::bigint;
    n      integer;
BEGIN
    IF jsonb_typeof(NEW.report -> 'pipelines') IS DISTINCT FROM 'array' THEN
        RETURN NEW;
    END IF;
    -- One block (one subtransaction) for the whole report: a malformed lag
    -- view loses this report's history, never the report itself.
    BEGIN
        FOR p IN SELECT value FROM jsonb_array_elements(NEW.report -> 'pipelines')
                 UNION ALL
                 SELECT value FROM jsonb_array_elements(CASE WHEN jsonb_typeof(NEW.report -> 'monitor') = 'array'
                     THEN NEW.report -> 'monitor' ELSE '[]'::jsonb END) LOOP
            l := p -> 'lag';
            CONTINUE WHEN jsonb_typeof(l) IS DISTINCT FROM 'object' OR jsonb_typeof(l -> 'stages') IS DISTINCT FROM 'array';
            SELECT pl.id INTO pid FROM pipelines pl JOIN fleets f ON f.project_id = pl.project_id
                WHERE f.id = NEW.fleet_id AND pl.name = p ->> 'name';
            CONTINUE WHEN pid IS NULL;
            INSERT INTO lag_samples (pipeline_id, bucket, at, runner_id, status, lag, event_age_ms, stages)
            SELECT pid, b, now(), NEW.id, coalesce(l ->> 'status', 'OK'),
                coalesce((SELECT sum((s ->> 'lag')::bigint) FROM jsonb_array_elements(l -> 'stages') s), 0),
                coalesce((l ->> 'event_age_ms')::bigint, 0),
                coalesce((SELECT jsonb_agg(s - 'partitions') FROM jsonb_array_elements(l -> 'stages') s), '[]')
            ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n > 0 THEN
                DELETE FROM lag_samples WHERE pipeline_id = pid AND bucket < b - 8640;
                PERFORM lag_history_rollup(pid, b);
            END IF;
        END LOOP;
    EXCEPTION WHEN others THEN
        RAISE WARNING 'lag history: report of runner % not recorded: %', NEW.id, SQLERRM;
    END;
    RETURN NEW;
END
$$;
