-- Tokens and estimated cost of each request through /v1 (empty when the answer carried no usage).
ALTER TABLE request_log ADD COLUMN prompt_tokens BIGINT;
ALTER TABLE request_log ADD COLUMN completion_tokens BIGINT;
ALTER TABLE request_log ADD COLUMN total_tokens BIGINT;
ALTER TABLE request_log ADD COLUMN cost DOUBLE PRECISION;

-- How each request ended (ok, caller_error, upstream_error, no_key, stream_error, client_closed).
ALTER TABLE request_log ADD COLUMN outcome TEXT;

-- Traffic rolled up by the writer in the same transaction as the log rows it sums: per minute
-- (period 60000, kept as long as the request log), per hour (3600000) and per UTC day (86400000),
-- both kept `rollup_retention_days`, by access key (0: none) x model ('': none) x outcome. `lat_0`..`lat_11`
-- count requests by latency: at most 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000 ms,
-- and longer. Pages read these, never the log.
CREATE TABLE usage_rollups (
    period BIGINT NOT NULL,
    bucket_at BIGINT NOT NULL,
    access_key_id BIGINT NOT NULL,
    model TEXT NOT NULL,
    outcome TEXT NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    cost DOUBLE PRECISION NOT NULL DEFAULT 0,
    latency_sum_ms BIGINT NOT NULL DEFAULT 0,
    lat_0 BIGINT NOT NULL DEFAULT 0,
    lat_1 BIGINT NOT NULL DEFAULT 0,
    lat_2 BIGINT NOT NULL DEFAULT 0,
    lat_3 BIGINT NOT NULL DEFAULT 0,
    lat_4 BIGINT NOT NULL DEFAULT 0,
    lat_5 BIGINT NOT NULL DEFAULT 0,
    lat_6 BIGINT NOT NULL DEFAULT 0,
    lat_7 BIGINT NOT NULL DEFAULT 0,
    lat_8 BIGINT NOT NULL DEFAULT 0,
    lat_9 BIGINT NOT NULL DEFAULT 0,
    lat_10 BIGINT NOT NULL DEFAULT 0,
    lat_11 BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (period, bucket_at, access_key_id, model, outcome)
);

-- The same sums over all access keys and models, per period's bucket and outcome: what the traffic
-- charts draw, a few rows per bucket whatever the number of keys and models.
CREATE TABLE traffic_rollups (
    period BIGINT NOT NULL,
    bucket_at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    cost DOUBLE PRECISION NOT NULL DEFAULT 0,
    latency_sum_ms BIGINT NOT NULL DEFAULT 0,
    lat_0 BIGINT NOT NULL DEFAULT 0,
    lat_1 BIGINT NOT NULL DEFAULT 0,
    lat_2 BIGINT NOT NULL DEFAULT 0,
    lat_3 BIGINT NOT NULL DEFAULT 0,
    lat_4 BIGINT NOT NULL DEFAULT 0,
    lat_5 BIGINT NOT NULL DEFAULT 0,
    lat_6 BIGINT NOT NULL DEFAULT 0,
    lat_7 BIGINT NOT NULL DEFAULT 0,
    lat_8 BIGINT NOT NULL DEFAULT 0,
    lat_9 BIGINT NOT NULL DEFAULT 0,
    lat_10 BIGINT NOT NULL DEFAULT 0,
    lat_11 BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (period, bucket_at, outcome)
);

-- Price per million tokens, in the balance's currency (SiliconFlow: CNY), per model. Seeded with
-- SiliconFlow's list prices of common chat models (2026) and 0 for its free models; editable on the
-- settings page and with `keypool prices set`. A model without a row has no price (no cost shown).
CREATE TABLE model_prices (
    model TEXT PRIMARY KEY NOT NULL,
    input_per_m DOUBLE PRECISION NOT NULL,
    output_per_m DOUBLE PRECISION NOT NULL,
    updated_at BIGINT NOT NULL
);
INSERT INTO model_prices (model, input_per_m, output_per_m, updated_at) VALUES
    ('deepseek-ai/DeepSeek-V3', 2, 8, 0),
    ('Pro/deepseek-ai/DeepSeek-V3', 2, 8, 0),
    ('deepseek-ai/DeepSeek-R1', 4, 16, 0),
    ('Pro/deepseek-ai/DeepSeek-R1', 4, 16, 0),
    ('Qwen/Qwen3-235B-A22B', 2.5, 10, 0),
    ('Qwen/Qwen3-32B', 1, 4, 0),
    ('Qwen/Qwen3-14B', 0.5, 2, 0),
    ('Qwen/QwQ-32B', 1, 4, 0),
    ('Qwen/Qwen2.5-72B-Instruct', 4.13, 4.13, 0),
    ('Qwen/Qwen2.5-32B-Instruct', 1.26, 1.26, 0),
    ('Qwen/Qwen2.5-14B-Instruct', 0.7, 0.7, 0),
    ('Qwen/Qwen2.5-Coder-32B-Instruct', 1.26, 1.26, 0),
    ('Tongyi-Zhiwen/QwenLong-L1-32B', 1, 4, 0),
    ('Qwen/Qwen2.5-7B-Instruct', 0, 0, 0),
    ('Qwen/Qwen2-7B-Instruct', 0, 0, 0),
    ('Qwen/Qwen3-8B', 0, 0, 0),
    ('THUDM/glm-4-9b-chat', 0, 0, 0),
    ('THUDM/GLM-4-9B-0414', 0, 0, 0),
    ('THUDM/GLM-Z1-9B-0414', 0, 0, 0),
    ('deepseek-ai/DeepSeek-R1-Distill-Qwen-7B', 0, 0, 0),
    ('internlm/internlm2_5-7b-chat', 0, 0, 0),
    ('BAAI/bge-m3', 0, 0, 0),
    ('BAAI/bge-large-zh-v1.5', 0, 0, 0),
    ('BAAI/bge-reranker-v2-m3', 0, 0, 0),
    ('netease-youdao/bce-embedding-base_v1', 0, 0, 0);
