-- Requests through /v1, per access key.
ALTER TABLE access_keys ADD COLUMN request_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE access_keys ADD COLUMN failure_count BIGINT NOT NULL DEFAULT 0;

-- One row per request through /v1 (kept `request_log_retention_days`), written in batches.
CREATE TABLE request_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    at BIGINT NOT NULL,
    access_key_id BIGINT,
    key_id BIGINT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    model TEXT,
    status BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    ttfb_ms BIGINT,
    attempts BIGINT NOT NULL,
    error TEXT
);
CREATE INDEX request_log_time ON request_log (at);

-- Change tracking for the proxy's in-memory pool (and other instances): every insert, delete, or change
-- of a key's status, balance or cooling takes the next number of `change_seq`; readers ask only for
-- what is newer than the number they have seen.
CREATE TABLE change_seq (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    n BIGINT NOT NULL
);
INSERT INTO change_seq (id, n) VALUES (1, 0);
ALTER TABLE keys ADD COLUMN changed_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX keys_changed_seq ON keys (changed_seq);
CREATE TABLE key_tombstones (
    key_id BIGINT NOT NULL,
    seq BIGINT NOT NULL
);
CREATE INDEX key_tombstones_seq ON key_tombstones (seq);
CREATE TRIGGER keys_seq_insert AFTER INSERT ON keys BEGIN
    UPDATE change_seq SET n = n + 1 WHERE id = 1;
    UPDATE keys SET changed_seq = (SELECT n FROM change_seq WHERE id = 1) WHERE id = NEW.id;
END;
CREATE TRIGGER keys_seq_update AFTER UPDATE OF status, total_balance, cooling_until ON keys BEGIN
    UPDATE change_seq SET n = n + 1 WHERE id = 1;
    UPDATE keys SET changed_seq = (SELECT n FROM change_seq WHERE id = 1) WHERE id = NEW.id;
END;
CREATE TRIGGER keys_seq_delete AFTER DELETE ON keys BEGIN
    UPDATE change_seq SET n = n + 1 WHERE id = 1;
    INSERT INTO key_tombstones (key_id, seq) SELECT OLD.id, n FROM change_seq WHERE id = 1;
END;
