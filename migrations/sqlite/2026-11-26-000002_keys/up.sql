-- The pool's upstream keys. Balances are NULL until the first successful check.
CREATE TABLE keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    key TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'unchecked',
    status_reason TEXT,
    status_changed_at BIGINT,
    previous_status TEXT,
    total_balance DOUBLE PRECISION,
    charge_balance DOUBLE PRECISION,
    gift_balance DOUBLE PRECISION,
    added_at BIGINT NOT NULL,
    checked_at BIGINT,
    last_error TEXT,
    source TEXT,
    request_count BIGINT NOT NULL DEFAULT 0,
    failure_count BIGINT NOT NULL DEFAULT 0,
    last_used_at BIGINT,
    cooling_until BIGINT
);
-- One index per sort, alone and after the status filter; id breaks ties.
CREATE INDEX keys_balance ON keys (total_balance, id);
CREATE INDEX keys_added ON keys (added_at, id);
CREATE INDEX keys_checked ON keys ((COALESCE(checked_at, added_at)), id);
CREATE INDEX keys_status_balance ON keys (status, total_balance, id);
CREATE INDEX keys_status_added ON keys (status, added_at, id);
CREATE INDEX keys_status_checked ON keys (status, (COALESCE(checked_at, added_at)), id);

-- Keys an admin has selected in the keys table (the selection lives here, not in the browser).
CREATE TABLE key_selections (
    admin_id BIGINT NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    key_id BIGINT NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
    PRIMARY KEY (admin_id, key_id)
);
CREATE INDEX key_selections_key ON key_selections (key_id);

-- Keys per status, kept exact by triggers, so the page's counts never scan the keys table.
CREATE TABLE key_status_counts (
    status TEXT PRIMARY KEY NOT NULL,
    n BIGINT NOT NULL DEFAULT 0
);
CREATE TRIGGER keys_count_insert AFTER INSERT ON keys BEGIN
    INSERT INTO key_status_counts (status, n) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER keys_count_delete AFTER DELETE ON keys BEGIN
    UPDATE key_status_counts SET n = n - 1 WHERE status = OLD.status;
END;
CREATE TRIGGER keys_count_update AFTER UPDATE OF status ON keys WHEN OLD.status <> NEW.status BEGIN
    UPDATE key_status_counts SET n = n - 1 WHERE status = OLD.status;
    INSERT INTO key_status_counts (status, n) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
