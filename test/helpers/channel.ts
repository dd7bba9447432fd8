/**
 * A snapshot-shaped `Channel` for the pure selection, affinity and cooling-wait tables: no config
 * file, no loader; model matching by `compileGlob`, as the loader does.
 */
import { compileGlob } from '../../src/config/glob.js';
import type { Channel } from '../../src/config/snapshot.js';

/** What a test table varies about a channel. */
export interface ChannelOpts {
  priority?: number;
  /** Exact names or globs; omitted = every model. */
  models?: string[];
  modelMap?: Record<string, string>;
  /** How many keys (default 1). */
  keys?: number;
  /** Key index step: 2 leaves gaps, as when an empty key was removed from the list (default 1). */
  keyIndexStep?: number;
  enabled?: boolean;
  problems?: string[];
  /** What a reload compares (url + keys); default `id-<name>`. */
  identity?: string;
}

/** A channel named `name` at `http://127.0.0.1:1/<name>` with keys `sk-<name>-<i>`. */
export function fakeChannel(name: string, opts: ChannelOpts = {}): Channel {
  const matchers = opts.models?.map(compileGlob);
  const modelMap = opts.modelMap ?? {};
  const step = opts.keyIndexStep ?? 1;
  return {
    name,
    index: 0,
    url: `http://127.0.0.1:1/${name}`,
    shownUrl: `http://127.0.0.1:1/${name}`,
    hiddenUrlParts: [],
    origin: 'http://127.0.0.1:1',
    basePath: '',
    keys: Array.from({ length: opts.keys ?? 1 }, (_, i) => ({
      index: i * step,
      value: `sk-${name}-${i}`,
      fingerprint: `…${i}`,
    })),
    auth: 'x-api-key',
    protocol: 'anthropic',
    priority: opts.priority ?? 0,
    models: opts.models,
    modelMap,
    enabled: opts.enabled ?? true,
    maxConcurrency: undefined,
    rpm: undefined,
    proxy: undefined,
    identity: opts.identity ?? `id-${name}`,
    problems: opts.problems ?? [],
    serves: (model) => !matchers || matchers.some((m) => m(model)),
    mapModel: (model) => modelMap[model] ?? model,
  };
}
