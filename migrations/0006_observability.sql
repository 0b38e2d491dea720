-- Lag history (DESIGN.md §6, docs/observability.md): when a runner's status
-- report is stored, each pipeline's lag view in it becomes a sample, at most
-- one per pipeline per 10-second bucket (any runner's will do: every runner
-- samples every partition of its pipelines, so each report's stage summaries
-- cover the whole pipeline). Partition detail is not kept, only the stage
-- summaries. Samples older than 24 hours are pruned as new ones arrive.
CREATE TABLE lag_samples (
    pipeline_id  uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    -- bucket is the receipt time in unix seconds / 10: the primary key makes
    -- "one per pipeline per 10 s" hold even when reports race.
    bucket       bigint NOT NULL,
    at           timestamptz NOT NULL,
    runner_id    uuid REFERENCES runners (id) ON DELETE SET NULL,
    status       text NOT NULL,
    lag          bigint NOT NULL,
    event_age_ms bigint NOT NULL,
    -- The stage summaries: stage, topic, status, lag, max_time_lag_ms,
    -- consume_rate, produce_rate, reason.
    stages       jsonb NOT NULL,
    PRIMARY KEY (pipeline_id, bucket)
);

CREATE FUNCTION record_lag_samples() RETURNS trigger LANGUAGE plpgsql AS $$
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
        FOR p IN SELECT value FROM jsonb_array_elements(NEW.report -> 'pipelines') LOOP
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
            END IF;
        END LOOP;
    EXCEPTION WHEN others THEN
        RAISE WARNING 'lag history: report of runner % not recorded: %', NEW.id, SQLERRM;
    END;
    RETURN NEW;
END
$$;

CREATE TRIGGER runners_lag_samples AFTER UPDATE OF report ON runners
    FOR EACH ROW WHEN (NEW.report IS DISTINCT FROM OLD.report)
    EXECUTE FUNCTION record_lag_samples();
