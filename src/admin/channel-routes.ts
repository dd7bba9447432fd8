/**
 * The channels admin JSON API (docs/interfaces.md#channels): the channel list with runtime state,
 * write-back of channel edits to ccload.yaml (through `App.writeBack`), clearing a channel's
 * cooldowns, and the channel test (channel-test.ts). The channel list is built in channel-view.ts,
 * which the dashboard pages share; key values never appear in it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { App } from '../app.js';
import { ChannelAuthSchema, ChannelHeadersSchema, ChannelProtocolSchema } from '../config/schema.js';
import type { WriteBackError, WriteBackResult } from '../config/write-back/apply-edit.js';
import {
  type ChannelChanges,
  type ChannelEdit,
  type ChannelField,
  isReference,
  type NewChannel,
} from '../config/write-back/channel-edit.js';
import { ADMIN_ERRORS } from '../errors.js';
import { testChannel } from './channel-test.js';
import { channelList } from './channel-view.js';
import { issueJson } from './core-routes.js';
import { BodyTooLarge, readBody, sendAdminError, sendJson } from './respond.js';
import type { Route } from './router.js';

// --- Request bodies -----------------------------------------------------------------------------

/**
 * The JSON type of each channel field in a request body. Only types are checked here: the values
 * (a valid URL, a unique name, ...) are judged by the loader, whose errors carry the file's
 * line:col. Tied to the schema's fields: a field added there must be added here (a type error).
 */
/**
 * A channel's header rules in a request body: the schema's own checks, and values a rule sets must
 * be `${...}` references — they may be credentials, and write-back never puts a secret in the file.
 */
const HeadersBody = ChannelHeadersSchema.refine(
  (h) => Object.values(h.set ?? {}).every((v) => isReference(v)),
  { message: 'headers.set values must be ${...} references (write-back never puts a secret in the file)' },
);

const FIELD_TYPES = {
  name: z.string(),
  protocol: ChannelProtocolSchema,
  url: z.string(),
  api_key: z.string(),
  keys: z.array(z.string()),
  auth: ChannelAuthSchema,
  priority: z.number(),
  models: z.array(z.string()),
  model_map: z.record(z.string(), z.string()),
  enabled: z.boolean(),
  headers: HeadersBody,
  max_concurrency: z.number(),
  rpm: z.number(),
  proxy: z.string(),
} satisfies { readonly [K in ChannelField]-?: z.ZodType<Exclude<NewChannel[K], undefined>> };

const KeyInput = z.union([z.string(), z.strictObject({ keep: z.number().int().nonnegative() })]);

// `name` and `url` stay required as they are (`.required()` would reword their error as "expected
// nonoptional").
const NewChannelBody = z.strictObject(FIELD_TYPES).partial({
  protocol: true,
  api_key: true,
  keys: true,
  auth: true,
  priority: true,
  models: true,
  model_map: true,
  enabled: true,
  headers: true,
  max_concurrency: true,
  rpm: true,
  proxy: true,
}) satisfies z.ZodType<NewChannel>;

/** A field an update may remove: `null` in the body. */
const removable = <T extends z.ZodType>(type: T) => type.nullable().optional();

const ChangesBody = z.strictObject({
  name: FIELD_TYPES.name.optional(),
  protocol: removable(FIELD_TYPES.protocol),
  url: FIELD_TYPES.url.optional(),
  api_key: removable(KeyInput),
  keys: removable(z.array(KeyInput)),
  auth: removable(FIELD_TYPES.auth),
  priority: removable(FIELD_TYPES.priority),
  models: removable(FIELD_TYPES.models),
  model_map: removable(FIELD_TYPES.model_map),
  enabled: removable(FIELD_TYPES.enabled),
  headers: removable(FIELD_TYPES.headers),
  max_concurrency: removable(FIELD_TYPES.max_concurrency),
  rpm: removable(FIELD_TYPES.rpm),
  proxy: removable(FIELD_TYPES.proxy),
} satisfies { readonly [K in ChannelField]-?: z.ZodType }) satisfies z.ZodType<ChannelChanges>;

const TestBody = z.strictObject({
  key_index: z.number().int().nonnegative().optional(),
  model: z.string().min(1).optional(),
});

