/**
 * Write-back: every action on a richly formatted fixture gives exactly the expected file (a minimal
 * diff); unknown keys, comments, anchors and line ends survive; refusals (invalid result, conflict,
 * literal secret, write_back off) leave the file untouched to the byte and the mtime; the write
 * keeps a symlink and the file mode; git_commit makes one commit per edit with the right message
 * and author; write-backs are serialised; the watcher's echo does not bump the generation twice.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { hashContent, loadConfigFile, loadConfigText } from '../../src/config/load.js';
import { Reloader, type ReloadOutcome } from '../../src/config/reloader.js';
import { applyEdit, type WriteBackResult } from '../../src/config/write-back/apply-edit.js';
import { type ChannelEdit, describeEdit, isReference } from '../../src/config/write-back/channel-edit.js';
import { channelKeySources } from '../../src/config/write-back/key-sources.js';
import { editConfigText } from '../../src/config/write-back/text-edit.js';
import { silentLogger } from '../../src/observability/log.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { pick, prng } from '../helpers/random.js';
import { type Teardownable, tmpDir } from '../helpers/tmp.js';
import { deadline } from '../helpers/wait.js';

const FIXTURES = join(import.meta.dirname, '../../../test/fixtures/write-back');
const fixture = (name: string) => readFileSync(join(FIXTURES, name), 'utf8');
const EDITS = JSON.parse(fixture('edits.json')) as Record<string, ChannelEdit>;

/** The variables channels.yaml references. */
const ENV = {
  TEST_PASS: 'correct horse battery',
  CCLOAD_TOKEN_ALICE: 'tok-alice-000000001',
  ANTHROPIC_API_KEY: 'sk-ant-main-key-0001',
  RELAY_KEY_1: 'sk-relay-one-key-0001',
  RELAY_KEY_2: 'sk-relay-two-key-0002',
  RELAY_KEY_3: 'sk-relay-three-key-0003',
  EU_KEY: 'sk-eu-key-000000003',
  THIRD_KEY: 'sk-third-key-0000004',
};

/** Lines removed from `a` and added in `b` (a plain LCS diff; fixtures are small). */
function lineDiff(a: string, b: string): { removed: string[]; added: string[] } {
  const x = a.split('\n');
  const y = b.split('\n');
  const dp = Array.from({ length: x.length + 1 }, () => new Array<number>(y.length + 1).fill(0));
  for (let i = x.length - 1; i >= 0; i--)
    for (let j = y.length - 1; j >= 0; j--)
      dp[i]![j] = x[i] === y[j] ? dp[i + 1]![j + 1]! + 1 : Math.max(dp[i + 1]![j]!, dp[i]![j + 1]!);
  const removed: string[] = [];
  const added: string[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length && j < y.length) {
    if (x[i] === y[j]) {
      i++;
      j++;
    } else if (dp[i + 1]![j]! >= dp[i]![j + 1]!) removed.push(x[i++]!);
    else added.push(y[j++]!);
  }
  removed.push(...x.slice(i));
  added.push(...y.slice(j));
  return { removed, added };
}

function edited(text: string, edit: ChannelEdit): string {
  const r = editConfigText(text, edit);
  if (!r.ok) throw new Error(`edit refused: ${r.message}`);
  return r.text;
}

t.test('every action on the annotated fixture gives exactly the expected file', async (t) => {
  const source = fixture('channels.yaml');
  for (const [name, edit] of Object.entries(EDITS)) {
    const r = editConfigText(source, edit);
    if (!r.ok) {
      t.fail(`${name}: refused: ${r.message}`);
      continue;
    }
    t.equal(
      r.text,
      fixture(`channels.${name}.expected.yaml`),
      `${name}: whole output equals the expected file`,
    );
    t.equal(r.changed, true, `${name}: changed`);
    t.equal(r.normalised, false, `${name}: minimal merge, not yaml's whole-file rendering`);
    const v = await loadConfigText(r.text, {
      path: join(FIXTURES, 'channels.yaml'),
      env: ENV,
      generation: 2,
      source: 'write-back',
      now: 0,
    });
    t.ok(v.ok, `${name}: the result is a valid config`);
  }
});

