/**
 * sd_notify through `systemd-notify`: message order and content with a stand-in program that
 * records its arguments, graceful degradation (no NOTIFY_SOCKET, missing or failing binary), and
 * — when the real `systemd-notify` and python3 are installed — a `ccload serve` child talking to a
 * datagram socket that stands in for PID 1: READY=1 only once the port answers, RELOADING=1/READY=1
 * around SIGHUP, the rejected reload in STATUS=, STOPPING=1 on SIGTERM.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { attachSystemd, systemdNotifier } from '../../src/operations/systemd.js';
import { tmpDir } from '../helpers/tmp.js';
import { deadline, waitFor } from '../helpers/wait.js';

const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));

/** A stand-in for systemd-notify that appends its NOTIFY_SOCKET and arguments to `log`. */
function recorder(dir: string, exitCode = 0): { command: string; log: string } {
  const log = join(dir, 'notify.log');
  const command = join(dir, 'fake-systemd-notify');
  writeFileSync(
    command,
    `#!/bin/sh\nprintf '%s|' "$NOTIFY_SOCKET" "$@" >> '${log}'\nprintf '\\n' >> '${log}'\nexit ${exitCode}\n`,
  );
  chmodSync(command, 0o755);
  return { command, log };
}

const lines = (file: string) =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split('|').slice(0, -1));

t.test('without NOTIFY_SOCKET nothing is sent', async (t) => {
  t.equal(systemdNotifier({}), undefined);
  t.equal(systemdNotifier({ NOTIFY_SOCKET: '' }), undefined);
  const untouchable = (what: string) => {
    throw new Error(`attachSystemd read daemon.app.${what} without NOTIFY_SOCKET`);
  };
  const daemonLike = {
    url: 'http://x',
    app: {
      get log() {
        return untouchable('log');
      },
      get reloader() {
        return untouchable('reloader');
      },
    },
  };
  t.equal(attachSystemd(daemonLike, {}), undefined, 'attachSystemd does not touch the daemon');
});

t.test('messages go out in call order, one line of status each', async (t) => {
  const dir = tmpDir(t);
  const { command, log } = recorder(dir);
  const n = systemdNotifier({ NOTIFY_SOCKET: '/run/x.sock' }, { command })!;
  void n.ready('serving\ngeneration 1');
  void n.reloading();
  void n.status('reload rejected');
  await n.stopping('bye');
  const got = lines(log);
  t.same(got[0], ['/run/x.sock', 'READY=1', 'STATUS=serving generation 1']);
  t.equal(got[1]?.[1], 'RELOADING=1');
  t.match(got[1]?.[2], /^MONOTONIC_USEC=\d+$/);
  t.same(got[2], ['/run/x.sock', 'STATUS=reload rejected']);
  t.same(got[3], ['/run/x.sock', 'STOPPING=1', 'STATUS=bye']);
  t.equal(got.length, 4);
});

t.test('a missing binary is reported once and then ignored; a failing one each time', async (t) => {
  const warnings: string[] = [];
  const missing = systemdNotifier(
    { NOTIFY_SOCKET: '/run/x.sock' },
    { command: '/nonexistent/systemd-notify', warn: (m) => warnings.push(m) },
  )!;
  await missing.ready('a');
  await missing.status('b');
  t.equal(warnings.length, 1);
  t.match(warnings[0], /NOTIFY_SOCKET is set but \/nonexistent\/systemd-notify is not installed/);

  const dir = tmpDir(t);
  const { command } = recorder(dir, 3);
  const failing: string[] = [];
  const n = systemdNotifier({ NOTIFY_SOCKET: '/run/x.sock' }, { command, warn: (m) => failing.push(m) })!;
  await n.ready('a');
  await n.status('b');
  t.same(
    failing.map((w) => w.replace(command, 'CMD')),
    ['CMD READY=1 exited 3: ', 'CMD STATUS=b exited 3: '],
  );
});

const hasTools =
  spawnSync('systemd-notify', ['--version']).status === 0 && spawnSync('python3', ['--version']).status === 0;

