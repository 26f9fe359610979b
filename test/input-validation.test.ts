import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { isIpv4 } from '../src/core/addresses.ts';
import { bootCompleteSteps, HostChangeError, overrideSteps, setMetadataSteps, setProviderIdSteps } from '../src/core/host-changes.ts';
import { HostDataError, parseHostData } from '../src/core/host-data.ts';
import { InvalidSerialError, normalizeSerial } from '../src/core/serial.ts';
import { gitCommitCount } from './helpers/git.ts';
import { hostData, macFor, reportAuth, startMayu, type MayuProcess } from './helpers/mayu-process.ts';
import { sampleHost } from './fixtures/render/sample.ts';

// Bad input: a clear 4xx naming the problem, and nothing written.

describe('serials cannot leave clusters/', () => {
  it('any accepted serial is one safe folder name; anything with / NUL control or leading dot is refused', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (raw) => {
        let serial: string;
        try {
          serial = normalizeSerial(raw);
        } catch (err) {
          assert.ok(err instanceof InvalidSerialError);
          assert.match(err.message, /^invalid serial /);
          return;
        }
        assert.match(serial, /^[a-z0-9][a-z0-9._:+-]{0,127}$/);
        assert.equal(path.basename(serial), serial);
        assert.equal(path.join('clusters', serial, 'conf.json').startsWith('clusters/'), true);
        assert.notEqual(path.normalize(path.join('clusters', serial)), 'clusters');
      }),
      { numRuns: 5000 },
    );
    for (const bad of ['..', '../x', 'a/b', 'a\0b', 'a\nb', '.hidden', '', 'x'.repeat(129), 'a\\b', 'a%2fb']) {
      assert.throws(() => normalizeSerial(bad), InvalidSerialError, JSON.stringify(bad));
    }
  });
});

describe('core checks', () => {
  it('IPv4: four decimal octets, no leading zeros (Go net.ParseIP)', () => {
    for (const ok of ['10.0.3.31', '0.0.0.0', '255.255.255.255']) assert.equal(isIpv4(ok), true, ok);
    for (const bad of ['010.0.3.31', '10.0.3.256', '10.0.3', '10.0.3.31.1', ' 10.0.3.31', '::1', '1e1.0.0.0']) assert.equal(isIpv4(bad), false, bad);
  });

  it('MACs and NetDevs', () => {
    const data = (NetDevs: unknown) => ({ Serial: 's', NetDevs });
    assert.equal(parseHostData(data([{ Name: 'eth0', MacAddress: '52-54-00-AA-BB-CC' }])).NetDevs[0]!.MacAddress, '52:54:00:aa:bb:cc');
    for (const mac of ['52:54:00:aa:bb', '52:54:00:aa:bb:cc:dd', 'zz:54:00:aa:bb:cc', '52:54:00:aa:bb:cc:', '']) {
      assert.throws(() => parseHostData(data([{ Name: 'eth0', MacAddress: mac }])), /invalid MAC address/);
    }
    const many = Array.from({ length: 65 }, (_, i) => ({ Name: `eth${i}`, MacAddress: macFor(i) }));
    assert.throws(() => parseHostData(data(many)), /NetDevs: 65 interfaces, at most 64/);
    assert.throws(() => parseHostData(data([{ Name: 'eth0\n', MacAddress: macFor(1) }])), HostDataError);
  });

  it('metadata, provider id, versions, override keys', () => {
    const h = sampleHost();
    assert.throws(() => setMetadataSteps(h, ['a=b\u0001c']), /no control characters/);
    assert.throws(() => setMetadataSteps(h, ['a=' + 'x'.repeat(300)]), /at most 256 characters/);
    assert.throws(() => setMetadataSteps(h, Array.from({ length: 65 }, (_, i) => `k${i}=v`)), /at most 64/);
    assert.throws(() => setProviderIdSteps(h, 'rack\n7'), /invalid provider id/);
    assert.equal(setProviderIdSteps(h, 'rack-7 (row 2)').length, 1);
    const running = sampleHost({ State: 'installed' });
    assert.throws(() => bootCompleteSteps(running, { CoreOSVersion: '../../etc' }, '2026-01-01T01:00:00.5+01:00'), /invalid CoreOSVersion/);
    assert.throws(() => bootCompleteSteps(running, { DockerVersion: '1.12\nX=1' }, '2026-01-01T01:00:00.5+01:00'), /invalid DockerVersion/);
    assert.equal(bootCompleteSteps(running, { CoreOSVersion: '1010.5.0', K8sVersion: 'v1.5.2+coreos.0' }, '2026-01-01T01:00:00.5+01:00').length, 1);
    for (const key of ['__proto__', 'constructor', 'prototype', 'a-b', '1x', 'x'.repeat(65)]) {
      assert.throws(() => overrideSteps(h, { [key]: 'v' }), HostChangeError, key);
    }
  });
});

