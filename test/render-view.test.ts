import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RenderError } from '../src/render/render-error.ts';
import { buildView } from '../src/render/view.ts';
import { sampleConfig, sampleHost, VIEW_OPTS } from './fixtures/render/sample.ts';

describe('buildView', () => {
  it('host overrides never leak into the config or into later hosts (mayu 0.11 bug)', () => {
    const config = sampleConfig({ templates_env: { colour: 'blue', nested: { a: 1 } } });
    const before = structuredClone(config.templates_env);
    const a = buildView(sampleHost({ Serial: 'a', Overrides: { colour: 'red', only_a: 'x', nested: { a: 2 } } }), config, VIEW_OPTS);
    assert.equal(a.env['colour'], 'red');
    assert.equal(a.env['only_a'], 'x');
    // a template-side mutation of one view must not reach the config either
    (a.env['nested'] as { a: number }).a = 99;
    const b = buildView(sampleHost({ Serial: 'b' }), config, VIEW_OPTS);
    assert.equal(b.env['colour'], 'blue');
    assert.equal('only_a' in b.env, false);
    assert.deepEqual(b.env['nested'], { a: 1 });
    assert.deepEqual(config.templates_env, before);
    assert.notEqual(a.env, b.env);
  });

  it('fills every key with a default when there is no host', () => {
    const v = buildView(undefined, sampleConfig({ network: { router: undefined, dns: [] }, templates_env: { ssh_authorized_keys: undefined } }), VIEW_OPTS);
    assert.equal(v.host.serial, '');
    assert.deepEqual(v.host.mac_addresses, []);
    assert.equal(v.host.fleet_disable_engine, false);
    assert.equal(v.host.coreos_version, '1010.5.0');
    assert.equal(v.network.router, '');
    assert.equal(v.network.has_dns, false);
    assert.deepEqual(v.ssh_keys, []);
    assert.equal(v.install_disk, 'auto');
    assert.equal(v.use_ignition, false);
  });

  it('maps host fields, config defaults and options', () => {
    const v = buildView(sampleHost({ CoreOSVersion: '835.13.0', Cabinet: 3 }), sampleConfig({ network: { subnet_size: 24 } }), { ...VIEW_OPTS, mayuUrl: 'http://h:4080/' });
    assert.equal(v.mayu_url, 'http://h:4080');
    assert.equal(v.etcd_discovery_url, 'http://h:4080/etcd');
    assert.equal(v.host.coreos_version, '835.13.0');
    assert.equal(v.host.cabinet, 3);
    assert.equal(v.host.fleet_metadata_csv, 'role-core=true,stack-compute=true');
    assert.equal(v.network.netmask, '255.255.255.0');
    assert.deepEqual(v.ssh_keys, [{ key: 'ssh-ed25519 AAAAC3Nza core@example', first: true }]);
  });

  it('install_disk: option, then env, then host override', () => {
    const config = sampleConfig({ templates_env: { install_disk: '/dev/vda' } });
    assert.equal(buildView(sampleHost(), sampleConfig(), { ...VIEW_OPTS, installDisk: '/dev/sdb' }).install_disk, '/dev/sdb');
    assert.equal(buildView(sampleHost(), config, { ...VIEW_OPTS, installDisk: '/dev/sdb' }).install_disk, '/dev/vda');
    assert.equal(buildView(sampleHost({ Overrides: { install_disk: '/dev/nvme0n1' } }), config, VIEW_OPTS).install_disk, '/dev/nvme0n1');
    assert.throws(() => buildView(sampleHost({ Overrides: { install_disk: 'sda' } }), config, VIEW_OPTS), RenderError);
    for (const ok of ['auto', '/dev/disk/by-path/pci-0000:00:1f.2-ata-1', 'serial:S3Z9NB0K123456', 'wwn:0x5000c500a1b2c3d4']) {
      assert.equal(buildView(sampleHost({ Overrides: { install_disk: ok } }), config, VIEW_OPTS).install_disk, ok);
    }
    for (const bad of ['serial:', 'serial:a b', 'wwn:x;y', 'Auto']) {
      assert.throws(() => buildView(sampleHost({ Overrides: { install_disk: bad } }), config, VIEW_OPTS), RenderError, bad);
    }
  });

  it('config placement: default places by kind (Debian NoCloud seed, Flatcar OEM), then templates_env, then host overrides (strings from mayuctl)', () => {
    const place = (v: ReturnType<typeof buildView>) => [v.config_store, v.config_partition, v.config_path];
    assert.deepEqual(place(buildView(sampleHost(), sampleConfig(), VIEW_OPTS)), ['nocloud', 2, '/var/lib/cloud/seed/nocloud']);
    assert.deepEqual(place(buildView(sampleHost(), sampleConfig(), { ...VIEW_OPTS, useIgnition: true })), ['file', 6, '/config.ign']);
    const config = sampleConfig({ templates_env: { config_store: 'tar', config_partition: 2 } });
    assert.deepEqual(place(buildView(sampleHost(), config, VIEW_OPTS)), ['tar', 2, '/var/lib/cloud/seed/nocloud']);
    const overridden = sampleHost({ Overrides: { config_store: 'file', config_partition: '3', config_path: '/etc/config.yaml' } });
    assert.deepEqual(place(buildView(overridden, config, VIEW_OPTS)), ['file', 3, '/etc/config.yaml']);
    const bads: Record<string, string>[] = [{ config_store: 'ext4' }, { config_partition: '0' }, { config_partition: '2; reboot' }, { config_path: 'relative' }, { config_path: '/dir/' }];
    for (const bad of bads) {
      assert.throws(() => buildView(sampleHost({ Overrides: bad }), config, VIEW_OPTS), RenderError, JSON.stringify(bad));
    }
    // NoCloud is cloud-init's: an Ignition install with it is refused, not written where nothing reads it.
    assert.throws(() => buildView(sampleHost({ Overrides: { config_store: 'nocloud' } }), sampleConfig(), { ...VIEW_OPTS, useIgnition: true }), /nocloud is for cloud-config/);
  });

  it('bond members: host bond interfaces, then config ones, then the host MACs, then en*', () => {
    const bond = { network_model: 'bond', bond_interfaces: ['eno1', 'eno2'] };
    const byConfig = buildView(sampleHost(), sampleConfig({ network: bond }), VIEW_OPTS).network;
    assert.deepEqual([byConfig.bond_slave_names, byConfig.bond_slave_macs], [['eno1', 'eno2'], []]);
    const byHost = buildView(sampleHost({ BondInterfaces: ['ens1f0'] }), sampleConfig({ network: bond }), VIEW_OPTS).network;
    assert.deepEqual(byHost.bond_slave_names, ['ens1f0']);
    const byMac = buildView(sampleHost(), sampleConfig({ network: { network_model: 'bond' } }), VIEW_OPTS).network;
    assert.deepEqual([byMac.bond_slave_names, byMac.bond_slave_macs], [[], ['00:16:3e:a0:b7:df', '00:16:3e:a0:b7:e0']]);
    const fallback = buildView(sampleHost({ MacAddresses: [] }), sampleConfig({ network: { network_model: 'bond' } }), VIEW_OPTS).network;
    assert.deepEqual([fallback.bond_slave_names, fallback.bond_slave_macs], [['en*'], []]);
  });

  it('ssh_authorized_keys: a single string is a list of one; other types are an error', () => {
    assert.deepEqual(buildView(sampleHost({ Overrides: { ssh_authorized_keys: 'k1' } }), sampleConfig(), VIEW_OPTS).ssh_keys, [{ key: 'k1', first: true }]);
    assert.throws(() => buildView(sampleHost({ Overrides: { ssh_authorized_keys: [1] } }), sampleConfig(), VIEW_OPTS), RenderError);
  });

  it('report_token per host, mayu_tls_url and mayu_ca_pem; empty without a host or TLS', () => {
    const opts = { ...VIEW_OPTS, reportTokenOf: (h: { Serial?: string }) => `token-of-${h.Serial}`, tlsUrl: 'https://h:4443/', caPem: '-----BEGIN CERTIFICATE-----\n' };
    const v = buildView(sampleHost({ Serial: 'a' }), sampleConfig(), opts);
    assert.deepEqual([v.report_token, v.mayu_tls_url, v.mayu_ca_pem], ['token-of-a', 'https://h:4443', '-----BEGIN CERTIFICATE-----\n']);
    assert.equal(buildView(undefined, sampleConfig(), opts).report_token, '');
    const plain = buildView(sampleHost(), sampleConfig(), { mayuUrl: 'http://h:4080', mayuVersion: '0.12.0' });
    assert.deepEqual([plain.report_token, plain.mayu_tls_url, plain.mayu_ca_pem], ['', '', '']);
  });
});
