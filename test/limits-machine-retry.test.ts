import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, symlink } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FIXTURES, ROOT, startMayu, tempDir, writeText, type MayuProcess } from './helpers/mayu-process.ts';

// Machines honour a busy mayu (README "Limits and overload"): the iPXE scripts carry a wait of
// mayu's choosing and loop on a failed request; the installer and the first-stage script read
// the wait of a 429/503 from what busybox wget prints (the status line) or from nc's answer,
// and sleep it plus jitter. Checked on the scripts a real server renders, and with the real
// busybox against a real server that refuses.

const BUSYBOX = '/usr/bin/busybox';
const RETRY = 3;

describe('machines wait for a busy mayu and ask again', () => {
  let mayu: MayuProcess;
  let bin = '';
  before(async () => {
    const workDir = await tempDir();
    const limits = `limits:\n  new_hosts_per_source: {rate: 0.01, burst: 1}\n  new_hosts: {rate: 0}\n  exempt_sources: []\n  max_lag_ms_new: 0\n  max_commit_ms_new: 0\n  max_busy_new: 0\n  retry_after_seconds: ${RETRY}\n`;
    const config = await writeText(path.join(workDir, 'config.yaml'), `${readFileSync(path.join(FIXTURES, 'config.yaml'), 'utf8')}\n${limits}`);
    mayu = await startMayu({ workDir, config });
    bin = path.join(workDir, 'busybox-bin');
    await mkdir(bin);
    for (const applet of ['wget', 'nc', 'timeout', 'head', 'tail', 'awk', 'sleep', 'sed', 'cat', 'printf', 'wc']) await symlink(BUSYBOX, path.join(bin, applet));
  });
  after(() => mayu.stop());

  const sh = (text: string): Promise<{ stdout: string; stderr: string }> =>
    new Promise((resolve, reject) => {
      execFile(BUSYBOX, ['sh', '-c', text], { env: { PATH: bin }, timeout: 30_000 }, (err, stdout, stderr) => (err && err.code !== 0 && err.code !== 1 ? reject(err) : resolve({ stdout, stderr })));
    });
  const text = async (url: string) => (await fetch(url)).text();

  it('the chain script asks again after a wait mayu drew between retry_after_seconds and twice it, 10 times at most', async () => {
    const waits = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const script = await text(`${mayu.url}/ipxebootscript`);
      const lines = script.trimEnd().split('\n');
      assert.equal(lines[0], '#!ipxe');
      assert.ok(lines.includes(`chain ${mayu.url}/ipxebootscript?serial=\${serial:uristring}&mac=\${mac:hexhyp}&uuid=\${uuid} && exit ||`), script);
      assert.ok(lines.includes('iseq ${mayu_tries} 10 && exit 1 ||'));
      // The local boot answer's exit 1 is not a failed request: iPXE ends with it at once.
      assert.ok(lines.includes('iseq ${mayu_answer} local-disk && exit 1 ||'));
      assert.ok(lines.includes('goto mayu_ask') && lines.includes(':mayu_ask'));
      const wait = Number(/^sleep (\d+)$/m.exec(script)?.[1]);
      assert.ok(wait >= RETRY && wait <= 2 * RETRY, `sleep ${wait}`);
      waits.add(wait);
    }
    assert.ok(waits.size > 1, `different machines get different waits: ${[...waits]}`);
  });

  it('the installer boot script tries its downloads again after a wait, 10 times at most', async () => {
    const script = await text(`${mayu.url}/ipxebootscript?serial=new-machine&mac=52-54-00-00-00-01&uuid=`);
    assert.match(script, /^:mayu_load$/m);
    assert.match(script, /^kernel \S+\/images\/vmlinuz .* && initrd \S+\/images\/initrd\.cpio\.gz && boot \|\|$/m);
    assert.match(script, /^iseq \$\{mayu_loads\} 10 && exit \|\|$/m);
    assert.match(script, new RegExp(`^sleep ([${RETRY}-9]|1\\d)$`, 'm'));
    assert.match(script, /^goto mayu_load$/m);
  });

  it('the first-stage script waits on a busy answer around its final-config POST and set_installed', async () => {
    const script = await text(`${mayu.url}/first-stage-script/retry-0`);
    assert.match(script, /^retry_after_in\(\) \{$/m);
    assert.match(script, /^sleep_with_jitter\(\) \{$/m);
    assert.match(script, /until timeout "\$HTTP_TIMEOUT" wget -q -O "\$WORKDIR\/config"[\s\S]*?wait_s=\$\(retry_after_in "\$WORKDIR\/wget\.err"\)[\s\S]*?sleep_with_jitter "\$wait_s"\ndone/);
    assert.match(script, /status=\$\(http_put "\$installed_url"\)[\s\S]*?wait_s=\$\(retry_after_in "\$ANSWER"\)[\s\S]*?sleep_with_jitter "\$wait_s"\n    continue/);
  });

  it('busybox wget of a refused registration shows the wait, and the installer\'s retry_after_in reads it', async () => {
    // retry-0 took the one token of 127.0.0.1 (test above); this one is refused.
    const res = await fetch(`${mayu.url}/first-stage-script/retry-1`);
    assert.equal(res.status, 429);
    const common = path.join(ROOT, 'scripts/images/initramfs/common.sh');
    const run = await sh(`. ${common}; wget -q -O /dev/null ${mayu.url}/first-stage-script/retry-2 2>/tmp/mayu-retry-test.err; echo "status $?"; cat /tmp/mayu-retry-test.err; echo "wait $(retry_after_in /tmp/mayu-retry-test.err)"`);
    assert.match(run.stdout, /status 1/);
    const shown = /server returned error: HTTP\/1\.1 429 Too Many Requests, retry after (\d+) s/.exec(run.stdout);
    assert.ok(shown, run.stdout);
    assert.match(run.stdout, new RegExp(`^wait ${shown[1]}$`, 'm'));
    assert.ok(Number(shown[1]) >= 60, 'one token per 100 s');
  });

  it('the first-stage script\'s http_put keeps the answer, whose wait retry_after_in reads', async () => {
    const script = await text(`${mayu.url}/first-stage-script/retry-0`);
    const constants = script.slice(script.indexOf('# --- values rendered by mayu ---'), script.indexOf('# --- end of reports ---'));
    // A PUT that is refused: a new serial's final config is a GET/POST, so ask the rate-limited
    // route through the same nc plumbing with a GET-shaped request line.
    const run = await sh(`${constants}\nprintf 'GET /first-stage-script/retry-3 HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n' | timeout 5 nc 127.0.0.1 ${mayu.port} >"$ANSWER"; head -n 1 "$ANSWER"; echo "wait $(retry_after_in "$ANSWER")"; sleep_with_jitter 1; echo slept`);
    assert.match(run.stdout, /^HTTP\/1\.1 429 Too Many Requests, retry after (\d+) s\r?$/m);
    const wait = /^wait (\d+)$/m.exec(run.stdout)?.[1];
    assert.ok(wait && Number(wait) >= 60, run.stdout);
    assert.match(run.stdout, /^slept$/m);
  });
});
