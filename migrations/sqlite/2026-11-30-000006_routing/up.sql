-- A (key, model) pair out of rotation for long (a daily limit, a model the account may not use, a
-- request the key could not pay): written by the proxy's writer so a restart and the other instances
-- know it. Minute limits stay in memory. The key's own state is untouched.
CREATE TABLE key_model_blocks (
    key_id BIGINT NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    until_at BIGINT NOT NULL,
    at BIGINT NOT NULL,
    reason TEXT,
    PRIMARY KEY (key_id, model)
);
CREATE INDEX key_model_blocks_until ON key_model_blocks (until_at);
