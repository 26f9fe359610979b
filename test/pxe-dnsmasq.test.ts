import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { dhcpRequest, writeUdhcpcScript } from './helpers/dhcp-client.ts';
import { hostData, mayuFailsToStart, ROOT, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';
import { createNetnsLab, netnsUnavailable, type NetnsLab } from './helpers/netns.ts';

// The real `mayu serve` runs Debian's dnsmasq on bridge br0 of a private network namespace; busybox
// udhcpc in a second namespace (veth onto br0) is the machine. Nothing links to the host network.

const BOOTSTRAP = { start: 10, end: 30 };

function labConfig(lab: NetnsLab, network: { interface?: string; ignore_installed_macs?: boolean } = {}): string {
  return [
    'default_coreos_version: 1010.5.0',
    'network:',
    '  pxe: true',
    `  interface: ${network.interface ?? lab.bridge}`,
    `  bind_addr: ${lab.bridgeAddr}`,
    `  bootstrap_range: {start: ${lab.subnet}.${BOOTSTRAP.start}, end: ${lab.subnet}.${BOOTSTRAP.end}}`,
    `  ip_range: {start: ${lab.subnet}.100, end: ${lab.subnet}.200}`,
    '  subnet_size: 24',
    `  ignore_installed_macs: ${network.ignore_installed_macs ?? false}`,
    '',
  ].join('\n');
}

/** A work dir dnsmasq (user nobody) can read, with the iPXE boot files in tftproot/. */
async function labWorkDir(made: string[]): Promise<string> {
  const dir = await tempDir('mayu-dn-');
  made.push(dir);
  await chmod(dir, 0o755);
  execFileSync('bash', [path.join(ROOT, 'scripts/build-tftproot.sh'), path.join(dir, 'tftproot')], { stdio: 'ignore' });
  return dir;
}

/** HTTP from inside the namespace, where mayu listens (the test process cannot reach it). */
async function httpInLab(lab: NetnsLab, url: string, init: { method: string; body?: string }): Promise<number> {
  const code = `const r = await fetch(${JSON.stringify(url)}, ${JSON.stringify(init)}); await r.text(); console.log(r.status);`;
  const r = await lab.exec(process.execPath, ['--input-type=module', '-e', code]);
  assert.equal(r.code, 0, r.stderr);
  return Number(r.stdout.trim());
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const isDnsmasqLine = (e: Record<string, unknown>) => e.component === 'dnsmasq';

function inBootstrapRange(lab: NetnsLab, ip: string | undefined): boolean {
  const m = ip?.startsWith(`${lab.subnet}.`) ? Number(ip.slice(lab.subnet.length + 1)) : NaN;
  return m >= BOOTSTRAP.start && m <= BOOTSTRAP.end;
}

async function until(check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('mayu runs dnsmasq on a private bridge (real dnsmasq, network namespaces)', { skip: netnsUnavailable() }, () => {
  let lab: NetnsLab;
  let script: string;
  const running: MayuProcess[] = [];
  const dirs: string[] = [];

  before(async () => {
    lab = await createNetnsLab({ clients: 1 });
    script = await writeUdhcpcScript();
    dirs.push(path.dirname(script));
  });
  after(async () => {
    // Stop mayu (it stops dnsmasq) even when a test failed, then kill whatever is left and delete the namespaces.
    await Promise.all(running.map((m) => m.kill9()));
    await lab?.cleanup();
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  async function startLabMayu(workDir: string, config: string): Promise<MayuProcess> {
    const mayu = await startMayu({ workDir, config, dnsmasq: 'dnsmasq', wrap: lab.wrap(), bindAddress: lab.bridgeAddr });
    running.push(mayu);
    return mayu;
  }

  let workDir: string;

  it('leases from bootstrap_range with BIOS/UEFI/iPXE boot files, survives kill -9, applies installed hosts by SIGHUP, stops dnsmasq', async (t: TestContext) => {
    workDir = await labWorkDir(dirs);
    const config = await writeConfig(workDir, labConfig(lab, { ignore_installed_macs: true }));
    const client = lab.clients[0]!;
    const t0 = Date.now();
    const mayu = await startLabMayu(workDir, config);
    t.diagnostic(`mayu serve with dnsmasq ready in ${Date.now() - t0} ms`);
    const hostsfile = path.join(mayu.runDir, 'dnsmasq.hosts');
    const leases = path.join(mayu.runDir, 'dnsmasq.leases');
    const started = await mayu.waitForLog((e) => isDnsmasqLine(e) && e.msg === 'dnsmasq started');
    const firstPid = started.pid as number;
    assert.ok(alive(firstPid));
    assert.ok(!mayu.logs.some((e) => String(e.msg).includes('tftproot lacks')), 'boot files are in place');

    // A PXE ROM (BIOS), a UEFI one (client-arch 7) and iPXE (option 175) each get their boot file.
    const bios = await dhcpRequest(lab, client, script, { vendorClass: 'PXEClient' });
    t.diagnostic(`DHCP lease (udhcpc DISCOVER→ACK) in ${bios.ms.toFixed(0)} ms`);
    assert.equal(bios.code, 0, bios.output);
    assert.ok(inBootstrapRange(lab, bios.lease?.ip), `lease ${bios.lease?.ip} in bootstrap_range`);
    assert.equal(bios.lease?.boot_file, 'undionly.kpxe');
    assert.equal(bios.lease?.siaddr, lab.bridgeAddr);
    const leaseLine = (await readFile(leases, 'utf8')).split('\n').find((l) => l.includes(` ${client.mac} `));
    assert.ok(leaseLine?.includes(` ${bios.lease!.ip} `), `lease file has ${client.mac} ${bios.lease!.ip}`);

    const uefi = await dhcpRequest(lab, client, script, { vendorClass: 'PXEClient:Arch:00007', options: ['0x5d:0007'] });
    assert.equal(uefi.lease?.boot_file, 'snponly.efi', uefi.output);
    const ipxe = await dhcpRequest(lab, client, script, { options: ['0xaf:130101'] });
    assert.match(ipxe.lease?.boot_file ?? '', new RegExp(`^http://${lab.bridgeAddr.replace(/\./g, '\\.')}:${mayu.port}/ipxebootscript`));

    // The BIOS boot file really comes over TFTP (dnsmasq serves it as user nobody).
    await lab.exec('ip', ['addr', 'add', `${bios.lease!.ip}/24`, 'dev', client.ifname], { ns: client.ns });
    const fetched = path.join(workDir, 'fetched.kpxe');
    const tftp = await lab.exec('busybox', ['tftp', '-g', '-r', 'undionly.kpxe', '-l', fetched, lab.bridgeAddr], { ns: client.ns });
    assert.equal(tftp.code, 0, tftp.stderr);
    assert.equal((await stat(fetched)).size, (await stat(path.join(workDir, 'tftproot/undionly.kpxe'))).size);

    // kill -9: mayu restarts dnsmasq (new PID, logged with the signal, count 1) and it serves again.
    const killedAt = Date.now();
    process.kill(firstPid, 'SIGKILL');
    const restarted = await mayu.waitForLog((e) => isDnsmasqLine(e) && e.msg === 'dnsmasq restarted');
    t.diagnostic(`kill -9 → dnsmasq serving again in ${(restarted.time as number) - killedAt} ms`);
    const secondPid = restarted.pid as number;
    assert.notEqual(secondPid, firstPid);
    assert.equal(restarted.restarts, 1);
    assert.ok(mayu.logs.some((e) => isDnsmasqLine(e) && e.signal === 'SIGKILL' && e.restarts === 1 && e.level === 40));
    const again = await dhcpRequest(lab, client, script, { vendorClass: 'PXEClient' });
    assert.equal(again.code, 0, again.output);

    // The client's MAC becomes an installed host: hostsfile line, SIGHUP (same PID), no lease.
    assert.equal(await httpInLab(lab, `${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData('lab-1', client.mac)) }), 200);
    await until(async () => (await readFile(hostsfile, 'utf8')).split('\n').includes(client.mac));
    const seen = mayu.logs.length;
    // set_state, not set_installed: it needs no report token once mayu checks them (admin API open here).
    assert.equal(await httpInLab(lab, `${mayu.url}/admin/host/lab-1/set_state`, { method: 'PUT', body: '{"State":"installed"}' }), 202);
    await until(async () => (await readFile(hostsfile, 'utf8')).split('\n').includes(`${client.mac},set:installed`));
    const reread = await mayu.waitForLog((e) => isDnsmasqLine(e) && mayu.logs.indexOf(e) >= seen && e.msg === `dnsmasq-dhcp[${secondPid}]: read ${hostsfile}`);
    const installed = await mayu.waitForLog((e) => e.msg === 'host changed' && e.to === 'installed');
    t.diagnostic(`state installed committed → dnsmasq reread the hostsfile ${(reread.time as number) - (installed.time as number)} ms later`);
    const ignored = await dhcpRequest(lab, client, script, { vendorClass: 'PXEClient', tries: 1 });
    assert.equal(ignored.code, 1, ignored.output);
    assert.equal(ignored.lease, undefined);
    await mayu.waitForLog((e) => e.msg === `dnsmasq-dhcp[${secondPid}]: DHCPDISCOVER(br0) ${client.mac} ignored`);
    assert.ok(alive(secondPid), 'SIGHUP, not a restart');
    assert.equal(mayu.logs.filter((e) => e.msg === 'dnsmasq restarted').length, 1);

    // Stopping mayu stops dnsmasq.
    await mayu.stop();
    assert.equal(mayu.proc.exitCode, 0);
    assert.equal(alive(secondPid), false, 'dnsmasq is gone');
    assert.deepEqual(await pidsOf(lab), []);
  });

  it('by default an installed host still gets DHCP; a dnsmasq orphaned by kill -9 of mayu is stopped at the next start', async () => {
    assert.ok(workDir, 'runs after the first test: same cluster, the host is installed');
    const config = await writeConfig(workDir, labConfig(lab), 'default.yaml');
    const first = await startLabMayu(workDir, config);
    const client = lab.clients[0]!;
    assert.match(await readFile(path.join(first.runDir, 'dnsmasq.hosts'), 'utf8'), new RegExp(`^${client.mac},set:installed$`, 'm'));
    assert.doesNotMatch(await readFile(path.join(first.runDir, 'dnsmasq.conf'), 'utf8'), /dhcp-ignore/);
    const r = await dhcpRequest(lab, client, script, { vendorClass: 'PXEClient' });
    assert.equal(r.code, 0, r.output);
    assert.ok(inBootstrapRange(lab, r.lease?.ip));

    const orphan = (await first.waitForLog((e) => e.msg === 'dnsmasq started')).pid as number;
    await first.kill9();
    assert.ok(alive(orphan), 'SIGKILL gives mayu no chance to stop its dnsmasq');
    const second = await startLabMayu(workDir, config);
    const stale = await second.waitForLog((e) => String(e.msg).startsWith('dnsmasq of an earlier mayu still runs'));
    assert.equal(stale.pid, orphan);
    assert.equal(alive(orphan), false);
    const now = (await second.waitForLog((e) => e.msg === 'dnsmasq started')).pid as number;
    assert.deepEqual(await pidsOf(lab), [second.proc.pid, now].sort((a, b) => a! - b!));
    await second.stop();
    assert.deepEqual(await pidsOf(lab), []);
  });

  it('a bad interface name stops mayu at start with dnsmasq\'s own error', async () => {
    const dir = await labWorkDir(dirs);
    const config = await writeConfig(dir, labConfig(lab, { interface: 'mayu-nope0' }));
    const r = await mayuFailsToStart(
      ['--config', config, '--dnsmasq', 'dnsmasq', '--run-dir', path.join(dir, 'run'), '--tftproot', path.join(dir, 'tftproot'), '--cluster-directory', path.join(dir, 'clusters'), '--profiles-dir', path.join(dir, 'profiles')],
      {},
      { wrap: lab.wrap() },
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /dnsmasq \(dnsmasq\) exited at start \(exit code 2\):\n.*unknown interface mayu-nope0/);
    assert.deepEqual(await pidsOf(lab), []);
  });
});

async function writeConfig(dir: string, text: string, name = 'config.yaml'): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

/** PIDs still in the lab's main namespace (mayu and dnsmasq run there). */
async function pidsOf(lab: NetnsLab): Promise<number[]> {
  const out = execFileSync('ip', ['netns', 'pids', lab.ns], { encoding: 'utf8' });
  return out.split(/\s+/).filter(Boolean).map(Number).sort((a, b) => a - b);
}
