-- Unchecked keys whose last check failed transiently: the keys page counts them on every view (the
-- "check failed" state and filter); a partial index keeps that count to the keys it is about.
CREATE INDEX keys_check_failed ON keys (id) WHERE status = 'unchecked' AND last_error IS NOT NULL;