t.test(
  'a ccload serve child notifies a real socket through the real systemd-notify',
  { skip: hasTools ? false : 'systemd-notify or python3 is not installed' },
  async (t) => {
    const dir = tmpDir(t);
    const sock = join(dir, 'notify.sock');
    const receiver = join(dir, 'receiver.py');
    // Stands in for PID 1: prints every datagram as one JSON line (SCM_RIGHTS fds of the barrier are
    // dropped by recv, which is what releases systemd-notify's BARRIER=1 wait).
    writeFileSync(
      receiver,
      `import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps("bound"), flush=True)
s.settimeout(60)
while True:
    try:
        data = s.recv(65536)
    except socket.timeout:
        break
    print(json.dumps(data.decode()), flush=True)
`,
    );
    const py = spawn('python3', [receiver, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => py.kill('SIGKILL'));
    const messages: string[] = [];
    createInterface({ input: py.stdout }).on('line', (l) => messages.push(JSON.parse(l) as string));
    await waitFor(() => messages.includes('bound'), { timeoutMs: 10_000, message: 'receiver bound' });

    const config = join(dir, 'ccload.yaml');
    const good = `version: 1
server: { listen: "127.0.0.1:0", database: "file:state/ccload.db" }
admin: { password: "\${TEST_PASS}" }
channels:
  - { name: main, url: "http://127.0.0.1:9", api_key: "\${TEST_KEY}" }
`;
    writeFileSync(config, good);
    const child: ChildProcess = spawn(process.execPath, [MAIN, 'serve', '--config', config], {
      cwd: dir,
      env: {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin',
        NOTIFY_SOCKET: sock,
        RUNTIME_DIRECTORY: dir,
        TEST_KEY: 'sk-ant-test-key-0001',
        TEST_PASS: 'pw',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    t.teardown(() => child.kill('SIGKILL'));
    const payloads = () => messages.filter((m) => m !== 'bound' && m !== 'BARRIER=1');
    const find = (re: RegExp) => payloads().find((m) => re.test(m));

    await waitFor(() => find(/^READY=1/) !== undefined, { timeoutMs: 20_000, message: 'READY=1' });
    const ready = find(/^READY=1/)!;
    t.match(ready, /STATUS=serving config generation 1 \([0-9a-f]{12}\), 1\/1 channels enabled, on http/);
    const url = /on (http:\/\/[^\s]+)/.exec(ready)?.[1];
    const health = await fetch(`${url}/health`);
    t.equal(health.status, 200, 'the port listened when READY=1 was sent');

    writeFileSync(config, `${good}  - { name: main, url: "http://127.0.0.1:9" }\n`);
    const before = payloads().length;
    child.kill('SIGHUP');
    await waitFor(
      () =>
        payloads()
          .slice(before)
          .some((m) => m.startsWith('READY=1')),
      {
        timeoutMs: 20_000,
        message: 'READY=1 after the reload',
      },
    );
    // The file watcher reloads too (its STATUS= line may come before or after): look for the
    // SIGHUP pair itself.
    const around = payloads().slice(before);
    const reloading = around.findIndex((m) => m.startsWith('RELOADING=1'));
    const readyAgain = around.findIndex((m) => m.startsWith('READY=1'));
    t.match(around[reloading], /^RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=reloading/, 'RELOADING=1 sent');
    t.ok(reloading >= 0 && reloading < readyAgain, 'RELOADING=1 before READY=1');
    const ready2 = around[readyAgain]!;
    t.match(ready2, /^READY=1\nSTATUS=reload rejected \(1 error\(s\): channels\[1\]\.name duplicate/);
    t.match(ready2, /generation 1 keeps serving/);

    child.kill('SIGTERM');
    t.equal(await deadline(exited, 20_000, 'ccload exit'), 0, 'exits 0 after SIGTERM');
    // systemd-notify may still be on its way when the daemon has exited (it is its own process).
    await waitFor(() => find(/^STOPPING=1/) !== undefined, { timeoutMs: 10_000, message: 'STOPPING=1' });
    t.pass('STOPPING=1 was sent');
  },
);
