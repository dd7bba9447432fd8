/**
 * The real Claude Code CLI through ccload to an OpenAI-compatible upstream (the fake one standing in
 * for the provider), with a tool round trip: the model asks to Read a file, Claude Code runs the tool
 * and sends the result back, the model answers with what the file says.
 *
 * Runs only where the CLI is installed: set CLAUDE_CODE_BIN to its `claude` binary (e.g. after
 * `npm install --no-save --prefix /tmp/cc @anthropic-ai/claude-code`, CLAUDE_CODE_BIN=
 * /tmp/cc/node_modules/.bin/claude). Without it the test is skipped, saying so; CI does not download it.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { okChatStream, startFakeOpenAIUpstream } from '../../src/dev/fake-openai-upstream.js';
import { tmpDir } from '../helpers/tmp.js';
import { attempts, CLIENT_TOKEN, startProxy } from './e2e-helpers.js';

const BIN = process.env['CLAUDE_CODE_BIN'];
const skip =
  !BIN || !existsSync(BIN) ? 'Claude Code CLI not installed (set CLAUDE_CODE_BIN to run this test)' : false;

t.test(
  'claude -p through an openai channel, with a tool round trip',
  { skip, timeout: 180_000 },
  async (t) => {
    const dir = tmpDir(t);
    const home = join(dir, 'home');
    const work = join(dir, 'work');
    mkdirSync(home);
    mkdirSync(work);
    const note = join(work, 'note.txt');
    writeFileSync(note, 'The launch code is PAPAYA-7731.\n');

    const up = await startFakeOpenAIUpstream();
    t.teardown(() => up.close());
    up.handle((req) => {
      const body = req.json as
        | { messages?: { role: string; content: unknown }[]; tools?: unknown[] }
        | undefined;
      const messages = body?.messages ?? [];
      const toolMsg = messages.find((m) => m.role === 'tool');
      if (toolMsg) {
        const content = String(toolMsg.content);
        const code = /PAPAYA-\d+/.exec(content)?.[0] ?? 'nothing';
        return okChatStream({ model: 'fake-model', chunks: ['The note says ', `the code is ${code}.`] });
      }
      if ((body?.tools?.length ?? 0) > 0) {
        return okChatStream({
          model: 'fake-model',
          // A reasoning model: the reasoning comes back as a thinking block (empty signature).
          reasoning: ['The user wants the note; ', 'read it first.'],
          chunks: ['Reading the note.'],
          toolCalls: [
            { id: 'call_read_1', name: 'Read', args: ['{"file_path":', JSON.stringify(note), '}'] },
          ],
        });
      }
      return undefined;
    });
    const { url, daemon } = await startProxy(t, {
      channels: [{ name: 'fake-openai', url: `${up.url}/v1`, protocol: 'openai' }],
      routing: { first_token: '30s', idle: '30s' },
    });

    const env: Record<string, string> = {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      HOME: home,
      ANTHROPIC_BASE_URL: url,
      ANTHROPIC_API_KEY: CLIENT_TOKEN,
      DISABLE_TELEMETRY: '1',
      DISABLE_ERROR_REPORTING: '1',
      DISABLE_AUTOUPDATER: '1',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK: '1',
      CLAUDE_CODE_MAX_RETRIES: '0',
    };
    const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(
        BIN!,
        ['-p', 'What does note.txt say? Read it.', '--allowedTools', 'Read', '--model', 'claude-sonnet-5-5'],
        { cwd: work, env, timeout: 150_000, maxBuffer: 4 << 20 },
        (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
      child.stdin?.end(); // no prompt on stdin: claude -p would otherwise wait 3 s for one
    });
    t.equal(out.code, 0, `claude exited 0 (stderr: ${out.stderr.slice(0, 500)})`);
    t.match(out.stdout, /the code is PAPAYA-7731/, 'the answer used the tool result');
    t.comment(`claude -p printed: ${out.stdout.trim()}`);
    const chats = up.requests.filter((r) => r.path === '/v1/chat/completions');
    t.ok(chats.length >= 2, 'two turns: the tool call and the answer');
    const second = chats.at(-1)!.json as { messages: { role: string; tool_call_id?: string }[] };
    t.ok(
      second.messages.some((m) => m.role === 'tool' && m.tool_call_id === 'call_read_1'),
      'the tool result went back with its tool_call_id',
    );
    const rows = await attempts(daemon, { atLeast: 2 });
    t.ok(rows.every((r) => r.channel === 'fake-openai' && r.status === 200 && r.streamed));
  },
);
