/**
 * What a write-back edit is: the actions on the `channels` list a dashboard form or an admin-API
 * request can ask for, and how an edit is described in words (commit message, log line). The
 * channel's fields and their types are the schema's (`ChannelSchema`).
 */
import { isSingleReference } from '../references.js';
import { type ChannelInput, ChannelSchema } from '../schema.js';

/**
 * A key as an edit gives it: a string — which must be a `${...}` reference unless it equals a key
 * already in this channel — or `{ keep: i }`, the channel's existing key at file position `i`
 * (position in `keys:`, or 0 for `api_key:`), kept exactly as written even when it is a literal.
 * The admin API never shows key values, so `keep` is how a form keeps a key it cannot see.
 */
export type KeyInput = string | { readonly keep: number };

/** A channel to add, as the file writes it (no defaults filled in). Keys must be references. */
export type NewChannel = Readonly<ChannelInput>;

/** A channel field, in the schema's order. */
export type ChannelField = keyof ChannelInput;

/** The field that holds a channel's keys: `api_key` (one) or `keys` (several). */
export type KeyField = Extract<ChannelField, 'api_key' | 'keys'>;

/** The value an update may give a field: the file's value, with key inputs for the keys. */
type ChangeValue<K extends ChannelField> = K extends 'api_key'
  ? KeyInput
  : K extends 'keys'
    ? readonly KeyInput[]
    : Exclude<ChannelInput[K], undefined>;

/**
 * Fields of a channel an update may change. An absent field is left alone; `null` removes the key
 * from the file (the schema default applies again: every model, no map, enabled, priority 0, ...);
 * `name` (a rename: runtime state keyed by name starts afresh) and `url` cannot be removed.
 * Setting `api_key` removes `keys` and the other way round (a channel has one or the other).
 */
export type ChannelChanges = {
  readonly [K in 'name' | 'url']?: ChangeValue<K>;
} & {
  readonly [K in Exclude<ChannelField, 'name' | 'url'>]?: ChangeValue<K> | null;
};

/** One write-back action on the `channels` list. */
export type ChannelEdit =
  | { readonly action: 'add'; readonly channel: NewChannel }
  | { readonly action: 'update'; readonly name: string; readonly changes: ChannelChanges }
  | { readonly action: 'delete'; readonly name: string }
  | { readonly action: 'enable'; readonly name: string }
  | { readonly action: 'disable'; readonly name: string }
  | { readonly action: 'set-priority'; readonly name: string; readonly priority: number };

/**
 * The channel fields in the order they are written (a new key goes after its predecessor here):
 * the schema's order, which is also the order of the configuration reference.
 */
export const FIELD_ORDER = Object.keys(ChannelSchema.shape) as readonly ChannelField[];

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

/**
 * True when `value` is exactly one `${NAME}`, `${NAME:-default}` or `${file:PATH}` reference — the
 * only form in which write-back accepts a new secret. Mixed text (`sk-${X}`) is not a reference.
 * The default of `${NAME:-default}` is written as given: it is meant for a non-secret fallback
 * (an empty default, for instance), and the operator typed it on purpose.
 */
export function isReference(value: string): boolean {
  return isSingleReference(value);
}
