-- Leadership: the node that holds the advisory lock on its own connection
-- bumps the epoch and names itself here; the work only one node may do
-- (collecting garbage in the shared blob store) runs there.
CREATE TABLE leader (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    epoch BIGINT NOT NULL,
    node TEXT NOT NULL,
    since TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO leader (id, epoch, node) VALUES (TRUE, 0, '');
