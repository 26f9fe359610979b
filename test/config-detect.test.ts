import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { defaultGateway, DetectError, detectNetwork, nameserversFrom, planRanges, type InterfaceTable } from '../src/config/detect.ts';
import { loadConfig } from '../src/config/load.ts';
import { ipv4ToInt } from '../src/core/addresses.ts';
import { ROOT, tempDir } from './helpers/mayu-process.ts';
import { netnsUnavailable } from './helpers/netns.ts';

const run = promisify(execFile);

const fakeInterfaces: InterfaceTable = {
  lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', internal: true }],
  eno1: [
    { address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', internal: false },
    { address: '10.0.3.200', netmask: '255.255.252.0', family: 'IPv4', internal: false },
  ],
  wlan0: [{ address: 'fe80::2', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', internal: false }],
};

const inRange = (ip: string, r: { start: string; end: string }) => ipv4ToInt(ip) >= ipv4ToInt(r.start) && ipv4ToInt(ip) <= ipv4ToInt(r.end);

describe('config detect: range planning (pure)', () => {
  it('puts both ranges inside the subnet, apart, and away from the machine, router and DNS', () => {
    const n = detectNetwork(fakeInterfaces, 'eno1', { gateway: '10.0.0.1', nameservers: ['127.0.0.53', '10.0.3.251'] });
    assert.equal(n.bindAddr, '10.0.3.200');
    assert.equal(n.subnetSize, 22);
    assert.equal(n.router, '10.0.0.1');
    assert.deepEqual(n.dns, ['10.0.3.251'], 'loopback resolvers are useless to machines');
    // 10.0.0.0/22: the longest free run is 10.0.0.2 .. 10.0.3.199 (router .0.1, machine .3.200, DNS .3.251).
    assert.deepEqual(n.bootstrapRange, { start: '10.0.0.2', end: '10.0.0.101' });
    assert.deepEqual(n.ipRange, { start: '10.0.0.102', end: '10.0.3.199' });
    for (const own of ['10.0.3.200', '10.0.0.1', '10.0.3.251']) {
      assert.ok(!inRange(own, n.bootstrapRange) && !inRange(own, n.ipRange), `${own} is in no range`);
    }
  });

  it('chooses the larger side of the machine\'s address in a small subnet, and caps a huge one', () => {
    assert.deepEqual(planRanges('192.168.1.5', 24, ['192.168.1.5', '192.168.1.1']), {
      bootstrap: { start: '192.168.1.6', end: '192.168.1.67' },
      ip: { start: '192.168.1.68', end: '192.168.1.254' },
    });
    const big = planRanges('10.1.2.3', 8, ['10.1.2.3']);
    assert.equal(ipv4ToInt(big.ip.end) - ipv4ToInt(big.bootstrap.start) + 1, 1024);
    assert.deepEqual(planRanges('192.168.9.1', 29, ['192.168.9.1']), {
      bootstrap: { start: '192.168.9.2', end: '192.168.9.2' },
      ip: { start: '192.168.9.3', end: '192.168.9.6' },
    });
    assert.throws(() => planRanges('192.168.9.1', 30, ['192.168.9.1']), DetectError);
    assert.throws(() => planRanges('192.168.9.1', 31, ['192.168.9.1']), /no room for bootstrap_range and ip_range/);
  });

  it('without --interface takes the first non-loopback IPv4 interface; unknown or IPv6-only ones list what exists', () => {
    assert.equal(detectNetwork(fakeInterfaces, undefined).interface, 'eno1');
    assert.throws(() => detectNetwork(fakeInterfaces, 'eth9'), {
      message: 'unknown interface "eth9"; interfaces: lo (127.0.0.1), eno1 (10.0.3.200), wlan0 (no IPv4)',
    });
    assert.throws(() => detectNetwork(fakeInterfaces, 'wlan0'), /interface wlan0 has no IPv4 address/);
    const n = detectNetwork(fakeInterfaces, 'eno1');
    assert.equal(n.router, undefined);
    assert.deepEqual(n.dns, []);
  });

  it('reads the default gateway of an interface from /proc/net/route and nameservers from resolv.conf', () => {
    const route = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n'
      + 'eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n'
      + 'eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n';
    assert.equal(defaultGateway(route, 'eth0'), '192.0.2.1');
    assert.equal(defaultGateway(route, 'eth1'), undefined);
    assert.deepEqual(nameserversFrom('# x\nnameserver 10.0.0.53\nnameserver ::1\n search lan\n nameserver 1.1.1.1\n'), ['10.0.0.53', '1.1.1.1']);
  });
});

describe('mayu config detect (real invocation)', () => {
  const mayu = (args: string[], wrap: string[] = []) => {
    const [command, ...prefix] = [...wrap, process.execPath];
    return run(command!, [...prefix, '--import', 'tsx', path.join(ROOT, 'src/cli/mayu.ts'), 'config', 'detect', ...args], { cwd: ROOT })
      .then(({ stdout, stderr }) => ({ code: 0, stdout, stderr }), (e: { code: number; stdout: string; stderr: string }) => e);
  };

  it('on lo prints a config.yaml that mayu serve loads', async () => {
    const { code, stdout } = await mayu(['--interface', 'lo']);
    assert.equal(code, 0);
    const file = path.join(await tempDir('mayu-ops-detect-'), 'config.yaml');
    await writeFile(file, stdout);
    const { config, warnings } = await loadConfig(file);
    assert.deepEqual(warnings, []);
    assert.equal(config.network.interface, 'lo');
    assert.equal(config.network.bind_addr, '127.0.0.1');
    assert.equal(config.network.pxe, true);
    assert.ok(inRange(config.network.bootstrap_range!.start, { start: '127.0.0.2', end: '127.255.255.254' }));
  });

  it('exits 1 naming the interfaces that exist for an unknown one', async () => {
    const { code, stdout, stderr } = await mayu(['--interface', 'mayu-ops-none']);
    assert.equal(code, 1);
    assert.equal(stdout, '');
    assert.match(stderr, /^mayu config detect: unknown interface "mayu-ops-none"; interfaces: .*lo \(127\.0\.0\.1\)/);
  });

  it('on a veth interface in a network namespace: its address, subnet and default gateway', { skip: netnsUnavailable() }, async () => {
    const ns = `mayu-ops-detect-${process.pid}`;
    const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
    ip('netns', 'add', ns);
    try {
      const inNs = (...args: string[]) => ip('netns', 'exec', ns, 'ip', ...args);
      // veth rather than dummy: the dummy module is not on every kernel (this CI's has none).
      inNs('link', 'add', 'mayu-ops-d0', 'type', 'veth', 'peer', 'name', 'mayu-ops-d1');
      inNs('addr', 'add', '172.30.8.10/23', 'dev', 'mayu-ops-d0');
      inNs('link', 'set', 'mayu-ops-d1', 'up');
      inNs('link', 'set', 'mayu-ops-d0', 'up');
      inNs('route', 'add', 'default', 'via', '172.30.8.1', 'dev', 'mayu-ops-d0');
      const { code, stdout, stderr } = await mayu([], ['ip', 'netns', 'exec', ns]);
      assert.equal(code, 0, stderr);
      const file = path.join(await tempDir('mayu-ops-detect-'), 'config.yaml');
      await writeFile(file, stdout);
      const { config } = await loadConfig(file);
      assert.equal(config.network.interface, 'mayu-ops-d0', 'the only non-loopback interface');
      assert.equal(config.network.bind_addr, '172.30.8.10');
      assert.equal(config.network.subnet_size, 23);
      assert.equal(config.network.router, '172.30.8.1');
      assert.deepEqual(config.network.bootstrap_range, { start: '172.30.8.11', end: '172.30.8.110' });
      assert.deepEqual(config.network.ip_range, { start: '172.30.8.111', end: '172.30.9.254' });
    } finally {
      ip('netns', 'delete', ns);
    }
  });
});
