import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, symlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { git } from './helpers/git.ts';
import { hostData, macFor, startMayu, type MayuProcess } from './helpers/mayu-process.ts';

// The shipped first-stage script's fail(): under busybox sh with only busybox applets on the
// PATH (as in the installer), it reports the failure to a real mayu with the rendered report
// token, then prints the one ERROR line and exits 1. mayu records it.

const BUSYBOX = '/usr/bin/busybox';
const ADMIN = 'fail-script-admin-token-0123456789';

/** The rendered values, the constants and the reports block of the script, then `call`. */
function scriptWith(script: string, call: string): string {
  const values = /# --- values rendered by mayu ---\n([\s\S]*?)# --- end of values ---/.exec(script)![1]!;
  const constants = script.slice(script.indexOf('# --- end of values ---'), script.indexOf('# --- reports to mayu ---'));
  const reports = script.slice(script.indexOf('# --- reports to mayu ---'), script.indexOf('# --- end of reports ---'));
  assert.match(reports, /^fail\(\) \{$/m, 'fail() is in the reports block');
  return `${values}${constants}${reports}${call}\necho "not reached"\n`;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

describe('first-stage script: fail() reports to mayu, then stops', () => {
  let mayu: MayuProcess;
  let bin = '';
  before(async () => {
    mayu = await startMayu({ env: { MAYU_ADMIN_TOKEN: ADMIN } });
    bin = path.join(mayu.workDir, 'busybox-bin');
    await mkdir(bin);
    for (const applet of ['nc', 'timeout', 'head', 'awk', 'sleep', 'wc', 'tr', 'cut', 'sed', 'cat']) await symlink(BUSYBOX, path.join(bin, applet));
  });
  after(() => mayu.stop());

  const sh = (text: string, env: Record<string, string> = {}): Promise<Run> => {
    const started = Date.now();
    return new Promise((resolve) => {
      const child = execFile(BUSYBOX, ['sh', '-c', text], { env: { PATH: bin, ...env }, timeout: 30_000 }, (_err, stdout, stderr) => {
        resolve({ code: child.exitCode ?? -1, stdout, stderr, ms: Date.now() - started });
      });
    });
  };

  it('records the stage, the reason and escaped details; one ERROR line, exit 1', async () => {
    const serial = 'script-fail';
    const script = await (await fetch(`${mayu.url}/first-stage-script/${serial}`)).text();
    assert.equal((await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData(serial, macFor(7))) })).status, 200);
    const commits = Number(git(mayu.clusterDir, 'rev-list', '--count', 'HEAD').trim());
    // A reason with quotes, a backslash, a tab and a CR (tools' output ends up in messages);
    // details over several lines with the same, plus an escape sequence.
    const details = 'lspci -n:\n00:03.0 0200: 8086:1572\t(rev 01)\r\nno "i40e" in C:\\modules\x1b[0m';
    const run = await sh(scriptWith(script, `fail image "image not installed: \\"bunzip2\\" \\\\ (corrupt)	failed\r"`), { FAIL_DETAILS: details });
    assert.equal(run.code, 1, run.stderr);
    assert.equal(run.stderr, 'mayu-installer: ERROR: image not installed: "bunzip2" \\ (corrupt)\tfailed\r\n');
    assert.equal(run.stdout, 'mayu-installer: failure reported to mayu\n');
    assert.doesNotMatch(run.stdout, /not reached/);

    const view = (await (await fetch(`${mayu.url}/admin/host/${serial}/install-failures`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as any;
    assert.equal(view.Current.Stage, 'image');
    assert.equal(view.Current.Reason, 'image not installed: "bunzip2" \\ (corrupt) failed', 'control characters became spaces, trimmed');
    assert.equal(view.Current.Details, 'lspci -n:\n00:03.0 0200: 8086:1572 (rev 01)\nno "i40e" in C:\\modules[0m');
    assert.equal(view.Current.State, 'installing');
    assert.equal(Number(git(mayu.clusterDir, 'rev-list', '--count', 'HEAD').trim()), commits + 1);
    assert.equal(git(mayu.clusterDir, 'log', '-1', '--format=%s').trim(), `${serial}: install failed (image): image not installed: "bunzip2" \\ (corrupt) failed`);
  });

  it('a long reason is cut to 200 bytes; without FAIL_DETAILS no Details', async () => {
    const serial = 'script-fail-long';
    const script = await (await fetch(`${mayu.url}/first-stage-script/${serial}`)).text();
    const run = await sh(scriptWith(script, `fail disk "${'no disk '.repeat(40)}"`));
    assert.equal(run.code, 1);
    assert.equal(run.stdout, 'mayu-installer: failure reported to mayu\n');
    const view = (await (await fetch(`${mayu.url}/admin/host/${serial}/install-failures`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as any;
    assert.equal(view.Current.Reason, 'no disk '.repeat(25).trim());
    assert.equal(view.Current.Details, undefined);
    assert.equal(view.Current.State, 'unknown', 'reported before the final-config POST');
  });

  it('a mayu that does not answer: still the ERROR line and exit 1, within the report timeout', async () => {
    const serial = 'script-fail-away';
    const script = await (await fetch(`${mayu.url}/first-stage-script/${serial}`)).text();
    // A port that accepts and never answers: the report gives up after FAIL_REPORT_TIMEOUT (5 s).
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    try {
      const away = script.replace(/^MAYU_URL='[^']*'$/m, `MAYU_URL='http://127.0.0.1:${port}'`);
      const run = await sh(scriptWith(away, 'fail network "no DHCP answer on any network interface"'));
      assert.equal(run.code, 1);
      assert.equal(run.stdout, 'mayu-installer: could not report the failure to mayu (answer: none)\n');
      assert.equal(run.stderr, 'mayu-installer: ERROR: no DHCP answer on any network interface\n');
      assert.ok(run.ms < 9000, `took ${run.ms} ms`);
    } finally {
      silent.close();
    }
  });
});
