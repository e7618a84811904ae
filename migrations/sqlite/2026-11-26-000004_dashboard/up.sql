-- The pool's usable balance over time: one row when a check job ends.
CREATE TABLE pool_snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    taken_at BIGINT NOT NULL,
    active_keys BIGINT NOT NULL,
    total_balance DOUBLE PRECISION NOT NULL
);
CREATE INDEX pool_snapshots_time ON pool_snapshots (taken_at);

-- Every state change of a key, with its reason.
CREATE TABLE key_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    key_id BIGINT NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX key_events_key_time ON key_events (key_id, at);
