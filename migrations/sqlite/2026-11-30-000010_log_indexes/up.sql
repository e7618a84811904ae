-- The request log page, its CSV export and `keypool logs` read newest first by id, one filter at a time
-- served by an index that is already in id order within each value (keyset pagination, no sort).
-- Not the upstream key: with thousands of keys each new row would land on a random page of such an
-- index, which made the writer 7x slower at a few million rows (it fell behind at saturation); a key's
-- requests are found by the page's bounded look through the newest ids.
CREATE INDEX request_log_access_key ON request_log (access_key_id, id);
CREATE INDEX request_log_model ON request_log (model, id);
-- The status class (ok, 4xx, 5xx, no_key): the same expression as `CLASS_SQL` in src/db/logs.rs.
CREATE INDEX request_log_class ON request_log ((CASE WHEN status < 400 THEN 'ok' WHEN status < 500 THEN '4xx'
    WHEN status = 503 AND substr(error, 1, 16) = 'no key available' THEN 'no_key' ELSE '5xx' END), id);
