DROP TABLE traffic_rollups;
DROP TABLE usage_rollups;
ALTER TABLE request_log DROP COLUMN outcome;
DROP TABLE model_prices;
ALTER TABLE request_log DROP COLUMN cost;
ALTER TABLE request_log DROP COLUMN total_tokens;
ALTER TABLE request_log DROP COLUMN completion_tokens;
ALTER TABLE request_log DROP COLUMN prompt_tokens;
