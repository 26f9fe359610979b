import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadTlsMaterial } from '../src/security/tls-material.ts';
import { makeTestCerts, type TestCerts } from './helpers/certs.ts';
import { FIXTURES, hostData, macFor, mayuFailsToStart, runMayuctl, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';

// The admin API on its own TLS port, machine routes on plain HTTP (iPXE has no HTTPS).

const ADMIN = 'tls-admin-token-0123456789abcdef';

/** GET/PUT over https trusting `ca`; resolves with status and text. */
function https(url: string, o: { method?: string; ca?: string; token?: string; body?: string } = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: o.method ?? 'GET', ca: o.ca, headers: o.token ? { authorization: `Bearer ${o.token}` } : {} }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, text }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

let certs: TestCerts;
before(async () => {
  certs = makeTestCerts(await tempDir('mayu-certs-'));
});

describe('TLS port', () => {
  let mayu: MayuProcess;
  let ca = '';
  before(async () => {
    ca = await readFile(certs.caCert, 'utf8');
    mayu = await startMayu({
      env: { MAYU_ADMIN_TOKEN: ADMIN },
      args: ['--tls-port', '0', '--tls-cert-file', certs.serverCert, '--tls-key-file', certs.serverKey, '--tls-ca-file', certs.caCert],
    });
  });
  after(() => mayu.stop());

  it('serves the admin API over TLS to a client trusting the CA, and refuses other clients the handshake', async () => {
    assert.ok(mayu.tlsUrl);
    const ok = await https(`${mayu.tlsUrl}/admin/hosts`, { ca, token: ADMIN });
    assert.deepEqual(ok, { status: 200, text: '[]\n' });
    assert.equal((await https(`${mayu.tlsUrl}/admin/hosts`, { ca })).status, 401, 'TLS does not replace the token');
    await assert.rejects(https(`${mayu.tlsUrl}/admin/hosts`, { token: ADMIN }), /unable to verify the first certificate/);
  });

  it('plain HTTP keeps the machine routes and the two reports, and refuses the rest of /admin with 403', async () => {
    const script = await (await fetch(`${mayu.url}/first-stage-script/tls-1`)).text();
    const token = /^REPORT_TOKEN='([0-9a-f]{64})'$/m.exec(script)![1]!;
    assert.match(script, new RegExp(`^MAYU_URL='${mayu.url}'$`, 'm'), 'machines keep the plain URL');
    assert.equal((await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData('tls-1', macFor(1))) })).status, 200);
    const plain = await fetch(`${mayu.url}/admin/hosts`, { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(plain.status, 403);
    assert.equal(await plain.text(), `the admin API is served over TLS only (port ${new URL(mayu.tlsUrl!).port}); this plain-HTTP port serves machines`);
    for (const route of ['set_metadata', 'mark_fresh', 'override', 'history']) {
      const res = await fetch(`${mayu.url}/admin/host/tls-1/${route}`, { method: route === 'history' ? 'GET' : 'PUT', body: route === 'history' ? undefined : '{}', headers: { authorization: `Bearer ${ADMIN}` } });
      assert.equal(res.status, 403, route);
    }
    const installed = await fetch(`${mayu.url}/admin/host/tls-1/set_installed`, { method: 'PUT', headers: { authorization: `Bearer ${token}` } });
    assert.equal(installed.status, 202);
    assert.equal((await https(`${mayu.tlsUrl}/admin/host/tls-1/boot_complete`, { method: 'PUT', ca, token, body: '{}' })).status, 202);
    assert.equal((await https(`${mayu.tlsUrl}/ipxebootscript`, { ca })).status, 200, 'machine routes answer on the TLS port too');
  });

  it('mayuctl --ca-file talks to the TLS port; without the CA it fails naming the certificate problem', async () => {
    const mayuctl = (...args: string[]) => runMayuctl(new URL(mayu.tlsUrl!).port, args);
    const ok = await mayuctl('--ca-file', certs.caCert, '--token', ADMIN, 'list', '--no-legend', '--fields=serial,state');
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.replace(/ +/g, ' '), 'tls-1 "running"\n');
    const untrusted = await mayuctl('--tls', '--token', ADMIN, 'list');
    assert.equal(untrusted.code, 1);
    assert.match(untrusted.stderr, /^cannot reach mayu at https:\/\/127\.0\.0\.1:\d+\/admin\/hosts: unable to verify the first certificate\n$/);
    const missingCa = await mayuctl('--ca-file', path.join(certs.dir, 'nope.pem'), 'list');
    assert.equal(missingCa.code, 1);
    assert.match(missingCa.stderr, /cannot read --ca-file .*nope\.pem: ENOENT/);
  });

  it('logs the TLS port at start', () => {
    const line = mayu.logs.find((l) => l.msg === 'mayu listening');
    assert.equal(typeof line?.tlsPort, 'number');
  });
});

describe('TLS material is checked at start', () => {
  it('refuses a missing file, a non-certificate, a non-key, a key of another certificate, half the flags', async () => {
    const dir = await tempDir();
    const garbage = path.join(dir, 'garbage.pem');
    await writeFile(garbage, 'not a pem\n');
    const base = ['--config', path.join(FIXTURES, 'config.yaml'), '--cluster-directory', path.join(dir, 'c'), '--report-key-file', path.join(dir, 'rk')];
    const tls = (cert: string, key: string) => ['--tls-port', '0', '--tls-cert-file', cert, '--tls-key-file', key];
    const cases: [string[], RegExp][] = [
      [tls(path.join(dir, 'missing.pem'), certs.serverKey), /--tls-cert-file .*missing\.pem: no such file/],
      [tls(certs.serverCert, path.join(dir, 'missing.key')), /--tls-key-file .*missing\.key: no such file/],
      [tls(garbage, certs.serverKey), /--tls-cert-file .*garbage\.pem: not a PEM certificate/],
      [tls(certs.serverCert, garbage), /--tls-key-file .*garbage\.pem: not a PEM private key/],
      [tls(certs.serverCert, certs.otherKey), /--tls-key-file .*other\.key does not belong to the certificate in --tls-cert-file .*server\.pem/],
      [['--tls-port', '0', '--tls-cert-file', certs.serverCert], /TLS needs --tls-port, --tls-cert-file and --tls-key-file together; missing: --tls-key-file/],
      [['--tls-ca-file', certs.caCert], /--tls-ca-file needs --tls-port/],
    ];
    for (const [args, message] of cases) {
      const r = await mayuFailsToStart([...base, ...args]);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, message);
    }
    await assert.rejects(stat(path.join(dir, 'rk')), 'a refused start creates no report key');
    await assert.rejects(stat(path.join(dir, 'c')), 'nor a cluster directory');
  });

  it('hands out a self-signed certificate as its own CA, and no CA for an unknown issuer', async () => {
    const self = await loadTlsMaterial({ certFile: certs.selfSignedCert, keyFile: certs.selfSignedKey }, new Date());
    assert.equal(self.caPem.trim(), (await readFile(certs.selfSignedCert, 'utf8')).trim());
    const signed = await loadTlsMaterial({ certFile: certs.serverCert, keyFile: certs.serverKey }, new Date());
    assert.equal(signed.caPem, '');
    const expired = await loadTlsMaterial({ certFile: certs.serverCert, keyFile: certs.serverKey }, new Date(Date.now() + 10 * 86400_000));
    assert.match(expired.warnings.join('\n'), /server\.pem expired on/);
  });
});