t.test('the diffs are minimal: a table of exactly which lines change', async (t) => {
  const source = fixture('channels.yaml');
  const cases: [string, string[], string[]][] = [
    ['set-priority', ['    priority: 5'], ['    priority: 7']],
    // The comment keeps its column: the padding absorbs the shorter value.
    ['disable-main', ['    enabled: true'], ['    enabled: false']],
    ['disable-relay', [], ['    enabled: false']],
    ['update-keys', ['      - ${RELAY_KEY_1}'], ['      - ${RELAY_KEY_3}']],
    ['update-models', [], ['      - claude-haiku-4-5']],
  ];
  for (const [name, removed, added] of cases) {
    t.same(lineDiff(source, edited(source, EDITS[name]!)), { removed, added }, name);
  }
  const aligned = edited(source, { action: 'set-priority', name: 'anthropic-main', priority: 7 });
  t.same(
    lineDiff(source, aligned),
    {
      removed: ['    priority: 10                  # higher first'],
      added: ['    priority: 7                   # higher first'],
    },
    'an aligned trailing comment stays in its column',
  );
});

t.test('applying an edit again changes nothing', async (t) => {
  const source = fixture('channels.yaml');
  for (const name of ['set-priority', 'disable-main', 'enable-backup', 'update-main', 'update-models']) {
    const once = edited(source, EDITS[name]!);
    const twice = editConfigText(once, EDITS[name]!);
    t.match(twice, { ok: true, changed: false }, name);
    if (twice.ok) t.equal(twice.text, once, `${name}: same text`);
  }
  const enabled = editConfigText(source, { action: 'enable', name: 'relay' });
  t.match(enabled, { ok: true, changed: false }, 'enabling a channel without `enabled:` writes nothing');
  const again = editConfigText(source, {
    action: 'update',
    name: 'relay',
    changes: { models: ['claude-sonnet-4-5', 'claude-sonnet-4'], keys: [{ keep: 0 }, '${RELAY_KEY_2}'] },
  });
  t.match(again, { ok: true, changed: false }, 'a form sent back unchanged changes nothing (no restyling)');
  const form = edited(source, {
    action: 'update',
    name: 'relay',
    changes: {
      url: 'https://relay.example.com/api',
      priority: 6,
      models: ['claude-sonnet-4-5', 'claude-sonnet-4'],
      keys: [{ keep: 0 }, { keep: 1 }],
      auth: 'bearer',
    },
  });
  t.same(
    lineDiff(source, form),
    { removed: ['    priority: 5'], added: ['    priority: 6'] },
    'a whole form with one change: only that line (the anchored list and its alias untouched)',
  );
});

t.test(
  'a layout the line merge cannot reproduce: yaml renders the whole file, the data is exact',
  async (t) => {
    const source = fixture('irregular.yaml');
    const r = editConfigText(source, { action: 'set-priority', name: 'a', priority: 7 });
    t.match(r, { ok: true, changed: true, normalised: true });
    const want = parse(source) as { channels: Record<string, unknown>[] };
    want.channels[0]!['priority'] = 7;
    if (r.ok) t.same(parse(r.text), want, 'exactly the edited data');
    const placed = editConfigText(source, { action: 'disable', name: 'b' });
    t.match(placed, { ok: true, normalised: false }, 'where the merge can place the lines, it still does');
    if (placed.ok) t.same(lineDiff(source, placed.text), { removed: [], added: ['    enabled: false'] });
  },
);

