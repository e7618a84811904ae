-- Limits of each access key (all optional): disabled keys and keys past `expires_at` are refused;
-- `models` holds allowed model names or patterns (`Qwen/*`), one per line (NULL: every model);
-- `free_only` allows only the `free_models` setting's models; rpm/tpm/rpd/tpd are requests and tokens
-- per minute and per day; spend_day/spend_month cap the estimated cost (price table) per day and month.
-- `shared_token`: the token of the key the admin shows guests (restricted mode); NULL for the others.
ALTER TABLE access_keys ADD COLUMN enabled BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE access_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE access_keys ADD COLUMN models TEXT;
ALTER TABLE access_keys ADD COLUMN free_only BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE access_keys ADD COLUMN rpm BIGINT;
ALTER TABLE access_keys ADD COLUMN tpm BIGINT;
ALTER TABLE access_keys ADD COLUMN rpd BIGINT;
ALTER TABLE access_keys ADD COLUMN tpd BIGINT;
ALTER TABLE access_keys ADD COLUMN spend_day DOUBLE PRECISION;
ALTER TABLE access_keys ADD COLUMN spend_month DOUBLE PRECISION;
ALTER TABLE access_keys ADD COLUMN note TEXT;
ALTER TABLE access_keys ADD COLUMN shared_token TEXT;

-- What each access key used in the current minute (period 1), day (2) and month (3), days and months
-- in the `upstream_utc_offset` time zone; `window_start` is the window's first millisecond. Every
-- instance adds what it admitted each writer tick and reads the totals back, so quotas hold across
-- instances and restarts. Old windows are pruned with the request log.
CREATE TABLE access_key_quota (
    access_key_id BIGINT NOT NULL REFERENCES access_keys (id) ON DELETE CASCADE,
    period BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    tokens BIGINT NOT NULL DEFAULT 0,
    cost DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (access_key_id, period, window_start)
);
