-- One row per successful check: the pool's balance over time.
CREATE TABLE balance_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    key_id BIGINT NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
    total_balance DOUBLE PRECISION NOT NULL,
    charge_balance DOUBLE PRECISION NOT NULL,
    gift_balance DOUBLE PRECISION NOT NULL,
    checked_at BIGINT NOT NULL
);
CREATE INDEX balance_history_time ON balance_history (checked_at);
CREATE INDEX balance_history_key_time ON balance_history (key_id, checked_at);

-- Background work that must run on one instance at a time (scheduled checks, clean-ups).
CREATE TABLE leases (
    name TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