/** The edit a `POST /admin/channels` body asks for, or a message saying what is wrong with it. */
export function addEditFromBody(body: unknown): ChannelEdit | string {
  const r = NewChannelBody.safeParse(body);
  if (!r.success) return bodyError(r.error);
  return { action: 'add', channel: r.data };
}

/**
 * The edit a `PUT /admin/channels/{name}` body asks for. A body that only sets `enabled` or only
 * `priority` becomes the enable/disable/set-priority action (its commit message says so).
 */
export function updateEditFromBody(name: string, body: unknown): ChannelEdit | string {
  const r = ChangesBody.safeParse(body);
  if (!r.success) return bodyError(r.error);
  const changes = Object.fromEntries(
    Object.entries(r.data).filter(([, v]) => v !== undefined),
  ) as ChannelChanges;
  const fields = Object.keys(changes);
  if (fields.length === 0) return 'the body names no field to change';
  if (fields.length === 1 && typeof changes.enabled === 'boolean') {
    return { action: changes.enabled ? 'enable' : 'disable', name };
  }
  if (fields.length === 1 && typeof changes.priority === 'number') {
    return { action: 'set-priority', name, priority: changes.priority };
  }
  return { action: 'update', name, changes };
}

function bodyError(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const path = i.path.map(String).join('.');
      const keys = i.code === 'unrecognized_keys' ? `: ${i.keys.join(', ')}` : '';
      return `${path ? `${path}: ` : ''}${i.message}${keys}`;
    })
    .join('; ');
}

async function readJson(req: IncomingMessage, res: ServerResponse): Promise<unknown | typeof NO_BODY> {
  let raw: Buffer;
  try {
    raw = await readBody(req, 1024 * 1024);
  } catch (err) {
    if (err instanceof BodyTooLarge) {
      sendAdminError(res, 'too_large', 'request body larger than 1 MiB');
      return NO_BODY;
    }
    throw err;
  }
  const text = raw.toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    sendAdminError(res, 'bad_request', 'the body is not valid JSON');
    return NO_BODY;
  }
}

const NO_BODY = Symbol('no body');