t.test('unknown keys, anchors, block scalars and comments survive every action', async (t) => {
  const source = fixture('unknown-keys.yaml');
  const before = parse(source) as Record<string, unknown>;
  const edits: ChannelEdit[] = [
    { action: 'disable', name: 'main' },
    { action: 'set-priority', name: 'spare', priority: 3 },
    {
      action: 'update',
      name: 'main',
      changes: { models: ['claude-opus-4-1'], url: 'https://eu.example.com' },
    },
    { action: 'update', name: 'spare', changes: { name: 'spare-2', keys: ['${A}', '${B}'] } },
    { action: 'add', channel: { name: 'new', url: 'https://new.example.com', api_key: '${NEW_KEY}' } },
    { action: 'delete', name: 'spare' },
  ];
  for (const edit of edits) {
    const out = edited(source, edit);
    const after = parse(out) as Record<string, unknown>;
    const what = describeEdit(edit);
    for (const key of ['x-owner', 'x-defaults', 'x-trailer']) {
      t.same(after[key], before[key], `${what}: top-level ${key} kept`);
    }
    const main = (after['channels'] as Record<string, unknown>[]).find((c) => c['name'] === 'main');
    t.equal(main?.['x-cost-center'], '4711', `${what}: unknown channel key kept`);
    t.same(main?.['labels'], ['prod', 'eu'], `${what}: unknown channel list kept`);
    for (const line of [
      'x-owner: platform-team            # not a ccload key: must survive every edit',
      'x-defaults: &defaults',
      '    x-cost-center: "4711"         # unknown key inside a channel',
      '    labels: [prod, eu]',
      '    A block scalar',
      '      with indentation',
    ]) {
      t.ok(out.split('\n').includes(line), `${what}: line kept byte for byte: ${line.trim()}`);
    }
    if (edit.action !== 'delete') {
      const spare = (after['channels'] as Record<string, unknown>[]).find((c) =>
        String(c['name']).startsWith('spare'),
      );
      t.equal(spare?.['x-ticket'], 'OPS-12', `${what}: unknown key in a flow map kept`);
    }
  }
});

t.test('another file style (4-space maps, unindented lists) gets lines in its own style', async (t) => {
  const source = fixture('styles.yaml');
  t.same(
    lineDiff(
      source,
      edited(source, {
        action: 'update',
        name: 'one',
        changes: { models: ['claude-a', 'claude-c'], priority: 4 },
      }),
    ),
    { removed: ['  - claude-b    # b'], added: ['  priority: 4', '  - claude-c'] },
  );
  t.same(
    lineDiff(
      source,
      edited(source, {
        action: 'add',
        channel: { name: 'three', url: 'https://3.example', keys: ['${K1}', '${K2}'], model_map: { a: 'b' } },
      }),
    ),
    {
      removed: [],
      added: [
        '- name: three',
        '  url: https://3.example',
        '  keys:',
        '  - ${K1}',
        '  - ${K2}',
        '  model_map:',
        '    a: b',
      ],
    },
  );
});

t.test('CRLF line ends and a BOM are kept', async (t) => {
  const source = `\uFEFF${fixture('crlf.yaml')}`;
  const out = edited(source, { action: 'update', name: 'one', changes: { enabled: false, models: ['m'] } });
  t.ok(out.startsWith('\uFEFF'), 'BOM kept');
  t.notMatch(out, /[^\r]\n/, 'every line ends with CRLF');
  t.same(lineDiff(source, out), { removed: [], added: ['    models: [m]\r', '    enabled: false\r'] });
});

t.test('empty and missing channel lists', async (t) => {
  const add: ChannelEdit = {
    action: 'add',
    channel: { name: 'first', url: 'https://first.example', api_key: '${K}', models: ['m'] },
  };
  const first = ['  - name: first', '    url: https://first.example', '    api_key: ${K}', '    models: [m]'];
  t.equal(edited('version: 1\nchannels: []\n', add), ['version: 1', 'channels:', ...first, ''].join('\n'));
  t.equal(edited('version: 1\n', add), ['version: 1', 'channels:', ...first, ''].join('\n'));
  const gone = edited('version: 1\nchannels:\n  - name: a\n    url: https://a.example\n', {
    action: 'delete',
    name: 'a',
  });
  t.equal(gone, 'version: 1\nchannels: []\n', 'deleting the last channel leaves an empty list');
});

