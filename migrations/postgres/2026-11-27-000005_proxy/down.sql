DROP TABLE request_log;
ALTER TABLE access_keys DROP COLUMN failure_count;
ALTER TABLE access_keys DROP COLUMN request_count;
