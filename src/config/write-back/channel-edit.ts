/**
 * What a write-back edit is: the actions on the `channels` list a dashboard form or an admin-API
 * request can ask for, and how an edit is described in words (commit message, log line).
 */

/**
 * A key as an edit gives it: a string — which must be a `${...}` reference unless it equals a key
 * already in this channel — or `{ keep: i }`, the channel's existing key at file position `i`
 * (position in `keys:`, or 0 for `api_key:`), kept exactly as written even when it is a literal.
 * The admin API never shows key values, so `keep` is how a form keeps a key it cannot see.
 */
export type KeyInput = string | { readonly keep: number };

/** How a channel's key is sent upstream (`auth:` in the file). */
export type ChannelAuth = 'x-api-key' | 'bearer' | 'both';

/**
 * Fields of a channel an update may change. An absent field is left alone; `null` removes the key
 * from the file (the schema default applies again: every model, no map, enabled, priority 0, ...).
 * Setting `api_key` removes `keys` and the other way round (a channel has one or the other).
 */
export interface ChannelChanges {
  /** A rename. Runtime state (cooldowns, stats) is keyed by name, so it starts afresh. */
  readonly name?: string;
  readonly url?: string;
  readonly api_key?: KeyInput | null;
  readonly keys?: readonly KeyInput[] | null;
  readonly auth?: ChannelAuth | null;
  readonly priority?: number | null;
  readonly models?: readonly string[] | null;
  readonly model_map?: Readonly<Record<string, string>> | null;
  readonly enabled?: boolean | null;
}

/** A channel to add. Keys must be references (there is nothing to keep yet). */
export interface NewChannel {
  readonly name: string;
  readonly url: string;
  readonly api_key?: string;
  readonly keys?: readonly string[];
  readonly auth?: ChannelAuth;
  readonly priority?: number;
  readonly models?: readonly string[];
  readonly model_map?: Readonly<Record<string, string>>;
  readonly enabled?: boolean;
}

/** One write-back action on the `channels` list. */
export type ChannelEdit =
  | { readonly action: 'add'; readonly channel: NewChannel }
  | { readonly action: 'update'; readonly name: string; readonly changes: ChannelChanges }
  | { readonly action: 'delete'; readonly name: string }
  | { readonly action: 'enable'; readonly name: string }
  | { readonly action: 'disable'; readonly name: string }
  | { readonly action: 'set-priority'; readonly name: string; readonly priority: number };

/** The channel fields in the order they are written (a new key goes after its predecessor here). */
export const FIELD_ORDER = [
  'name',
  'url',
  'api_key',
  'keys',
  'auth',
  'priority',
  'models',
  'model_map',
  'enabled',
] as const;

/** What an edit does, in words: the git commit message after `ccload: `, and the log line. */
export function describeEdit(edit: ChannelEdit): string {
  switch (edit.action) {
    case 'add':
      return `add channel ${JSON.stringify(edit.channel.name)}`;
    case 'delete':
    case 'enable':
    case 'disable':
      return `${edit.action} channel ${JSON.stringify(edit.name)}`;
    case 'set-priority':
      return `set priority of channel ${JSON.stringify(edit.name)} to ${edit.priority}`;
    case 'update': {
      const fields = FIELD_ORDER.filter((k) => edit.changes[k] !== undefined);
      const rename =
        edit.changes.name !== undefined && edit.changes.name !== edit.name
          ? ` (renamed to ${JSON.stringify(edit.changes.name)})`
          : '';
      return `update channel ${JSON.stringify(edit.name)}${fields.length ? `: ${fields.join(', ')}` : ''}${rename}`;
    }
  }
}

const REFERENCE = /^\$\{(?:file:[^}]+|[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?)\}$/;

/**
 * True when `value` is exactly one `${NAME}`, `${NAME:-default}` or `${file:PATH}` reference — the
 * only form in which write-back accepts a new secret. Mixed text (`sk-${X}`) is not a reference.
 * The default of `${NAME:-default}` is written as given: it is meant for a non-secret fallback
 * (an empty default, for instance), and the operator typed it on purpose.
 */
export function isReference(value: string): boolean {
  return REFERENCE.test(value);
}