t.test('secrets: a literal is refused, references and unchanged keys are accepted', async (t) => {
  const source = `version: 1
channels:
  - name: lit
    url: https://lit.example
    keys:
      - sk-ant-literal-in-file-0001   # typed by hand, warned at every load
      - \${SECOND}
`;
  const refused: [string, ChannelEdit][] = [
    [
      'add api_key',
      { action: 'add', channel: { name: 'n', url: 'https://n.example', api_key: 'sk-ant-abc' } },
    ],
    [
      'add keys',
      { action: 'add', channel: { name: 'n', url: 'https://n.example', keys: ['${OK}', 'sk-x'] } },
    ],
    ['update api_key', { action: 'update', name: 'lit', changes: { api_key: 'sk-new-literal' } }],
    ['update keys', { action: 'update', name: 'lit', changes: { keys: [{ keep: 0 }, 'sk-new-literal'] } }],
    ['mixed text', { action: 'update', name: 'lit', changes: { api_key: 'sk-${SUFFIX}' } }],
  ];
  for (const [what, edit] of refused) {
    const r = editConfigText(source, edit);
    t.match(r, { ok: false, error: 'secret', message: /reference.*\$\{NAME\}.*\$\{file:/s }, what);
  }
  const keep = edited(source, {
    action: 'update',
    name: 'lit',
    changes: { keys: [{ keep: 0 }, '${THIRD}'] },
  });
  t.same(
    lineDiff(source, keep),
    { removed: ['      - ${SECOND}'], added: ['      - ${THIRD}'] },
    'kept literal',
  );
  const same = edited(source, {
    action: 'update',
    name: 'lit',
    changes: { api_key: 'sk-ant-literal-in-file-0001' },
  });
  t.match(
    same,
    /\n {4}api_key: sk-ant-literal-in-file-0001 # typed by hand/,
    'the same literal is kept, not refused',
  );
  for (const ref of ['${A}', '${A_1:-}', '${A:-fallback}', '${file:/run/credentials/ccload/key}']) {
    t.ok(isReference(ref), `${ref} is a reference`);
  }
  for (const lit of ['sk-ant', '$${A}', '${A}${B}', 'x${A}', '${1A}'])
    t.notOk(isReference(lit), `${lit} is not`);
  t.match(editConfigText(source, { action: 'update', name: 'lit', changes: { keys: [{ keep: 5 }] } }), {
    ok: false,
    error: 'bad_request',
    message: /has 2 key/,
  });
  t.same(
    channelKeySources(source).get('lit'),
    { field: 'keys', refs: [null, '${SECOND}'] },
    'refs, never literals',
  );
});

t.test('refusals of the text edit', async (t) => {
  t.match(editConfigText(fixture('channels.yaml'), { action: 'delete', name: 'nope' }), {
    ok: false,
    error: 'not_found',
  });
  t.match(editConfigText('version: 1\nchannels: [\n', { action: 'delete', name: 'x' }), {
    ok: false,
    error: 'unparsable',
  });
  t.match(
    editConfigText('version: 1\nchannels: {a: 1}\n', {
      action: 'add',
      channel: { name: 'a', url: 'https://a' },
    }),
    {
      ok: false,
      error: 'bad_request',
    },
  );
});

t.test('200 random edits in a row: always the exact data, always a minimal merge', async (t) => {
  // Seeded, so a failure replays.
  const rand = prng(20261126);
  const models = ['claude-opus-4-1', 'claude-sonnet-4-5', 'claude-haiku-4-5', 'claude-*', 'x-1'];
  let text = fixture('channels.yaml');
  let added = 0;
  let normalised = 0;
  for (let i = 0; i < 200; i++) {
    const names = (parse(text) as { channels: { name: string }[] }).channels.map((c) => c.name);
    const name = pick(rand, names);
    const subset = models.filter(() => rand() < 0.5);
    const edit: ChannelEdit = pick<() => ChannelEdit>(rand, [
      () => ({ action: 'set-priority', name, priority: Math.floor(rand() * 20) }),
      () => ({ action: rand() < 0.5 ? 'enable' : 'disable', name }),
      () => ({ action: 'update', name, changes: { models: subset.length ? subset : null } }),
      () => ({ action: 'update', name, changes: { model_map: rand() < 0.3 ? null : { 'claude-*': 'x-1' } } }),
      () => ({
        action: 'update',
        name,
        changes: { url: `https://u${i}.example.com`, auth: pick(rand, ['bearer', null]) },
      }),
      () => ({
        action: 'update',
        name,
        changes: { keys: ['${K1}', '${K2}'].slice(0, 1 + Math.floor(rand() * 2)) },
      }),
      () => ({ action: 'update', name, changes: { api_key: '${K3}' } }),
      () =>
        names.length > 2
          ? { action: 'delete', name }
          : {
              action: 'add',
              channel: { name: `added-${++added}`, url: 'https://a.example', api_key: '${K4}' },
            },
      () => ({
        action: 'add',
        channel: { name: `added-${++added}`, url: 'https://a.example', models: subset },
      }),
    ])();
    const r = editConfigText(text, edit);
    if (!r.ok) {
      t.fail(`step ${i}: ${describeEdit(edit)} refused: ${r.message}`);
      break;
    }
    if (r.normalised) normalised++;
    text = r.text;
  }
  t.equal(normalised, 0, 'never fell back to the whole-file rendering');
  t.match(text, /^# yaml-language-server: \$schema=/, 'the header comment is still first');
  t.match(
    text,
    /\n {2}claude-opus-\*: {3}\{ input: 15, output: 75 \}\n$/,
    'untouched lines keep their bytes',
  );
});

t.test('describeEdit names the action and the channel (git commit messages)', async (t) => {
  t.equal(describeEdit({ action: 'disable', name: 'relay' }), 'disable channel "relay"');
  t.equal(
    describeEdit({ action: 'set-priority', name: 'a', priority: 3 }),
    'set priority of channel "a" to 3',
  );
  t.equal(
    describeEdit({ action: 'update', name: 'a', changes: { url: 'https://x', models: null, name: 'b' } }),
    'update channel "a": name, url, models (renamed to "b")',
  );
  t.equal(describeEdit(EDITS['add']!), 'add channel "third"');
});

// --- On disk, with a real reloader ----------------------------------------------------------------

/** A config file in a temp dir and a reloader over it (the reloader's own loader, no daemon). */
async function onDisk(
  t: Teardownable,
  text = fixture('channels.yaml'),
  opts: { dir?: string; name?: string } = {},
) {
  const dir = opts.dir ?? tmpDir(t);
  const path = join(dir, opts.name ?? 'ccload.yaml');
  writeFileSync(path, text);
  const input = { path, display: 'ccload.yaml', env: ENV };
  const first = await loadConfigFile({ ...input, generation: 1, source: 'startup', now: 0 });
  if (!first.ok) throw new Error(`fixture invalid: ${JSON.stringify(first.errors)}`);
  const reloader = new Reloader({ input, initial: first.snapshot, log: silentLogger(), apply() {} });
  const apply = (edit: ChannelEdit, expectedHash?: string) =>
    applyEdit({ input, reloader, edit, expectedHash, log: silentLogger() });
  return { dir, path, reloader, apply, hash: first.hash };
}

/** Bytes and mtime of a file, to prove a refusal did not touch it. */
function fingerprintFile(path: string) {
  return { bytes: readFileSync(path).toString('base64'), mtime: statSync(path).mtimeMs };
}

/** Sets the file's mtime into the past, so a rewrite would show even on a coarse clock. */
function age(path: string) {
  const past = new Date(Date.now() - 3600_000);
  utimesSync(path, past, past);
}

function ok(r: WriteBackResult) {
  if (!r.ok) throw new Error(`write-back refused: ${r.error}: ${r.message}`);
  return r;
}

t.test('an edit is written, reloaded and answered with the new hash and generation', async (t) => {
  const f = await onDisk(t);
  const r = ok(await f.apply(EDITS['set-priority']!, f.hash));
  t.equal(readFileSync(f.path, 'utf8'), fixture('channels.set-priority.expected.yaml'));
  t.equal(r.hash, hashContent(readFileSync(f.path)), 'hash of the written file');
  t.equal(r.generation, 2);
  t.equal(r.reload, 'applied');
  t.equal(f.reloader.current.channels.find((c) => c.name === 'relay')?.priority, 7, 'serving');
  t.equal(f.reloader.current.source, 'write-back');
  t.same(
    readdirSync(f.dir).filter((n) => n !== 'ccload.yaml'),
    [],
    'no temp file left behind',
  );

  const noop = ok(await f.apply(EDITS['set-priority']!, r.hash));
  t.match(noop, { changed: false, reload: 'skipped', generation: 2, hash: r.hash }, 'no-op: nothing written');
});

t.test('refusals leave the file untouched (bytes and mtime)', async (t) => {
  const f = await onDisk(t);
  age(f.path);
  const before = fingerprintFile(f.path);

  const invalid = await f.apply({
    action: 'update',
    name: 'relay',
    changes: { url: 'ftp://relay.example.com' },
  });
  t.match(invalid, { ok: false, error: 'invalid' });
  if (!invalid.ok && invalid.error === 'invalid') {
    t.match(
      invalid.errors,
      [{ path: 'channels[1].url', message: /http/, line: 37 }],
      "the loader's own error",
    );
  }
  const dup = await f.apply({
    action: 'add',
    channel: { name: 'relay', url: 'https://x.example', api_key: '${EU_KEY}' },
  });
  t.match(dup, { ok: false, error: 'invalid', errors: [{ message: /duplicate channel name "relay"/ }] });
  const unset = await f.apply({
    action: 'update',
    name: 'relay',
    changes: { keys: ['${NOT_SET_ANYWHERE}'] },
  });
  t.match(unset, { ok: false, error: 'invalid', errors: [{ message: /NOT_SET_ANYWHERE is not set/ }] });

  const conflict = await f.apply(EDITS['set-priority']!, 'sha256:0000');
  t.match(conflict, { ok: false, error: 'conflict', hash: f.hash });

  const secret = await f.apply({
    action: 'update',
    name: 'relay',
    changes: { keys: ['sk-typed-into-a-form'] },
  });
  t.match(secret, { ok: false, error: 'secret' });

  const missing = await f.apply({ action: 'delete', name: 'no such channel' });
  t.match(missing, { ok: false, error: 'not_found' });

  t.same(fingerprintFile(f.path), before, 'file bytes and mtime unchanged');
  t.equal(f.reloader.current.generation, 1, 'nothing reloaded');
  t.same(readdirSync(f.dir), ['ccload.yaml'], 'no temp file left behind');
});

t.test('a file changed behind the edit is a conflict, not an overwrite', async (t) => {
  const f = await onDisk(t);
  const theirs = fixture('channels.yaml').replace('priority: 5', 'priority: 6');
  writeFileSync(f.path, theirs);
  const r = await f.apply(EDITS['disable-relay']!, f.hash);
  t.match(r, { ok: false, error: 'conflict', hash: hashContent(theirs) });
  t.equal(readFileSync(f.path, 'utf8'), theirs, 'their change stands, ours is not written');
  const rebased = ok(await f.apply(EDITS['disable-relay']!, hashContent(theirs)));
  t.equal(rebased.generation, 2);
  t.match(readFileSync(f.path, 'utf8'), /priority: 6\n {4}models: &sonnet .*\n {4}enabled: false\n/);
});

t.test('the current file does not parse: the edit is refused with its errors', async (t) => {
  const f = await onDisk(t);
  writeFileSync(f.path, `${fixture('channels.yaml')}\n  bad: [\n`);
  const before = fingerprintFile(f.path);
  const r = await f.apply(EDITS['set-priority']!);
  t.match(r, { ok: false, error: 'invalid', errors: [{ message: /YAML/ }] });
  t.same(fingerprintFile(f.path), before);
});

t.test('admin.write_back: false refuses every edit with 403', async (t) => {
  const off = fixture('channels.yaml').replace('write_back: true ', 'write_back: false');
  const f = await onDisk(t, off);
  age(f.path);
  const before = fingerprintFile(f.path);
  for (const edit of Object.values(EDITS)) {
    const r = await f.apply(edit);
    t.match(r, { ok: false, error: 'forbidden', message: /write_back: false/ }, edit.action);
  }
  t.same(fingerprintFile(f.path), before);

  // Turned off in the file but not yet reloaded: the file already wins.
  const g = await onDisk(t);
  writeFileSync(g.path, off);
  t.match(await g.apply(EDITS['set-priority']!), { ok: false, error: 'forbidden', message: /in the file/ });
});

t.test('a symlinked config: the target is replaced, the link stays; the mode is kept', async (t) => {
  const dir = tmpDir(t);
  mkdirSync(join(dir, 'real'));
  const target = join(dir, 'real', 'ccload.yaml');
  writeFileSync(target, fixture('channels.yaml'));
  chmodSync(target, 0o640);
  const link = join(dir, 'ccload.yaml');
  symlinkSync(join('real', 'ccload.yaml'), link);
  const input = { path: link, env: ENV };
  const first = await loadConfigFile({ ...input, generation: 1, source: 'startup', now: 0 });
  if (!first.ok) throw new Error('fixture invalid');
  const reloader = new Reloader({ input, initial: first.snapshot, log: silentLogger(), apply() {} });
  const r = await applyEdit({ input, reloader, edit: EDITS['disable-relay']! });
  if (!r.ok) t.fail(JSON.stringify(r));
  t.ok(lstatSync(link).isSymbolicLink(), 'still a symlink');
  t.equal(readlinkSync(link), join('real', 'ccload.yaml'), 'pointing where it pointed');
  t.equal(
    readFileSync(target, 'utf8'),
    fixture('channels.disable-relay.expected.yaml'),
    'the target holds the edit',
  );
  t.equal(statSync(target).mode & 0o7777, 0o640, 'mode kept');
  t.same(readdirSync(join(dir, 'real')), ['ccload.yaml'], 'no temp file left in the target folder');
  t.match(r, { ok: true, generation: 2 });

  const f = await onDisk(t);
  chmodSync(f.path, 0o600);
  ok(await f.apply(EDITS['add']!));
  t.equal(statSync(f.path).mode & 0o7777, 0o600, 'a private file stays private');
});

/** Runs git in `dir` and returns its trimmed output. */
function git(dir: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd: dir, encoding: 'utf8' }).trim();
}

