-- 004_affinity: prompt-cache-aware session affinity (src/proxy/affinity.ts). Never edit this file
-- once it has landed.

-- One row per pinned Claude Code session. `session` is a hash of the client token's name and the
-- session id (never the raw id); `identity` is the channel's url+keys identity when pinned, so a
-- pin from before a url or key change is dropped. Pins idle longer than routing.affinity.idle are
-- deleted by the daemon. `updated_at` lets instances sharing the database pick up each other's pins.
CREATE TABLE session_pins (
  session    TEXT PRIMARY KEY,
  channel    TEXT NOT NULL,
  key_index  INTEGER NOT NULL,
  identity   TEXT,
  last_used  INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX session_pins_updated_at ON session_pins (updated_at);
CREATE INDEX session_pins_last_used ON session_pins (last_used);

-- Per attempt: the session's fingerprint (the same hash) and what affinity did
-- (pinned, new, moved, kept, none). NULL on rows written before this migration.
ALTER TABLE attempts ADD COLUMN session_fp TEXT;
ALTER TABLE attempts ADD COLUMN affinity TEXT;
