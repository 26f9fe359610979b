import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import * as yaml from 'js-yaml';
import { decodeHost, type Host } from '../src/core/host.ts';
import { reportToken } from '../src/core/tokens.ts';
import { git, gitSubjects } from './helpers/git.ts';
import { FIXTURES, ROOT, tempDir } from './helpers/mayu-process.ts';
import { ensureDebianOsImage, ensureNetbootImages } from './helpers/netboot-images.ts';
import { inBootstrapRange, startNetbootNetns, type Machine, type NetbootNetns } from './helpers/netboot-netns.ts';
import { netnsUnavailable } from './helpers/netns.ts';
import { OVMF_VARS, type Vm, type VmOptions } from './helpers/qemu.ts';

// A real OS consumes the config mayu renders. One VM on the bridge of a private network namespace
// with mayu's dnsmasq: PXE → installer → the Debian 12 image (zstd) on disk with the cloud-config
// as cloud-init's NoCloud seed → reboot → iPXE exit → disk → cloud-init applies hostname, ssh key,
// static address, /etc/mayu-env and the boot_complete unit → the OS itself reports `running`.
// Checked from outside: mayu's record, ssh (Debian's openssh-client, a key made here) to the
// host's InternalAddr, a reboot (boot_complete again), and a reinstall with mayuctl.

const DEBIAN_VERSION = 'debian-12'; // default_coreos_version of the config
const INSTALLER_VERSION = '1010.5.0'; // the installer is built with the test OS of this version
const VM = { memoryMb: 1024 };
const STEP_TIMEOUT_MS = 10 * 60_000; // TCG on a shared 2-core machine: generous

const FIRST_INSTALL = [
  'host created', 'updated with predefined settings', 'updated host InternalAddr',
  'updated host profile and metadata', 'set default etcd discovery token',
  'collected host mac addresses', 'updated host connected nic', 'updated host state to installing',
  'updated state to installed', 'updated state to running',
];
const REINSTALL = ['updated host state', 'updated host state to installing', 'updated state to installed', 'updated state to running'];