t.test('git_commit: one commit per edit, its message and author, and a minimal diff', async (t) => {
  const dir = tmpDir(t);
  git(dir, 'init', '--quiet', '-b', 'main');
  git(dir, 'config', 'user.name', 'Repo Owner');
  git(dir, 'config', 'user.email', 'owner@example.com');
  const text = fixture('channels.yaml').replace(
    '  write_back: true                # the dashboard may edit this file\n',
    '  write_back: true                # the dashboard may edit this file\n  git_commit: true\n  git_author: Dash Board <dash@example.com>\n',
  );
  writeFileSync(join(dir, 'other.txt'), 'one\n');
  const f = await onDisk(t, text, { dir });
  git(dir, 'add', 'ccload.yaml', 'other.txt');
  git(dir, 'commit', '--quiet', '-m', 'initial');
  // Someone's unrelated staged work must stay staged and out of ccload's commits.
  writeFileSync(join(dir, 'other.txt'), 'two\n');
  git(dir, 'add', 'other.txt');

  const steps: [ChannelEdit, string, string[], string[]][] = [
    [EDITS['disable-relay']!, 'ccload: disable channel "relay"', [], ['+    enabled: false']],
    [
      { action: 'set-priority', name: 'relay', priority: 7 },
      'ccload: set priority of channel "relay" to 7',
      ['-    priority: 5'],
      ['+    priority: 7'],
    ],
    [
      { action: 'delete', name: 'team proxy/eu' },
      'ccload: delete channel "team proxy/eu"',
      [
        "-  - name: 'team proxy/eu'         # names may hold any character",
        '-    url: https://eu.example.com/anthropic',
        '-    api_key: ${EU_KEY}',
        '-    models:',
        '-      - claude-opus-4-1',
        "-      - 'claude-sonnet-4-5'       # quoted on purpose",
        '-    priority: 1',
        '-',
      ],
      [],
    ],
  ];
  for (const [edit, message, removed, added] of steps) {
    const r = ok(await f.apply(edit));
    t.match(r.commit, /^[0-9a-f]{40}$/, `${message}: commit id returned`);
    t.equal(git(dir, 'rev-parse', 'HEAD'), r.commit);
    t.equal(git(dir, 'log', '-1', '--format=%s'), message);
    t.equal(git(dir, 'log', '-1', '--format=%an <%ae>'), 'Dash Board <dash@example.com>', 'author');
    t.equal(git(dir, 'log', '-1', '--format=%cn'), 'Repo Owner', "committer is the repo's own identity");
    t.equal(git(dir, 'show', '--format=', '--name-only', 'HEAD'), 'ccload.yaml', 'only the config file');
    const diff = git(dir, 'diff', '-U0', 'HEAD~1', 'HEAD', '--', 'ccload.yaml')
      .split('\n')
      .filter((l) => /^[-+]/.test(l) && !/^(---|\+\+\+) /.test(l));
    t.same(
      diff.filter((l) => l.startsWith('-')),
      removed,
      `${message}: removed lines`,
    );
    t.same(
      diff.filter((l) => l.startsWith('+')),
      added,
      `${message}: added lines`,
    );
  }
  t.equal(git(dir, 'rev-list', '--count', 'HEAD'), '4', 'one commit per edit');
  t.equal(git(dir, 'diff', '--cached', '--name-only'), 'other.txt', 'unrelated staged work is still staged');
  t.equal(git(dir, 'status', '--porcelain', '--', 'ccload.yaml'), '', 'the config is clean in git');
});

