-- Hardening (issue 16): idempotency claims that a dead request cannot hold
-- forever and that a slow one cannot apply twice.
--
-- claim identifies the request holding the key; claimed_at starts its
-- lease. A claim past its lease whose request never committed (status 0,
-- applied_at NULL) may be taken over by a retry. applied_at is set, in
-- the mutation's own transaction, when the request's change commits, so
-- a takeover never re-runs a change that landed; outcome says what landed
-- (action, resource type and id) for a retry whose response was lost.
ALTER TABLE idempotency_keys
    ADD COLUMN claim      uuid NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN claimed_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN applied_at timestamptz,
    ADD COLUMN outcome    jsonb NOT NULL DEFAULT '{}';