describe('Debian 12 + cloud-init installed by mayu reports running itself and is configured as rendered', { skip: netnsUnavailable(), timeout: 45 * 60_000 }, () => {
  let env: NetbootNetns | undefined;
  let keyDir: string | undefined;
  let m: Machine;
  let vm: Vm | undefined; // the running OS

  before(async () => {
    await ensureNetbootImages(INSTALLER_VERSION);
    await ensureDebianOsImage(DEBIAN_VERSION);
    keyDir = await tempDir('mayu-debian-key-');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'mayu-debian-e2e', '-f', path.join(keyDir, 'id')]);
    const config = yaml.load(await readFile(path.join(FIXTURES, 'netboot-debian-config.yaml'), 'utf8')) as { templates_env: Record<string, unknown> };
    config.templates_env['ssh_authorized_keys'] = [(await readFile(path.join(keyDir, 'id.pub'), 'utf8')).trim()];
    await writeFile(path.join(keyDir, 'config.yaml'), yaml.dump(config));
    // Machine 1 boots with SeaBIOS, machine 2 (the last test) with OVMF; one VM at a time.
    env = await startNetbootNetns({ machines: 2, config: path.join(keyDir, 'config.yaml'), diskMb: 2048, serialPrefix: 'MAYU-DEB' });
    m = env.machines[0]!;
  }, { timeout: 20 * 60_000 });

  after(async () => {
    await env?.cleanup();
    if (keyDir) await rm(keyDir, { recursive: true, force: true });
  });

  const subjects = () => {
    const prefix = `${m.serial}: `;
    return gitSubjects(env!.mayu.clusterDir).filter((s) => s.startsWith(prefix)).map((s) => s.slice(prefix.length));
  };
  const host = (): Host => decodeHost(JSON.parse(git(env!.mayu.clusterDir, 'show', `HEAD:${m.serial}/conf.json`)));

  /** Resolves once the host has `count` commits; rejects when `running` (a VM) exits first or after the timeout. */
  async function commits(count: number, running?: Vm): Promise<void> {
    for (const until = Date.now() + STEP_TIMEOUT_MS; subjects().length < count;) {
      if (running && running.proc.exitCode !== null) throw new Error(`${running.name} exited before commit ${count}; console tail:\n${running.console().slice(-3000)}`);
      if (Date.now() > until) throw new Error(`no commit ${count} within ${STEP_TIMEOUT_MS} ms (have ${JSON.stringify(subjects())}); console tail:\n${running?.console().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  /** Epoch ms when the first console line matching `pattern` appears (undefined if never). */
  const stamp = (v: Vm, pattern: RegExp) => v.waitForLine(pattern, STEP_TIMEOUT_MS).then(() => Date.now(), () => undefined);

  /** ssh (inside the namespace) as cloud-init's default user to the host's InternalAddr; retried until sshd answers. */
  async function ssh(command: string, timeoutMs = 180_000): Promise<string> {
    const addr = host().InternalAddr!;
    const args = ['-i', path.join(keyDir!, 'id'), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=5', '-o', 'LogLevel=ERROR', `debian@${addr}`, command];
    let last = '';
    for (const until = Date.now() + timeoutMs; Date.now() < until;) {
      const r = await env!.lab.exec('ssh', args, { timeoutMs: 60_000 });
      if (r.code === 0) return r.stdout;
      last = `exit ${r.code}: ${r.stderr}`;
      await new Promise((res) => setTimeout(res, 3000));
    }
    throw new Error(`ssh debian@${addr} ${command}: ${last}`);
  }

  /** Power-on (network first) → installer → reboot; then the disk boot, left running. Returns the timings. */
  async function installAndBoot(label: string, commitsWhenRunning: number, firmware: Partial<VmOptions> = {}): Promise<Record<string, number>> {
    const e = env!;
    const t0 = Date.now();
    const installer = e.startMachine(m, `${label}-install`, { ...VM, ...firmware });
    const writing = stamp(installer, /mayu-installer: writing /);
    const written = stamp(installer, /mayu-installer: stored cloud-config as NoCloud/);
    const exit = await installer.waitForExit(STEP_TIMEOUT_MS);
    assert.equal(exit.code, 0, installer.console().slice(-3000));
    assert.match(installer.console(), /mayu-installer: image starts with 28b52ffd: zstd -d -q -c/);
    assert.match(installer.console(), /mayu-installer: installed \(mayu answered 202\); rebooting/, installer.console().slice(-3000));
    const tInstalled = Date.now();
    vm = e.startMachine(m, `${label}-disk`, { ...VM, ...firmware });
    const kernel = stamp(vm, /Linux version /);
    const cloudInitDone = stamp(vm, /Cloud-init v\. .* finished at/);
    await commits(commitsWhenRunning, vm);
    const tRunning = Date.now();
    const s = (t: number | undefined) => (t === undefined ? NaN : (t - t0) / 1000);
    // When mayu answered this VM's requests (one VM at a time: every request since t0 is its).
    const firstRequest = (re: RegExp) => {
      const entry = e.mayu.logs.find((l) => l.msg === 'request' && typeof l.time === 'number' && l.time >= t0 && re.test(String(l.url)));
      return entry ? s(entry.time as number) : NaN;
    };
    return {
      bootScript: firstRequest(/^\/ipxebootscript\?/),
      kernelRequested: firstRequest(/^\/images\/vmlinuz/),
      initrdRequested: firstRequest(/^\/images\/initrd/),
      firstStageScript: firstRequest(/^\/first-stage-script\//),
      installerWriting: s(await writing),
      imageWrittenConfigStored: s(await written),
      installed: s(tInstalled),
      diskKernel: s(await Promise.race([kernel, Promise.resolve(undefined)])),
      cloudInitFinished: s(await Promise.race([cloudInitDone, Promise.resolve(undefined)])),
      running: s(tRunning),
    };
  }

  /** Asks the running OS to reboot; -no-reboot makes QEMU exit, as a power cycle here. */
  async function rebootOs(): Promise<void> {
    await env!.lab.exec('ssh', ['-i', path.join(keyDir!, 'id'), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', `debian@${host().InternalAddr}`, 'sudo systemctl reboot'], { timeoutMs: 30_000 });
    const exit = await vm!.waitForExit(STEP_TIMEOUT_MS);
    assert.equal(exit.code, 0, `${vm!.name}: QEMU exit on the guest's reboot`);
  }

  it('power-on → installer → Debian → cloud-init → running, with the versions the OS sent', async (t: TestContext) => {
    const timings = await installAndBoot('first', FIRST_INSTALL.length);
    t.diagnostic(`timings (s from power-on): ${JSON.stringify(timings)}`);
    assert.deepEqual(subjects(), FIRST_INSTALL);
    const h = host();
    assert.equal(h.State, 'running');
    assert.equal(h.CoreOSVersion, DEBIAN_VERSION, 'the image version from /etc/mayu-image');
    const version = (JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    assert.equal(h.MayuVersion, version, 'MAYU_VERSION of /etc/mayu-env');
    assert.equal(h.ConnectedNIC, 'eth0');
    assert.match(vm!.console(), new RegExp(`mayu: ${m.serial} is installed, booting from the local disk`));
  });

  it('answers ssh at its InternalAddr with the rendered hostname, /etc/mayu-env and cloud-init done', async (t: TestContext) => {
    const h = host();
    const lease = (await env!.leases()).find((l) => l.mac === m.mac);
    assert.ok(lease && inBootstrapRange(env!.lab, lease.ip), 'the installer had a bootstrap lease');
    assert.notEqual(h.InternalAddr, lease.ip);
    const out = await ssh('hostname; echo ---; sudo cat /etc/mayu-env; stat -c %a /etc/mayu-env; echo ---; cloud-init status --long; echo "exit $?"; echo ---; ip -4 -o addr show dev eth0; ip -4 route show default; resolvectl dns eth0; echo ---; systemctl is-enabled mayu-boot-complete.service');
    const [hostname, mayuEnv, status, network, unit] = out.split('---\n').map((p) => p.trim());
    assert.equal(hostname, h.Hostname);
    const reportKey = Buffer.from((await readFile(path.join(env!.mayu.workDir, 'report-key'), 'utf8')).trim(), 'hex');
    assert.equal(mayuEnv, [
      `SERIAL=${m.serial}`, `MAYU_VERSION=${h.MayuVersion}`, `MAYU_URL=http://${env!.lab.bridgeAddr}:${env!.mayu.port}`,
      `REPORT_TOKEN=${reportToken(reportKey, m.serial, h.MachineID!)}`,
      `ETCD_DISCOVERY=http://${env!.lab.bridgeAddr}:${env!.mayu.port}/etcd/${h.EtcdClusterToken}`, '600',
    ].join('\n'));
    assert.match(status!, /^status: done$/m, status);
    assert.match(status!, /DataSourceNoCloud \[seed=\/var\/lib\/cloud\/seed\/nocloud\]/, status);
    assert.match(status!, /^exit 0$/m, status);
    // The static address of the singlenic snippet, not the bootstrap lease; router and DNS as configured.
    const addrs = [...network!.matchAll(/inet ([\d.]+)\/(\d+)/g)].map((x) => `${x[1]}/${x[2]}`);
    assert.deepEqual(addrs, [`${h.InternalAddr}/24`], network);
    assert.match(network!, /^default via 10\.77\.0\.1 dev eth0/m, network);
    assert.match(network!, /Link \d+ \(eth0\): 10\.77\.0\.1$/m, network);
    assert.equal(unit, 'enabled');
    // Where the first boot's time went (docs/performance.md).
    t.diagnostic(await ssh('systemd-analyze; systemd-analyze blame | head -n 8; cloud-init analyze blame | head -n 12'));
  });

  it('a reboot goes through iPXE exit to the disk and reports boot_complete again: one commit, running → running', async () => {
    const before = host();
    const count = subjects().length;
    await rebootOs();
    vm = env!.startMachine(m, 'reboot-disk', VM);
    await commits(count + 1, vm);
    assert.deepEqual(subjects().slice(count), ['updated state to running']);
    const h = host();
    assert.equal(h.State, 'running');
    assert.notEqual(h.LastBoot, before.LastBoot, 'LastBoot moved');
    assert.match(vm.console(), new RegExp(`mayu: ${m.serial} is running, booting from the local disk`));
    assert.doesNotMatch(vm.console(), /mayu-installer:/);
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(subjects().length, count + 1, 'exactly one commit for the reboot');
  });

  it('mayuctl set <serial> state configured: the next boot reinstalls it and it comes back running', async (t: TestContext) => {
    const count = subjects().length;
    const set = await env!.mayuctl(['set', m.serial, 'state', 'configured']);
    assert.equal(set.code, 0, set.stderr);
    await rebootOs();
    const timings = await installAndBoot('reinstall', count + REINSTALL.length);
    t.diagnostic(`reinstall timings (s from power-on): ${JSON.stringify(timings)}`);
    assert.deepEqual(subjects().slice(count), REINSTALL);
    assert.equal(host().State, 'running');
    assert.equal((await ssh('hostname')).trim(), host().Hostname);
  });

  it('under UEFI (OVMF) too: installer, then syslinux.efi from the disk, cloud-init, running, ssh', async (t: TestContext) => {
    await vm?.kill(); // one VM at a time: the BIOS machine is done
    m = env!.machines[1]!;
    const ovmfVars = path.join(env!.workDir, 'ovmf-vars-2.fd');
    await copyFile(OVMF_VARS, ovmfVars);
    const timings = await installAndBoot('uefi', FIRST_INSTALL.length, { firmware: 'uefi', ovmfVars });
    t.diagnostic(`UEFI timings (s from power-on): ${JSON.stringify(timings)}`);
    assert.deepEqual(subjects(), FIRST_INSTALL);
    assert.equal(host().CoreOSVersion, DEBIAN_VERSION);
    const [hostname, status] = (await ssh('hostname; echo ---; cloud-init status')).split('---\n').map((p) => p.trim());
    assert.equal(hostname, host().Hostname);
    assert.equal(status, 'status: done');
  });
});
