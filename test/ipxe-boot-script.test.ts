import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bootSerial, bootsFromLocalDisk, findBootHost, isPlaceholderSerial, PLACEHOLDER_SERIALS } from '../src/core/boot-identity.ts';
import type { Host } from '../src/core/host.ts';
import { hostData, reportAuth, ROOT, startMayu, type MayuProcess } from './helpers/mayu-process.ts';

// Installed machines boot from disk (mayu issue #14): GET /ipxebootscript without a query chains
// to itself with serial, MAC and UUID; with them, installed/running hosts get `exit`, the rest
// the installer.

const host = (Serial: string, State: Host['State'], MacAddresses: string[] = []): Host => ({ Serial, State, MacAddresses, ConnectedNIC: '', LastBoot: '0001-01-01T00:00:00Z' });

describe('boot identity (pure)', () => {
  const hosts = [host('abc-1', 'installed', ['52:54:00:00:00:01']), host('6d617975-0000-4000-8000-000000000002', 'running')];
  const bySerial = (s: string) => hosts.find((h) => h.Serial === s);
  const find = (q: Parameters<typeof findBootHost>[0]) => findBootHost(q, bySerial, hosts)?.Serial;

  it('treats firmware placeholder serials as missing, case- and space-insensitively', () => {
    for (const s of ['To be filled by O.E.M.', ' Default string ', '0123456789', 'System Serial Number', '']) assert.ok(isPlaceholderSerial(s), s);
    assert.equal(isPlaceholderSerial('ABC-1'), false);
    assert.equal(bootSerial({ serial: 'To be filled by O.E.M.', uuid: '6D617975-0000-4000-8000-000000000002' }), '6d617975-0000-4000-8000-000000000002');
    assert.equal(bootSerial({ serial: 'ABC 1', uuid: 'u' }), 'abc-1');
    assert.equal(bootSerial({ serial: '', uuid: '' }), undefined);
  });

  it('finds by serial, by UUID for placeholder serials, else by the booting MAC', () => {
    assert.equal(find({ serial: 'ABC-1' }), 'abc-1');
    assert.equal(find({ serial: 'Default string', uuid: '6d617975-0000-4000-8000-000000000002' }), '6d617975-0000-4000-8000-000000000002');
    assert.equal(find({ serial: 'unknown-serial', mac: '52-54-00-00-00-01' }), 'abc-1');
    assert.equal(find({ serial: '', mac: '52:54:00:00:00:01', uuid: '' }), 'abc-1');
    assert.equal(find({ serial: 'unknown-serial', mac: '52-54-00-00-00-99' }), undefined);
    assert.equal(find({ serial: 'a/b', mac: 'not-a-mac' }), undefined);
  });

  it('only installed and running hosts boot from the local disk', () => {
    assert.deepEqual((['unknown', 'configured', 'installing', 'installed', 'running'] as const).map((s) => bootsFromLocalDisk(host('x', s))), [false, false, false, true, true]);
    assert.equal(bootsFromLocalDisk(undefined), false);
  });

  it('the installer /init skips exactly the same placeholder serials', async () => {
    const init = await readFile(path.join(ROOT, 'scripts/images/initramfs/installer-init'), 'utf8');
    const block = /is_placeholder_serial\(\) \{\n\s*case \$1 in\n([\s\S]*?)\) return 0 ;;/.exec(init);
    assert.ok(block, 'no case block in is_placeholder_serial');
    const listed = [...block[1]!.matchAll(/'([^']*)'/g)].map((m) => m[1]);
    assert.deepEqual([...listed].sort(), [...PLACEHOLDER_SERIALS].sort());
  });
});

