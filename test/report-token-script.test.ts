import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, symlink } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { hostData, macFor, startMayu, type MayuProcess } from './helpers/mayu-process.ts';

// The shipped first-stage script's own set_installed PUT (HTTP/1.0 over busybox nc, as in the
// installer) carries the report token mayu rendered into it, against a mayu that requires it.

const run = promisify(execFile);
const ADMIN = 'script-admin-token-0123456789';

/** The values block, report_headers() and http_put() of the rendered script, then one PUT; prints the HTTP status. */
function putFromScript(script: string, serial: string): string {
  const values = /# --- values rendered by mayu ---\n([\s\S]*?)# --- end of values ---/.exec(script)![1]!;
  const headers = /^report_headers\(\) \{\n[\s\S]*?\n\}\n/m.exec(script)![0];
  const httpPut = /^http_put\(\) \{\n[\s\S]*?\n\}\n/m.exec(script)![0];
  // Where http_put keeps the whole answer (a busy mayu's wait is read from it).
  const answer = /^ANSWER=.*\n/m.exec(script)![0];
  return `${values}HTTP_TIMEOUT=15\n${answer}${headers}${httpPut}http_put "$MAYU_URL/admin/host/${serial}/set_installed"\n`;
}

describe('first-stage script reports with its report token', () => {
  let mayu: MayuProcess;
  let ncOnly = '';
  before(async () => {
    mayu = await startMayu({ env: { MAYU_ADMIN_TOKEN: ADMIN } });
    // Only busybox applets on the PATH, as in the installer.
    ncOnly = path.join(mayu.workDir, 'nc-bin');
    await mkdir(ncOnly);
    for (const applet of ['nc', 'timeout', 'head', 'awk', 'sleep', 'wc']) await symlink('/usr/bin/busybox', path.join(ncOnly, applet));
  });
  after(() => mayu.stop());

  it('202 with the rendered token; the same PUT with another host\'s script is refused', async () => {
    const serial = 'script-nc';
    const script = await (await fetch(`${mayu.url}/first-stage-script/${serial}`)).text();
    const other = await (await fetch(`${mayu.url}/first-stage-script/${serial}-other`)).text();
    await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData(serial, macFor(2))) });
    const env = { PATH: ncOnly };
    const sh = (text: string) => run('/bin/sh', ['-c', text], { env });
    // Another host's script carries another token: refused.
    assert.equal((await sh(putFromScript(other, serial))).stdout.trim(), '403');
    assert.equal((await sh(putFromScript(script, serial))).stdout.trim(), '202');
    const host = (await (await fetch(`${mayu.url}/admin/host/${serial}`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { State: string };
    assert.equal(host.State, 'installed');
  });
});
