-- Leadership: the node that holds the advisory lock on its own connection
-- bumps the epoch and names itself here; the work only one node may do
-- (driving canaries, collecting garbage in the shared blob store) runs
-- there. Every node publishes its counters of versions under a canary, and
-- the leader judges the canary by their sum.
CREATE TABLE leader (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    epoch BIGINT NOT NULL,
    node TEXT NOT NULL,
    since TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO leader (id, epoch, node) VALUES (TRUE, 0, '');

CREATE TABLE canary_counters (
    function TEXT NOT NULL,
    version INTEGER NOT NULL,
    node TEXT NOT NULL,
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    -- The latency histogram, as the node counts it (see core/window.rs).
    buckets BIGINT[] NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (function, version, node)
);
