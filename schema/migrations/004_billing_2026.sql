-- 004_billing_2026: what the 2026 Messages API bills and what the stream integrity checks did, per
-- attempt and in the rollups. Never edit this file once it has landed: add the next number instead.
--
-- Token columns of `attempts` hold billed totals: `input_tokens`, `output_tokens`,
-- `cache_creation_tokens` and `cache_read_tokens` include the compaction passes of
-- `usage.iterations[]`; `cache_creation_1h_tokens` is the part of `cache_creation_tokens` written
-- with the 1-hour TTL (the rest is 5-minute); `compaction_*_tokens` is the part that came from
-- compaction. No NOT NULL, like the rest of the attempt log.

ALTER TABLE attempts ADD COLUMN cache_creation_1h_tokens INTEGER;
ALTER TABLE attempts ADD COLUMN compaction_input_tokens INTEGER;
ALTER TABLE attempts ADD COLUMN compaction_output_tokens INTEGER;
-- `usage.server_tool_use.web_search_requests` (priced per request).
ALTER TABLE attempts ADD COLUMN web_search_requests INTEGER;
-- `usage.speed` as reported (`fast` is priced at `pricing.<model>.fast_multiplier`).
ALTER TABLE attempts ADD COLUMN speed TEXT;
-- SSE events left out of the client's stream (unparseable, oversized, or cut off by the end).
ALTER TABLE attempts ADD COLUMN events_dropped INTEGER;
-- 1 when the stream ended after a message_delta with a stop_reason and ccload wrote message_stop.
ALTER TABLE attempts ADD COLUMN stop_synthesised INTEGER;
-- `diagnostics.cache_miss_reason` (its type) under the cache-diagnosis beta.
ALTER TABLE attempts ADD COLUMN cache_miss_reason TEXT;

ALTER TABLE rollup_minute ADD COLUMN cache_creation_1h_tokens INTEGER DEFAULT 0;
ALTER TABLE rollup_minute ADD COLUMN compaction_input_tokens INTEGER DEFAULT 0;
ALTER TABLE rollup_minute ADD COLUMN compaction_output_tokens INTEGER DEFAULT 0;
ALTER TABLE rollup_minute ADD COLUMN web_search_requests INTEGER DEFAULT 0;
ALTER TABLE rollup_minute ADD COLUMN events_dropped INTEGER DEFAULT 0;

ALTER TABLE rollup_hour ADD COLUMN cache_creation_1h_tokens INTEGER DEFAULT 0;
ALTER TABLE rollup_hour ADD COLUMN compaction_input_tokens INTEGER DEFAULT 0;
ALTER TABLE rollup_hour ADD COLUMN compaction_output_tokens INTEGER DEFAULT 0;
ALTER TABLE rollup_hour ADD COLUMN web_search_requests INTEGER DEFAULT 0;
ALTER TABLE rollup_hour ADD COLUMN events_dropped INTEGER DEFAULT 0;

ALTER TABLE rollup_day ADD COLUMN cache_creation_1h_tokens INTEGER DEFAULT 0;
ALTER TABLE rollup_day ADD COLUMN compaction_input_tokens INTEGER DEFAULT 0;
ALTER TABLE rollup_day ADD COLUMN compaction_output_tokens INTEGER DEFAULT 0;
ALTER TABLE rollup_day ADD COLUMN web_search_requests INTEGER DEFAULT 0;
ALTER TABLE rollup_day ADD COLUMN events_dropped INTEGER DEFAULT 0;
