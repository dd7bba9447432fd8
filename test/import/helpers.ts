/**
 * Go ccLoad databases built in temp dirs for the import tests, one per schema generation: the seed
 * (models.go of the first release), a later one (comma-separated keys, an `api_keys` table,
 * `model_redirects`, `channel_type`, `key_strategy`, multi-URL) and the latest (`channel_models`
 * table instead of the JSON columns). Keys are distinctive strings so a leak is easy to spot.
 */
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import { type Teardownable, tmpDir } from '../helpers/tmp.js';

/** Every key value written into the test databases (none may appear in YAML or a summary). */
export const KEYS = {
  main: 'sk-ant-api03-MAINKEY-0001-zzzz',
  relayA: 'sk-relay-RELAYKEY-AAAA-1111',
  relayB: 'sk-relay-RELAYKEY-BBBB-2222',
  backup: 'sk-ant-api03-BACKUP-0003-yyyy',
  gemini: 'AIza-GEMINIKEY-0004',
  pooledA: 'sk-pool-POOLKEY-AAAA-0005',
  pooledB: 'sk-pool-POOLKEY-BBBB-0006',
  pooledC: 'sk-pool-POOLKEY-CCCC-0007',
  pooledOff: 'sk-pool-POOLKEY-DISABLED-0008',
  hash: 'sk-hash#and space-0009',
} as const;

async function build(file: string, sql: string): Promise<string> {
  const c = createClient({ url: `file:${file}` });
  try {
    await c.executeMultiple(sql);
  } finally {
    c.close();
  }
  return file;
}

const SEED_TABLES = `
CREATE TABLE channels (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  api_key TEXT NOT NULL,
  url TEXT NOT NULL,
  priority INTEGER NOT NULL DEFAULT 0,
  models TEXT NOT NULL,
  enabled INTEGER NOT NULL DEFAULT 1,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE logs (id INTEGER PRIMARY KEY AUTOINCREMENT, time TIMESTAMP NOT NULL, model TEXT,
  channel_id INTEGER, status_code INTEGER NOT NULL, message TEXT, duration REAL, is_streaming INTEGER,
  first_byte_time REAL);
CREATE TABLE cooldowns (channel_id INTEGER PRIMARY KEY, until TIMESTAMP NOT NULL, duration_ms INTEGER NOT NULL DEFAULT 0);
CREATE TABLE rr (key TEXT PRIMARY KEY, idx INTEGER NOT NULL);
`;

/** The seed schema: one key per channel, `models` a JSON array; a disabled channel; runtime rows. */
export function seedDb(t: Teardownable): Promise<string> {
  const file = join(tmpDir(t, 'ccload-import-'), 'ccload.db');
  return build(
    file,
    `${SEED_TABLES}
INSERT INTO channels (id, name, api_key, url, priority, models, enabled) VALUES
  (1, 'anthropic-main', '${KEYS.main}', 'https://api.anthropic.com', 10, '["claude-sonnet-4-5","claude-opus-4-1"]', 1),
  (2, 'relay', '${KEYS.relayA}', 'https://relay.example.com/api/', 5, '["claude-sonnet-4-5"]', 0),
  (3, 'backup', '${KEYS.backup}', 'https://backup.example.com', 0, '["claude-sonnet-4-5","claude-haiku-4-5"]', 1);
INSERT INTO logs (time, model, channel_id, status_code, message) VALUES (CURRENT_TIMESTAMP, 'claude-sonnet-4-5', 1, 200, 'ok');
INSERT INTO cooldowns VALUES (2, CURRENT_TIMESTAMP, 4000);
INSERT INTO rr VALUES ('claude-sonnet-4-5|10', 1);
`,
  );
}

/**
 * A later schema: `api_key` with comma-separated keys, an `api_keys` table (which wins where it has
 * rows), `model_redirects`, `channel_type`, `key_strategy`, newline-separated URLs, unsupported
 * settings, a non-Anthropic channel, duplicate-after-sanitising names and a client token table.
 */