describe('bad input over HTTP: 4xx with a message, nothing written', () => {
  let mayu: MayuProcess;
  const confJsons = async () => {
    const dirs = (await readdir(mayu.clusterDir)).filter((d) => !d.startsWith('.') && d !== 'cluster.json').sort();
    return Promise.all(dirs.map((d) => readFile(path.join(mayu.clusterDir, d, 'conf.json'), 'utf8')));
  };
  before(async () => {
    mayu = await startMayu();
    await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData('v-1', macFor(1))) });
    assert.equal((await fetch(`${mayu.url}/admin/host/v-1/set_installed`, { method: 'PUT', headers: await reportAuth(mayu, 'v-1') })).status, 202);
  });
  after(() => mayu.stop());

  const cases: { name: string; method: string; path: string; body?: string; status: number; text: RegExp }[] = [
    { name: 'override that breaks the install disk', method: 'PUT', path: '/admin/host/v-1/override', body: '{"Overrides":{"install_disk":"sda"}}', status: 400, text: /^refused: the host's templates would not render with it: env\.install_disk must be auto, a device path/ },
    { name: 'override that breaks the ssh keys', method: 'PUT', path: '/admin/host/v-1/override', body: '{"Overrides":{"ssh_authorized_keys":[1]}}', status: 400, text: /env\.ssh_authorized_keys must be a list of strings/ },
    { name: 'override key __proto__', method: 'PUT', path: '/admin/host/v-1/override', body: '{"Overrides":{"__proto__":{"x":1}}}', status: 400, text: /invalid override key "__proto__"/ },
    { name: 'override key with a dot', method: 'PUT', path: '/admin/host/v-1/override', body: '{"Overrides":{"a.b":"c"}}', status: 400, text: /invalid override key "a\.b"/ },
    { name: 'Overrides not a map', method: 'PUT', path: '/admin/host/v-1/override', body: '{"Overrides":["x"]}', status: 400, text: /override request: field Overrides/ },
    { name: 'IPMI address with leading zeros', method: 'PUT', path: '/admin/host/v-1/set_ipmi_addr', body: '{"IPMIAddr":"010.0.0.1"}', status: 400, text: /invalid IPMI address "010\.0\.0\.1"/ },
    { name: 'provider id with a newline', method: 'PUT', path: '/admin/host/v-1/set_provider_id', body: '{"ProviderId":"a\\nb"}', status: 400, text: /invalid provider id/ },
    { name: 'negative cabinet', method: 'PUT', path: '/admin/host/v-1/set_cabinet', body: '{"Cabinet":-1}', status: 400, text: /field Cabinet: expected uint/ },
    { name: 'unknown state', method: 'PUT', path: '/admin/host/v-1/set_state', body: '{"State":"exploded"}', status: 400, text: /unknown state "exploded"/ },
    { name: 'etcd token with a slash', method: 'PUT', path: '/admin/host/v-1/set_etcd_cluster_token', body: '{"EtcdClusterToken":"../x"}', status: 400, text: /invalid etcd cluster token/ },
    { name: 'boot_complete with a path in a version', method: 'PUT', path: '/admin/host/v-1/boot_complete', body: '{"CoreOSVersion":"../../../etc"}', status: 400, text: /invalid CoreOSVersion/ },
    { name: 'boot_complete with a JSON array', method: 'PUT', path: '/admin/host/v-1/boot_complete', body: '[]', status: 400, text: /^unable to parse json data in boot_complete request$/ },
    { name: 'JSON with a trailing comma', method: 'PUT', path: '/admin/host/v-1/set_metadata', body: '{"FleetMetadata":["a=b"],}', status: 400, text: /^unable to parse json data in set_metadata request$/ },
    { name: 'JSON null', method: 'PUT', path: '/admin/host/v-1/set_metadata', body: 'null', status: 400, text: /^unable to parse json data/ },
    { name: 'a NUL in the serial', method: 'GET', path: '/first-stage-script/a%00b', status: 400, text: /^invalid serial "a\\u0000b"/ },
    { name: 'an encoded slash in the serial', method: 'PUT', path: '/admin/host/..%2Fv-1/set_state', body: '{"State":"unknown"}', status: 400, text: /^invalid serial "\.\.\/v-1"/ },
    { name: 'a serial of 129 characters', method: 'GET', path: `/first-stage-script/${'a'.repeat(129)}`, status: 400, text: /^invalid serial/ },
    { name: 'broken percent-encoding', method: 'GET', path: '/first-stage-script/a%zzb', status: 400, text: /^invalid serial/ },
    { name: 'HostData with 65 NICs', method: 'POST', path: '/final-cloud-config.yaml', body: JSON.stringify({ Serial: 'v-2', NetDevs: Array.from({ length: 65 }, (_, i) => ({ Name: `e${i}`, MacAddress: macFor(i) })) }), status: 400, text: /at most 64/ },
    { name: 'HostData with an IPMI address of the wrong type', method: 'POST', path: '/final-cloud-config.yaml', body: '{"Serial":"v-2","IPMIAddress":7}', status: 400, text: /IPMIAddress: invalid IPv4 address 7/ },
    { name: 'HostData that is a string', method: 'POST', path: '/final-cloud-config.yaml', body: '"v-2"', status: 400, text: /^host data must be a JSON object$/ },
    { name: 'a 64 KB + 1 body', method: 'POST', path: '/final-cloud-config.yaml', body: 'x'.repeat(64 * 1024 + 1), status: 413, text: /request body too large/ },
  ];
  for (const c of cases) {
    it(`${c.name} → ${c.status}`, async () => {
      const commits = gitCommitCount(mayu.clusterDir);
      const files = await confJsons();
      // Reports come from the machine itself, with its report token.
      const headers = c.path.endsWith('/boot_complete') ? await reportAuth(mayu, 'v-1') : {};
      const res = await fetch(`${mayu.url}${c.path}`, { method: c.method, body: c.body, headers });
      assert.equal(res.status, c.status);
      assert.match(await res.text(), c.text);
      assert.equal(gitCommitCount(mayu.clusterDir), commits);
      assert.deepEqual(await confJsons(), files);
    });
  }

  it('an override the templates can hold is stored and rendered', async () => {
    const res = await fetch(`${mayu.url}/admin/host/v-1/override`, { method: 'PUT', body: '{"Overrides":{"install_disk":"/dev/vdb","note":"it\'s\\n$(reboot)"}}' });
    assert.equal(res.status, 202);
    assert.match(await (await fetch(`${mayu.url}/first-stage-script/v-1`)).text(), /^INSTALL_DISK='\/dev\/vdb'$/m);
  });
});
