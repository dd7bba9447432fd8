-- 001_init: runtime state of ccload. Never edit this file once it has landed: add 002_... instead.
-- Times are integer milliseconds since the epoch. No NOT NULL/STRICT constraints on the attempt log
-- on purpose: a log row must never be refused (and so block the batched writer) for its contents.

-- Admin sessions. Only the SHA-256 (hex) of the session id is stored, so a copy of the database
-- does not hand out live sessions.
CREATE TABLE sessions (
  id_hash    TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  last_seen  INTEGER NOT NULL,
  client     TEXT
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- One row per upstream attempt (a client request with failover has several; `final` = 1 marks the
-- one whose answer reached the client). `status`: HTTP status, 499 = client went away, 0 = no response.
CREATE TABLE attempts (
  id                    INTEGER PRIMARY KEY,
  ts                    INTEGER,
  request_id            TEXT,
  token                 TEXT,
  endpoint              TEXT,
  model_requested       TEXT,
  model_sent            TEXT,
  channel               TEXT,
  key_fp                TEXT,
  status                INTEGER,
  error_class           TEXT,
  attempt               INTEGER,
  final                 INTEGER,
  ttfb_ms               INTEGER,
  duration_ms           INTEGER,
  streamed              INTEGER,
  input_tokens          INTEGER,
  output_tokens         INTEGER,
  cache_creation_tokens INTEGER,
  cache_read_tokens     INTEGER,
  cost_usd              REAL
);
-- Newest-first listing over a time window, and the same with one filter (the /admin/logs filters).
CREATE INDEX attempts_ts ON attempts (ts);
CREATE INDEX attempts_channel_ts ON attempts (channel, ts);
CREATE INDEX attempts_model_ts ON attempts (model_requested, ts);
CREATE INDEX attempts_status_ts ON attempts (status, ts);
CREATE INDEX attempts_token_ts ON attempts (token, ts);
-- All attempts of one client request (the failover chain).
CREATE INDEX attempts_request_id ON attempts (request_id);

-- Active and recent cooldowns, written through from memory and restored at start. `scope_key`
-- identifies the cooled scope (channel / key / channel+model / key+model); `identity` is the
-- channel's url+keys hash, so state of a channel whose url or keys changed can be discarded.
CREATE TABLE cooldowns (
  scope_key  TEXT PRIMARY KEY,
  scope      TEXT NOT NULL,
  channel    TEXT NOT NULL,
  key_index  INTEGER,
  model      TEXT,
  until      INTEGER NOT NULL,
  failures   INTEGER NOT NULL,
  reason     TEXT,
  identity   TEXT,
  updated_at INTEGER NOT NULL
);

-- Round-robin pointers, so rotation inside one priority survives restarts.
CREATE TABLE rr (
  key   TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);

-- Reload history for the dashboard. `result`: applied | unchanged | rejected | error;
-- `errors`: JSON array of {file, line, col, path, message}.
CREATE TABLE reloads (
  id          INTEGER PRIMARY KEY,
  at          INTEGER NOT NULL,
  source      TEXT,
  result      TEXT NOT NULL,
  generation  INTEGER,
  hash        TEXT,
  duration_ms REAL,
  errors      TEXT
);