/** The hash of an `If-Match` header (`sha256:…`, quoted or not; `*` and absence mean any). */
export function ifMatchHash(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const v = header.trim().replace(/^W\//, '');
  if (v === '' || v === '*') return undefined;
  return v.replace(/^"(.*)"$/, '$1');
}

/**
 * The HTTP status of a write-back refusal (the JSON API and the dashboard answer alike): each
 * refusal kind is an admin code of the catalogue (src/errors.ts).
 */
export function writeBackStatus(r: Pick<WriteBackError, 'error'>): number {
  return ADMIN_ERRORS[r.error].status;
}

/** Answers a write-back verdict: 412/403/422/404/400/500, or `success` with the new hash. */
function answerWrite(
  res: ServerResponse,
  r: WriteBackResult,
  success: 200 | 201 | 204,
  extra: Record<string, string> = {},
) {
  if (!r.ok) {
    const extra =
      r.error === 'conflict'
        ? { hash: r.hash }
        : r.error === 'invalid'
          ? { errors: r.errors.map(issueJson) }
          : {};
    sendAdminError(res, r.error, r.message, extra);
    return;
  }
  if (r.reload === 'rejected') {
    // Validated, written, then rejected by the reload: only if the environment or a ${file:}
    // changed in between. The file holds the edit; the previous config keeps serving.
    sendAdminError(
      res,
      'reload_rejected',
      'the edit was written but the reload rejected the file; the previous config keeps serving',
      { hash: r.hash, generation: r.generation, errors: r.reloadErrors.map(issueJson) },
    );
    return;
  }
  const headers: Record<string, string> = {
    etag: `"${r.hash}"`,
    'x-ccload-generation': String(r.generation),
    ...(r.commit ? { 'x-ccload-commit': r.commit } : {}),
    ...extra,
  };
  if (success === 204) {
    res.writeHead(204, { ...headers, 'cache-control': 'no-store' });
    res.end();
    return;
  }
  sendJson(
    res,
    success,
    {
      hash: r.hash,
      generation: r.generation,
      changed: r.changed,
      reload: r.reload,
      ...(r.commit ? { commit: r.commit } : {}),
      ...(r.commitError ? { commit_error: r.commitError } : {}),
      ...(r.normalised ? { normalised: true } : {}),
      warnings: r.warnings.map(issueJson),
    },
    headers,
  );
}

/** Whether any cooldown entry (of this or an earlier config) names the channel. */
function hasCooldowns(app: App, name: string): boolean {
  for (const e of app.proxyState.cooldowns.entries.values()) if (e.channel === name) return true;
  return false;
}

/** Clears a channel's runtime cooldowns (no file change), logs it, and returns how many. */
export function clearCooldowns(app: App, name: string): number {
  const cleared = app.proxyState.clearChannel(name, app.now());
  app.log.info(
    { event: 'cooldown_cleared', channel: name, cleared },
    `cooldowns of channel "${name}" cleared`,
  );
  return cleared;
}

// --- Routes -------------------------------------------------------------------------------------

const ONE = /^\/admin\/channels\/([^/]+)$/;
const CLEAR = /^\/admin\/channels\/([^/]+)\/cooldown\/clear$/;
const TEST = /^\/admin\/channels\/([^/]+)\/test$/;

/** The channels route table. */
export function channelRoutes(app: App): Route[] {
  const find = (name: string) => app.reloader.current.channels.find((c) => c.name === name);
  return [
    {
      method: 'GET',
      path: '/admin/channels',
      access: 'session',
      async handle(_req, res) {
        sendJson(res, 200, await channelList(app));
      },
    },
    {
      method: 'POST',
      path: '/admin/channels',
      access: 'session',
      async handle(req, res) {
        const body = await readJson(req, res);
        if (body === NO_BODY) return;
        const edit = addEditFromBody(body);
        if (typeof edit === 'string') return sendAdminError(res, 'bad_request', edit);
        const r = await app.writeBack.apply(edit, ifMatchHash(req.headers['if-match']));
        const name = edit.action === 'add' ? edit.channel.name : '';
        answerWrite(res, r, 201, { location: `/admin/channels/${encodeURIComponent(name)}` });
      },
    },
    {
      method: 'GET',
      path: ONE,
      access: 'session',
      async handle(_req, res, ctx) {
        const list = await channelList(app);
        const c = list.channels.find((x) => x.name === ctx.params[0]);
        if (!c) return sendAdminError(res, 'not_found', `no channel named ${JSON.stringify(ctx.params[0])}`);
        sendJson(res, 200, {
          hash: list.hash,
          generation: list.generation,
          writable: list.writable,
          channel: c,
        });
      },
    },
    {
      method: 'PUT',
      path: ONE,
      access: 'session',
      async handle(req, res, ctx) {
        const body = await readJson(req, res);
        if (body === NO_BODY) return;
        const edit = updateEditFromBody(ctx.params[0]!, body);
        if (typeof edit === 'string') return sendAdminError(res, 'bad_request', edit);
        answerWrite(res, await app.writeBack.apply(edit, ifMatchHash(req.headers['if-match'])), 200);
      },
    },
    {
      method: 'DELETE',
      path: ONE,
      access: 'session',
      async handle(req, res, ctx) {
        const edit: ChannelEdit = { action: 'delete', name: ctx.params[0]! };
        answerWrite(res, await app.writeBack.apply(edit, ifMatchHash(req.headers['if-match'])), 204);
      },
    },
    {
      method: 'POST',
      path: CLEAR,
      access: 'session',
      handle(_req, res, ctx) {
        const name = ctx.params[0]!;
        if (!find(name) && !hasCooldowns(app, name)) {
          return sendAdminError(res, 'not_found', `no channel named ${JSON.stringify(name)}`);
        }
        const cleared = clearCooldowns(app, name);
        sendJson(res, 200, { channel: name, cleared });
      },
    },
    {
      method: 'POST',
      path: TEST,
      access: 'session',
      async handle(req, res, ctx) {
        const name = ctx.params[0]!;
        const body = await readJson(req, res);
        if (body === NO_BODY) return;
        const parsed = TestBody.safeParse(body);
        if (!parsed.success) return sendAdminError(res, 'bad_request', bodyError(parsed.error));
        const r = await testChannel(app, name, { keyIndex: parsed.data.key_index, model: parsed.data.model });
        if ('message' in r) return sendAdminError(res, r.error, r.message);
        sendJson(res, 200, r);
      },
    },
  ];
}