export function laterDb(t: Teardownable): Promise<string> {
  const file = join(tmpDir(t, 'ccload-import-'), 'ccload.db');
  return build(
    file,
    `
CREATE TABLE channels (
  id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, api_key TEXT NOT NULL DEFAULT '',
  url TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 0, models TEXT NOT NULL DEFAULT '[]',
  model_redirects TEXT NOT NULL DEFAULT '{}', channel_type TEXT NOT NULL DEFAULT 'anthropic',
  key_strategy TEXT NOT NULL DEFAULT 'sequential', rpm_limit INTEGER NOT NULL DEFAULT 0,
  proxy_url TEXT NOT NULL DEFAULT '', shiny_new_setting TEXT, enabled INTEGER NOT NULL DEFAULT 1,
  cooldown_until INTEGER NOT NULL DEFAULT 0, cooldown_duration_ms INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL DEFAULT 0);
CREATE TABLE api_keys (
  id INTEGER PRIMARY KEY AUTOINCREMENT, channel_id INTEGER NOT NULL, key_index INTEGER NOT NULL,
  api_key TEXT NOT NULL, key_strategy TEXT NOT NULL DEFAULT 'sequential', disabled INTEGER NOT NULL DEFAULT 0,
  cooldown_until INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL DEFAULT 0,
  UNIQUE (channel_id, key_index));
CREATE TABLE auth_tokens (id INTEGER PRIMARY KEY, token TEXT NOT NULL UNIQUE, description TEXT NOT NULL DEFAULT '');
CREATE TABLE logs (id INTEGER PRIMARY KEY, time INTEGER NOT NULL, channel_id INTEGER, status_code INTEGER);
INSERT INTO channels (id, name, api_key, url, priority, models, model_redirects, channel_type, key_strategy, rpm_limit, proxy_url, enabled) VALUES
  (1, 'relay', '${KEYS.relayA},${KEYS.relayB}', 'https://relay.example.com
https://relay-2.example.com', 10,
   '["claude-sonnet-4-5","claude-3-5-haiku-latest"]',
   '{"claude-3-5-haiku-latest":"claude-haiku-4-5","claude-opus-4-1":"claude-sonnet-4-5"}',
   'anthropic', 'round_robin', 60, 'http://user:secret@proxy.local:3128', 1),
  (2, 'pooled', '', 'https://pool.example.com', 5, '["claude-sonnet-4-5","claude-opus-4-1"]', '{}', 'anthropic', 'sequential', 0, '', 1),
  (3, 'gemini-cheap', '${KEYS.gemini}', 'https://generativelanguage.googleapis.com', 1, '["gemini-2.5-pro"]', '{}', 'gemini', 'sequential', 0, '', 1),
  (4, 'Pooled', '${KEYS.hash}', 'https://pool-b.example.com', 5, '["claude-sonnet-4-5"]', '{}', '', 'sequential', 0, '', 0),
  (5, 'pooled!', '', 'https://pool-c.example.com', 1, '[]', '{}', 'anthropic', 'sequential', 0, '', 1);
INSERT INTO api_keys (channel_id, key_index, api_key, key_strategy, disabled) VALUES
  (2, 0, '${KEYS.pooledA}', 'sequential', 0),
  (2, 1, '${KEYS.pooledB}', 'sequential', 0),
  (2, 2, '${KEYS.pooledOff}', 'sequential', 1),
  (2, 3, '${KEYS.pooledC}', 'sequential', 0),
  (2, 4, '${KEYS.pooledA}', 'sequential', 0);
INSERT INTO auth_tokens (token, description) VALUES ('client-token-1', 'laptop');
`,
  );
}

/** The latest schema: models and redirects in a `channel_models` table, no JSON columns. */
export function latestDb(t: Teardownable): Promise<string> {
  const file = join(tmpDir(t, 'ccload-import-'), 'ccload.db');
  return build(
    file,
    `
CREATE TABLE channels (
  id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, url TEXT NOT NULL,
  priority INTEGER NOT NULL DEFAULT 0, channel_type TEXT NOT NULL DEFAULT 'anthropic',
  auth_type TEXT NOT NULL DEFAULT 'api_key', oauth_credential TEXT, enabled INTEGER NOT NULL DEFAULT 1,
  created_at INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL DEFAULT 0);
CREATE TABLE api_keys (id INTEGER PRIMARY KEY, channel_id INTEGER NOT NULL, key_index INTEGER NOT NULL,
  api_key TEXT NOT NULL, allowed_models TEXT NOT NULL DEFAULT '', disabled INTEGER NOT NULL DEFAULT 0);
CREATE TABLE channel_models (channel_id INTEGER NOT NULL, model TEXT NOT NULL,
  redirect_model TEXT NOT NULL DEFAULT '', disabled INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (channel_id, model));
INSERT INTO channels (id, name, url, priority, channel_type, auth_type, oauth_credential) VALUES
  (7, 'official', 'https://api.anthropic.com', 20, 'anthropic', 'api_key', NULL),
  (8, 'max-plan', 'https://api.anthropic.com', 30, 'anthropic', 'oauth', '{"access_token":"oauth-SECRET-0010"}');
INSERT INTO api_keys (channel_id, key_index, api_key, allowed_models) VALUES
  (7, 0, '${KEYS.main}', ''), (7, 1, '${KEYS.backup}', '["claude-opus-4-1"]');
INSERT INTO channel_models (channel_id, model, redirect_model, disabled) VALUES
  (7, 'claude-sonnet-4-5', '', 0), (7, 'claude-3-5-haiku-latest', 'claude-haiku-4-5', 0),
  (7, 'claude-2.1', '', 1), (8, 'claude-opus-4-1', '', 0);
`,
  );
}
