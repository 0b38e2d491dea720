-- Git repositories of projects (DESIGN.md §5), one per project, stored
-- here rather than on disk so control-plane replicas stay stateless and a
-- push commits with the rows the push hook writes (revisions, rollouts).
-- Served over smart HTTP by gitops/gitserver; see gitops/gitstore.

-- Per-repository accounting. The row is created by the first write and
-- locked (FOR UPDATE) by every write, which serialises the pushes of one
-- repository and keeps size_bytes exact.
CREATE TABLE git_repos (
    project_id uuid PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    size_bytes bigint NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    objects    bigint NOT NULL DEFAULT 0 CHECK (objects >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Loose objects, uncompressed: PostgreSQL compresses large values itself
-- (TOAST), and keeping the raw content lets any query read a blob.
-- Objects are immutable and addressed by their SHA-1, so rows are only
-- ever inserted (ON CONFLICT DO NOTHING), never updated.
CREATE TABLE git_objects (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    hash       bytea NOT NULL CHECK (length(hash) = 20),
    type       text NOT NULL CHECK (type IN ('commit', 'tree', 'blob', 'tag')),
    size       bigint NOT NULL CHECK (size >= 0),
    data       bytea NOT NULL,
    PRIMARY KEY (project_id, hash)
);

-- References. target is a 40-hex object id, or for a symbolic ref the
-- name of the ref it points to. Without a HEAD row, HEAD is taken as a
-- symbolic ref to refs/heads/main. Updates are compare-and-swap on target.
CREATE TABLE git_refs (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       text NOT NULL,
    target     text NOT NULL,
    symbolic   boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, name),
    CHECK (symbolic OR target ~ '^[0-9a-f]{40}$')
);
