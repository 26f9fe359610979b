import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { loadConfig } from '../src/config/load.ts';
import { decodeHost, type Host } from '../src/core/host.ts';
import { reportToken } from '../src/core/tokens.ts';
import { createOutputs } from '../src/render/outputs.ts';
import { loadTemplates } from '../src/render/renderer.ts';
import { git, gitSubjects } from './helpers/git.ts';
import { ROOT } from './helpers/mayu-process.ts';
import { ensureNetbootImages } from './helpers/netboot-images.ts';
import { inBootstrapRange, NETNS_CONFIG, startNetbootNetns, type Machine, type NetbootNetns, type VmRun } from './helpers/netboot-netns.ts';
import { netnsUnavailable } from './helpers/netns.ts';
import { FIRST_INSTALL_SUBJECTS, REINSTALL_SUBJECTS } from './helpers/netboot-history.ts';

// End to end, the way a rack boots, inside a private network namespace (nothing leaves it): the
// real mayu runs its real dnsmasq on bridge br0; four QEMU VMs (TCG) on tap devices power on at
// once. Each: PXE (QEMU's iPXE ROM) → DHCP from dnsmasq → iPXE chain script → boot script →
// installer → final config → test OS image on disk → installed → reboot → iPXE exit → disk →
// test OS → boot_complete → running. Then one of them is set to `configured` with mayuctl and
// reinstalls on its next boot. Every QEMU run is bounded: -no-reboot ends the install run at the
// installer's reboot, the test OS powers off at the end of the disk run.

const VERSION = '1010.5.0'; // default_coreos_version of the config
const MACHINES = 4;
const RUN_TIMEOUT_MS = 6 * 60_000; // per QEMU run; TCG on a shared 2-core machine: generous

const FIRST_INSTALL = FIRST_INSTALL_SUBJECTS;
const REINSTALL = REINSTALL_SUBJECTS;

const consoleValue = (run: VmRun, pattern: RegExp) => pattern.exec(run.vm.console())?.[1];

interface Boot {
  install: VmRun;
  disk: VmRun;
}

