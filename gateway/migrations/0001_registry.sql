-- The shared registry: what the embedded SQLite registry holds, plus the
-- registry version that orders every write, the log of what each version
-- changed, component blobs in chunks, and the nodes that serve it.

CREATE TABLE registry (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    version BIGINT NOT NULL
);
INSERT INTO registry (id, version) VALUES (TRUE, 0);

CREATE TABLE registry_changes (
    version BIGINT PRIMARY KEY,
    functions TEXT[] NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE functions (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE versions (
    function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    digest TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    compile_ms DOUBLE PRECISION NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (function, version)
);
CREATE INDEX versions_digest ON versions (digest);

CREATE TABLE release_state (
    function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (function, kind, key)
);

CREATE TABLE release_history (
    id BIGSERIAL PRIMARY KEY,
    function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    entry TEXT NOT NULL
);
CREATE INDEX release_history_function ON release_history (function, id);

CREATE TABLE triggers (
    function TEXT PRIMARY KEY REFERENCES functions(name) ON DELETE CASCADE,
    spec TEXT NOT NULL
);

CREATE TABLE routes (
    pattern TEXT PRIMARY KEY,
    function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE
);

CREATE TABLE tokens (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    functions TEXT NOT NULL,
    secrets TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT,
    last_used_at_ms BIGINT
);

CREATE TABLE blobs (
    digest TEXT PRIMARY KEY,
    size_bytes BIGINT NOT NULL,
    -- Refreshed by every upload of the same bytes: the garbage collector's
    -- grace counts from it.
    touched_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE blob_chunks (
    digest TEXT NOT NULL REFERENCES blobs(digest) ON DELETE CASCADE,
    chunk INTEGER NOT NULL,
    bytes BYTEA NOT NULL,
    PRIMARY KEY (digest, chunk)
);

CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    applied_version BIGINT NOT NULL,
    state TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
