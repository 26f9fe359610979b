import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { runMayuctl } from '../src/cli/mayuctl/cli.ts';
import { ROOT } from './helpers/mayu-process.ts';

const run = promisify(execFile);
const mayuctl = (...args: string[]) => run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/mayuctl.ts'), ...args], { cwd: ROOT });

async function inProcess(argv: string[], color: boolean) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runMayuctl(argv, { out: (t) => out.push(t), err: (t) => err.push(t) }, {}, color);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('mayuctl comfort', () => {
  it('completion prints yargs\' bash completion script, and the completions it asks for list the commands', async () => {
    const script = (await mayuctl('completion')).stdout;
    assert.match(script, /###-begin-mayuctl-completions-###/);
    assert.match(script, /complete -o bashdefault -o default -F _mayuctl_yargs_completions mayuctl/);
    const words = (await mayuctl('--get-yargs-completions', 'mayuctl', '')).stdout.split('\n');
    for (const c of ['list', 'set', 'delete', 'power-hook', 'history']) assert.ok(words.includes(c), c);
  });

  it('version --json prints JSON', async () => {
    const { version } = JSON.parse((await mayuctl('version', '--json')).stdout) as { version: string };
    assert.match(version, /^\d+\.\d+\.\d+/);
  });

  it('usage errors exit 2 before any request; colour only when asked for (a terminal without NO_COLOR)', async () => {
    const plain = await inProcess(['--port', '1', 'set', 'node-a', 'colour', 'red'], false);
    assert.equal(plain.code, 2);
    assert.equal(plain.err, "setting key with name 'colour' is not supported");
    const coloured = await inProcess(['--port', '1', 'set', 'node-a', 'colour', 'red'], true);
    assert.equal(coloured.err, "\x1b[31msetting key with name 'colour' is not supported\x1b[0m");
    // Port 1 refuses: a failure that is not usage exits 1.
    const refused = await inProcess(['--host', '127.0.0.1', '--port', '1', 'list'], false);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /cannot reach mayu at http:\/\/127\.0\.0\.1:1\/admin\/hosts/);
    assert.equal((await inProcess(['frobnicate'], false)).code, 2);
  });
});