describe('netboot end to end: 4 VMs at once through mayu\'s dnsmasq in a network namespace', { skip: netnsUnavailable(), timeout: 30 * 60_000 }, () => {
  let env: NetbootNetns | undefined;
  const boots = new Map<string, Boot[]>(); // serial → its boots, in order

  before(async () => {
    await ensureNetbootImages(VERSION);
    env = await startNetbootNetns({ machines: MACHINES });
  }, { timeout: 15 * 60_000 });

  after(async () => {
    // Also after a failure: VMs by PID, mayu (stops dnsmasq), whatever is left in the namespace, the namespace.
    await env?.cleanup();
  });

  /** Install run, then disk run; each must end with QEMU exit code 0. */
  async function toRunning(m: Machine, label: string): Promise<Boot> {
    const e = env!;
    const install = await e.runVm(m, `${label}-install`, RUN_TIMEOUT_MS);
    assert.match(install.vm.console(), /mayu-installer: installed \(mayu answered 202\); rebooting/, `${install.vm.name}: ${install.vm.console().slice(-2000)}`);
    const disk = await e.runVm(m, `${label}-disk`, RUN_TIMEOUT_MS);
    const boot = { install, disk };
    boots.set(m.serial, [...(boots.get(m.serial) ?? []), boot]);
    return boot;
  }

  /** What each of this machine's chained boot-script requests was answered with, in order. */
  function bootAnswers(m: Machine): unknown[] {
    return env!.mayu.logs
      .filter((l) => l.msg === 'request' && typeof l.url === 'string' && l.url.startsWith(`/ipxebootscript?serial=${m.smbiosSerial}&`))
      .map((l) => l.boot);
  }

  /**
   * The host's commit subjects once there are `count` of them (or after 5 s): machines that
   * report at the same moment are answered from mayu's journal, and git follows ~0.1 s later.
   */
  async function subjects(m: Machine, count: number): Promise<string[]> {
    const prefix = `${m.serial}: `;
    const read = () => gitSubjects(env!.mayu.clusterDir).filter((s) => s.startsWith(prefix)).map((s) => s.slice(prefix.length));
    for (const until = Date.now() + 5000; read().length < count && Date.now() < until;) await new Promise((r) => setTimeout(r, 50));
    return read();
  }

  function hostAt(commit: string, m: Machine): Host {
    return decodeHost(JSON.parse(git(env!.mayu.clusterDir, 'show', `${commit}:${m.serial}/conf.json`)));
  }

  /** The cloud-config mayu rendered for the host as it was at its `nth` "installing" commit, rendered again here. */
  async function renderedAtInstall(m: Machine, nth: number): Promise<string> {
    const e = env!;
    const commits = git(e.mayu.clusterDir, 'log', '--reverse', '--format=%H', `--grep=^${m.serial}: updated host state to installing$`).split('\n').filter(Boolean);
    assert.ok(commits[nth], `${m.serial}: no installing commit #${nth + 1}`);
    const loaded = await loadConfig(NETNS_CONFIG);
    const reportKey = Buffer.from((await readFile(path.join(e.mayu.workDir, 'report-key'), 'utf8')).trim(), 'hex');
    const outputs = createOutputs({
      renderer: await loadTemplates({ templatesDir: path.join(ROOT, 'templates'), snippetsDir: path.join(ROOT, 'template_snippets') }),
      config: loaded.config,
      mayuUrl: `http://${e.lab.bridgeAddr}:${e.mayu.port}`,
      version: (JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version,
      useIgnition: false,
      // The host's report token, derived as mayu does from the key in its work dir.
      reportTokenOf: (h) => reportToken(reportKey, h.Serial ?? '', h.MachineID ?? ''),
    });
    return outputs.cloudConfig(hostAt(commits[nth]!, m));
  }

  /** The installer received, and the OS read from disk, exactly what mayu rendered. */
  async function assertConfig(m: Machine, boot: Boot, nth: number): Promise<void> {
    const rendered = await renderedAtInstall(m, nth);
    const sha = createHash('sha256').update(rendered).digest('hex');
    assert.equal(consoleValue(boot.install, /mayu-installer: received cloud-config: \d+ bytes, sha256 ([0-9a-f]{64})/), sha, `${m.serial}: the installer got another config`);
    assert.equal(consoleValue(boot.disk, /mayu-test-os: config kind=cloud-config bytes=\d+ sha256=([0-9a-f]{64})/), sha, `${m.serial}: the OS read another config`);
    assert.equal(consoleValue(boot.disk, /mayu-test-os: config kind=cloud-config bytes=(\d+)/), String(Buffer.byteLength(rendered)));
  }

  function assertRuns(m: Machine, boot: Boot): void {
    const install = boot.install.vm.console();
    const disk = boot.disk.vm.console();
    assert.doesNotMatch(install, /mayu-installer: ERROR/, `${m.serial}: ${install.slice(-2000)}`);
    assert.doesNotMatch(disk, /mayu-test-os: ERROR/, `${m.serial}: ${disk.slice(-2000)}`);
    assert.match(disk, new RegExp(`mayu: ${m.serial} is installed, booting from the local disk`));
    assert.match(disk, /Booting from SAN device 0x80/, 'iPXE boots the BIOS disk itself (sanboot)');
    assert.match(disk, /mayu-test-os: boot_complete reported \(HTTP 202\); powering off/);
    assert.doesNotMatch(disk, /mayu-installer:/, `${m.serial}: the disk boot must not start the installer`);
  }

  async function states(): Promise<Record<string, string>> {
    const r = await env!.mayuctl(['list', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const hosts = JSON.parse(r.stdout) as { Serial: string; State: string }[];
    return Object.fromEntries(hosts.map((h) => [h.Serial, h.State]));
  }

  it('each VM: PXE → DHCP from dnsmasq → installer → installed → reboot → disk → running', async (t: TestContext) => {
    const e = env!;
    const t0 = Date.now();
    const settled = await Promise.allSettled(e.machines.map((m) => toRunning(m, 'first')));
    const failed = settled.flatMap((s, i) => (s.status === 'rejected' ? [`${e.machines[i]!.serial}: ${(s.reason as Error).message}`] : []));
    assert.deepEqual(failed, [], failed.join('\n\n'));
    for (const m of e.machines) {
      const b = boots.get(m.serial)![0]!;
      t.diagnostic(`${m.serial}: install run ${b.install.exit.seconds.toFixed(1)} s, disk run ${b.disk.exit.seconds.toFixed(1)} s`);
    }
    t.diagnostic(`${MACHINES} VMs power-on → all QEMU runs done: ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const leases = await e.leases();
    t.diagnostic(`dnsmasq.leases: ${leases.map((l) => `${l.mac} ${l.ip}`).join(', ')}`);
    const hostsfile = (await readFile(path.join(e.mayu.runDir, 'dnsmasq.hosts'), 'utf8')).split('\n');
    const addrs = new Set<string>();
    for (const m of e.machines) {
      const boot = boots.get(m.serial)![0]!;
      assertRuns(m, boot);
      assert.deepEqual(bootAnswers(m), ['installer', 'local-disk'], `${m.serial}: boot script answers`);
      assert.deepEqual(await subjects(m, FIRST_INSTALL.length), FIRST_INSTALL, `${m.serial}: git history`);
      const host = hostAt('HEAD', m);
      assert.equal(host.State, 'running');
      assert.deepEqual(host.MacAddresses, [m.mac]);
      assert.equal(host.ConnectedNIC, 'eth0');
      assert.equal(host.CoreOSVersion, VERSION, 'boot_complete carried the test OS version');
      await assertConfig(m, boot, 0);

      // DHCP came from mayu's dnsmasq: its lease file has this MAC in bootstrap_range, the
      // installer got that address, and mayu saw the machine's requests come from it.
      const lease = leases.find((l) => l.mac === m.mac);
      assert.ok(lease, `${m.serial}: no lease for ${m.mac} in dnsmasq.leases: ${JSON.stringify(leases)}`);
      assert.ok(inBootstrapRange(e.lab, lease.ip), `${m.serial}: lease ${lease.ip} outside bootstrap_range`);
      assert.equal(consoleValue(boot.install, /mayu-installer: network up on eth0: ([\d.]+)\/24/), lease.ip);
      const remotes = new Set(e.mayu.logs.filter((l) => l.msg === 'request' && String(l.url).toLowerCase().includes(m.serial)).map((l) => String(l.remote).replace(/^::ffff:/, '')));
      assert.deepEqual([...remotes], [lease.ip], `${m.serial}: requests came from ${[...remotes].join(', ')}`);
      addrs.add(lease.ip);
      assert.ok(hostsfile.includes(`${m.mac},set:installed`), `${m.serial}: dnsmasq.hosts tags ${m.mac} installed`);
    }
    assert.equal(addrs.size, MACHINES, 'one address per VM');
    assert.deepEqual(await states(), Object.fromEntries(e.machines.map((m) => [m.serial, 'running'])));
  });

  it('a running VM set to configured with mayuctl reinstalls on its next boot and returns to running', async (t: TestContext) => {
    const e = env!;
    const m = e.machines[0]!;
    assert.equal(boots.get(m.serial)?.length, 1, 'runs after the first test: the VM is running');
    const set = await e.mayuctl(['set', m.serial, 'state', 'configured']);
    assert.equal(set.code, 0, set.stderr);
    assert.equal((await states())[m.serial], 'configured');

    const t0 = Date.now();
    const boot = await toRunning(m, 'reinstall');
    t.diagnostic(`reinstall: install run ${boot.install.exit.seconds.toFixed(1)} s, disk run ${boot.disk.exit.seconds.toFixed(1)} s, ${((Date.now() - t0) / 1000).toFixed(1)} s in all`);
    assertRuns(m, boot);
    assert.match(boot.install.vm.console(), /mayu-installer: started/, 'the installer ran again');
    assert.deepEqual(bootAnswers(m), ['installer', 'local-disk', 'installer', 'local-disk']);
    assert.deepEqual(await subjects(m, FIRST_INSTALL.length + REINSTALL.length), [...FIRST_INSTALL, ...REINSTALL], `${m.serial}: git history`);
    const host = hostAt('HEAD', m);
    assert.equal(host.State, 'running');
    assert.equal(host.KeepDiskData, true, 'set state configured: reinstall keeping data disks');
    await assertConfig(m, boot, 1);
    assert.equal((await states())[m.serial], 'running');
    for (const other of e.machines.slice(1)) assert.deepEqual(await subjects(other, FIRST_INSTALL.length), FIRST_INSTALL, `${other.serial}: untouched`);
  });
});