describe('GET /ipxebootscript against the real server', () => {
  let mayu: MayuProcess;
  before(async () => {
    mayu = await startMayu();
  });
  after(() => mayu.stop());

  const bootScript = async (query: string) => {
    const res = await fetch(`${mayu.url}/ipxebootscript${query}`);
    assert.equal(res.status, 200);
    return res.text();
  };
  const isInstaller = (s: string) => /^kernel \S+\/images\/vmlinuz .*next-script=\S+\/first-stage-script\/__SERIAL__ && initrd /m.test(s);
  const isLocalBoot = (s: string) => /^exit 1$/m.test(s) && !s.includes('kernel ');
  /** A machine's report, with its report token. */
  const put = async (serial: string, route: string, body?: string) => fetch(`${mayu.url}/admin/host/${serial}/${route}`, { method: 'PUT', body, headers: await reportAuth(mayu, serial) });
  const install = async (serial: string, mac: string) => {
    assert.equal((await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData(serial, mac)) })).status, 200);
    assert.equal((await put(serial, 'set_installed')).status, 202);
  };

  it('without a query: a script that chains to itself with serial, MAC and UUID', async () => {
    const script = await bootScript('');
    // Then the wait-and-ask-again loop of a busy mayu (test/limits-machine-retry.test.ts).
    assert.deepEqual(script.trimEnd().split('\n').slice(0, 3), [
      '#!ipxe',
      ':mayu_ask',
      `chain ${mayu.url}/ipxebootscript?serial=\${serial:uristring}&mac=\${mac:hexhyp}&uuid=\${uuid} && exit ||`,
    ]);
  });

  it('a machine mayu never saw gets the installer', async () => {
    assert.ok(isInstaller(await bootScript('?serial=NEW-1&mac=52-54-00-aa-00-01&uuid=')));
    assert.ok(isInstaller(await bootScript('?serial=&mac=&uuid=')));
  });

  it('installed and running hosts exit to the local disk; set back to configured, the installer again', async () => {
    await install('boot-1', '52:54:00:bb:00:01');
    const q = '?serial=BOOT-1&mac=52-54-00-bb-00-01&uuid=6d617975-0000-4000-8000-0000000000b1';
    const installed = await bootScript(q);
    assert.ok(isLocalBoot(installed), installed);
    assert.match(installed, /^echo mayu: boot-1 is installed, booting from the local disk$/m);

    assert.equal((await put('boot-1', 'boot_complete', '{}')).status, 202);
    assert.ok(isLocalBoot(await bootScript(q)));

    assert.equal((await put('boot-1', 'set_state', '{"State":"configured"}')).status, 202);
    assert.ok(isInstaller(await bootScript(q)));
  });

  it('finds a host with a placeholder serial by its UUID, and one with an unknown serial by MAC', async () => {
    const uuid = '6d617975-0000-4000-8000-0000000000c1';
    await install(uuid, '52:54:00:cc:00:01');
    assert.ok(isLocalBoot(await bootScript(`?serial=To%20be%20filled%20by%20O.E.M.&mac=52-54-00-cc-00-99&uuid=${uuid.toUpperCase()}`)));
    assert.ok(isLocalBoot(await bootScript('?serial=Default%20string&mac=52-54-00-cc-00-01&uuid=')));
    assert.ok(isInstaller(await bootScript('?serial=Default%20string&mac=52-54-00-cc-00-02&uuid=')));
  });

  it('logs which answer each boot request got', async () => {
    const url = '/ipxebootscript?serial=BOOT-1&mac=&uuid=log-check';
    await bootScript(url.slice('/ipxebootscript'.length));
    // The log line reaches us through mayu's stdout, possibly after the answer: poll for it.
    const deadline = Date.now() + 5000;
    let line: Record<string, unknown> | undefined;
    while (!(line = mayu.logs.find((l) => l.msg === 'request' && l.url === url)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(line?.boot, 'installer');
    assert.equal(line?.host, 'boot-1');
  });
});

describe('HTTP clients that half-close after their request (busybox nc)', () => {
  let mayu: MayuProcess;
  before(async () => {
    mayu = await startMayu();
  });
  after(() => mayu.stop());

  /** Sends a raw HTTP/1.0 request, half-closes at once (FIN) like `printf ... | nc`, returns the answer. */
  const rawRequest = (request: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect(mayu.port, '127.0.0.1', () => socket.end(request));
      let answer = '';
      socket.on('data', (d) => (answer += d));
      socket.on('close', () => resolve(answer));
      socket.on('error', reject);
    });

  it('still get the answer of a request that commits to git', async () => {
    for (let i = 0; i < 5; i++) {
      const serial = `half-${i}`;
      assert.equal((await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData(serial, `52:54:00:dd:00:0${i}`)) })).status, 200);
      const { authorization } = await reportAuth(mayu, serial);
      const answer = await rawRequest(`PUT /admin/host/${serial}/set_installed HTTP/1.0\r\nHost: x\r\nAuthorization: ${authorization}\r\nContent-Length: 0\r\n\r\n`);
      assert.match(answer, /^HTTP\/1\.1 202 /, `answer ${i}: ${JSON.stringify(answer)}`);
    }
  });
});
