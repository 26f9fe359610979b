import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, parseConfig } from '../src/config/load.ts';
import { FIXTURES, ROOT, tempDir } from './helpers/mayu-process.ts';

const base = {
  default_coreos_version: '1010.5.0',
  network: { bind_addr: '10.0.3.251', bootstrap_range: { start: '10.0.3.10', end: '10.0.3.30' }, ip_range: { start: '10.0.3.31', end: '10.0.3.70' } },
};

describe('config loading', () => {
  it('accepts the shipped sample and the 0.11-style test config', async () => {
    assert.equal((await loadConfig(path.join(ROOT, 'config.yaml'))).profiles[0]!.name, 'core');
    assert.equal((await loadConfig(path.join(FIXTURES, 'config.yaml'))).config.network.subnet_size, 22);
  });

  const bad: [string, unknown, RegExp][] = [
    ['missing version', { network: base.network }, /f\.yaml: default_coreos_version: /],
    ['bad ip', { ...base, network: { ...base.network, bind_addr: '10.0.3' } }, /f\.yaml: network\.bind_addr: expected an IPv4 address/],
    ['reversed range', { ...base, network: { ...base.network, ip_range: { start: '10.0.3.70', end: '10.0.3.31' } } }, /network\.ip_range: start must not be above end/],
    ['overlapping ranges', { ...base, network: { ...base.network, ip_range: { start: '10.0.3.20', end: '10.0.3.40' } } }, /network\.ip_range: overlaps network\.bootstrap_range/],
    ['negative quantity', { ...base, profiles: [{ name: 'core', quantity: -1 }] }, /profiles\.0\.quantity: /],
    ['duplicate profile', { ...base, profiles: [{ name: 'a' }, { name: 'a' }] }, /profiles\.1\.name: duplicate profile name "a"/],
    ['bad tag', { ...base, profiles: [{ name: 'a', tags: ['nokey'] }] }, /profiles\.0\.tags\.0: expected a "key=value" tag/],
    ['not a mapping', 'just text', /f\.yaml: \(top level\): expected a mapping/],
    ['a size without unit', { ...base, storage: { min_free_bytes: '64' } }, /f\.yaml: storage\.min_free_bytes: .*expected a size like 67108864, "64MiB" or "1GiB"/],
    ['a share over 50 %', { ...base, storage: { min_free_percent: 90 } }, /f\.yaml: storage\.min_free_percent: /],
    ['an unknown storage key', { ...base, storage: { min_free: 1 } }, /f\.yaml: storage: /],
    ['a negative rate limit', { ...base, limits: { new_hosts_per_source: { rate: -1 } } }, /f\.yaml: limits\.new_hosts_per_source\.rate: /],
    ['a burst of 0', { ...base, limits: { new_hosts: { rate: 1, burst: 0 } } }, /f\.yaml: limits\.new_hosts\.burst: /],
    ['known hosts bounded below new ones', { ...base, limits: { max_in_flight_new: 100, max_in_flight: 50 } }, /f\.yaml: limits\.max_in_flight: max_in_flight must not be below max_in_flight_new/],
    ['an unknown limits key', { ...base, limits: { per_ip: 1 } }, /f\.yaml: limits: /],
  ];
  for (const [name, raw, message] of bad) {
    it(`refuses ${name}, naming file and key`, () => assert.throws(() => parseConfig('f.yaml', raw), (e: unknown) => e instanceof ConfigError && message.test((e as Error).message)));
  }

  it('reads the free-space guard as bytes or with a unit; defaults 64 MiB and 1 %', () => {
    assert.deepEqual(parseConfig('f.yaml', base).config.storage, { min_free_bytes: 64 * 1024 * 1024, min_free_percent: 1 });
    assert.deepEqual(parseConfig('f.yaml', base).config.limits, {
      new_hosts_per_source: { rate: 2, burst: 20 }, new_hosts: { rate: 500, burst: 2000 }, exempt_sources: ['127.0.0.1', '::1', '::ffff:127.0.0.1'],
      max_in_flight_new: 128, max_write_queue_new: 200, max_lag_ms_new: 300, max_commit_ms_new: 500, max_busy_new: 0.8, accept_descriptors: 64, max_in_flight: 1024, retry_after_seconds: 5,
    });
    assert.deepEqual(parseConfig('f.yaml', { ...base, limits: { new_hosts: { rate: 0 } } }).config.limits.new_hosts, { rate: 0, burst: 2000 });
    const sizes: [unknown, number][] = [[1048576, 1048576], ['1MiB', 1048576], ['1.5 GiB', 1.5 * 1024 ** 3], ['500MB', 500e6], [0, 0]];
    for (const [raw, bytes] of sizes) {
      assert.equal(parseConfig('f.yaml', { ...base, storage: { min_free_bytes: raw, min_free_percent: 0 } }).config.storage.min_free_bytes, bytes, String(raw));
    }
  });

  it('warns about keys it does not know instead of refusing a later 0.x config', () => {
    const { warnings } = parseConfig('f.yaml', { ...base, yochu: {}, network: { ...base.network, ntp: ['x'] } });
    assert.deepEqual(warnings, ['f.yaml: yochu: unknown key, ignored', 'f.yaml: network.ntp: unknown key, ignored']);
  });

  it('orders profile files by `order`, then file name, after config.yaml profiles', async () => {
    const dir = await tempDir();
    const profiles = path.join(dir, 'profiles');
    await mkdir(profiles);
    await writeFile(path.join(profiles, 'a.yaml'), 'name: last\nquantity: 1\n');
    await writeFile(path.join(profiles, 'b.yaml'), 'name: second\norder: 20\n');
    await writeFile(path.join(profiles, 'c.yaml'), 'name: first\norder: 10\n');
    const loaded = await loadConfig(path.join(FIXTURES, 'config.yaml'), profiles);
    assert.deepEqual(loaded.profiles.map((p) => p.name), ['core', 'default', 'first', 'second', 'last']);
  });

  it('refuses a profile file redefining a config.yaml profile, or broken YAML', async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir, 'x.yaml'), 'name: core\n');
    await assert.rejects(loadConfig(path.join(FIXTURES, 'config.yaml'), dir), /profile "core" is already defined/);
    await writeFile(path.join(dir, 'x.yaml'), 'name: [unclosed\n');
    await assert.rejects(loadConfig(path.join(FIXTURES, 'config.yaml'), dir), /x\.yaml: invalid YAML/);
  });
});
