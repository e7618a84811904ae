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
CREATE INDEX request_log_key_time ON request_log (key_id, at);