t.test('git_commit outside a repository: the write stands, the failure is reported', async (t) => {
  const text = fixture('channels.yaml').replace(
    '  write_back: true ',
    '  git_commit: true\n  write_back: true ',
  );
  const f = await onDisk(t, text);
  const r = ok(await f.apply(EDITS['disable-relay']!));
  t.equal(r.commit, undefined);
  t.match(r.commitError, /git/);
  t.match(readFileSync(f.path, 'utf8'), /enabled: false/, 'written anyway');
});

t.test('write-backs run one at a time; a stale hash after the first is a conflict', async (t) => {
  const f = await onDisk(t);
  const edits: ChannelEdit[] = [
    { action: 'set-priority', name: 'relay', priority: 2 },
    { action: 'disable', name: 'anthropic-main' },
    { action: 'enable', name: 'backup' },
    { action: 'update', name: 'team proxy/eu', changes: { models: ['claude-opus-4-1'] } },
    { action: 'add', channel: { name: 'fifth', url: 'https://fifth.example', api_key: '${THIRD_KEY}' } },
  ];
  const results = await Promise.all(edits.map((e) => f.apply(e)));
  t.ok(
    results.every((r) => r.ok),
    'all applied',
  );
  t.same(
    results.map((r) => (r.ok ? r.generation : 0)),
    [2, 3, 4, 5, 6],
    'one generation each, in order',
  );
  const c = f.reloader.current.channels;
  t.same(
    c.map((x) => [x.name, x.priority, x.enabled]),
    [
      ['anthropic-main', 10, false],
      ['relay', 2, true],
      ['backup', 0, true],
      ['team proxy/eu', 1, true],
      ['fifth', 0, true],
    ],
    'every edit is in the file',
  );

  const base = f.reloader.current.hash;
  const raced = await Promise.all([
    f.apply({ action: 'set-priority', name: 'relay', priority: 3 }, base),
    f.apply({ action: 'set-priority', name: 'relay', priority: 4 }, base),
  ]);
  t.match(
    raced,
    [{ ok: true }, { ok: false, error: 'conflict' }],
    'the second, based on the same hash, conflicts',
  );
});

t.test("the watcher's echo of a write-back does not bump the generation twice", async (t) => {
  const { daemon } = await startTestDaemon(t, fixture('channels.yaml'), {
    env: ENV,
  });
  const outcomes: ReloadOutcome[] = [];
  daemon.app.reloader.events.on('outcome', (o) => outcomes.push(o));
  const echo = deadline(
    new Promise<ReloadOutcome>((resolve) => {
      daemon.app.reloader.events.on('outcome', (o) => {
        if (o.source === 'file') resolve(o);
      });
    }),
    5000,
    "the watcher's reload after the write",
  );
  const r = ok(await daemon.app.writeBack.apply(EDITS['set-priority']!, daemon.app.reloader.current.hash));
  t.equal(r.generation, 2);
  const o = await echo;
  t.equal(o.result, 'unchanged', 'the echo sees the same hash');
  t.equal(o.generation, 2);
  t.equal(daemon.app.reloader.current.generation, 2, 'one generation for one edit');
  t.same(
    outcomes.map((x) => [x.source, x.result]),
    [
      ['write-back', 'applied'],
      ['file', 'unchanged'],
    ],
  );
});
