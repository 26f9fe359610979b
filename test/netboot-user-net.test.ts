import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/config/load.ts';
import { decodeHost } from '../src/core/host.ts';
import { reportToken } from '../src/core/tokens.ts';
import { createOutputs } from '../src/render/outputs.ts';
import { loadTemplates } from '../src/render/renderer.ts';
import { git, gitSubjects } from './helpers/git.ts';
import { FIXTURES, ROOT, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';
import { ensureNetbootImages, IMAGES_DIR } from './helpers/netboot-images.ts';
import { createBlankDisk, OVMF_VARS, startVm, userNetdev, type Vm, type VmOptions } from './helpers/qemu.ts';
import { FIRST_INSTALL_SUBJECTS } from './helpers/netboot-history.ts';

// One VM (TCG, QEMU user networking with restrict=on: no packet leaves QEMU except TCP to mayu on
// 127.0.0.1) netboots the real installer from the real mayu, installs the test OS, and boots it
// from disk through iPXE's exit. Two QEMU runs, each ending in a clean exit: the install ends at
// the installer's reboot (-no-reboot), the disk boot at the test OS's power-off.

const CONFIG = path.join(FIXTURES, 'netboot-config.yaml');
const VERSION = '1010.5.0'; // default_coreos_version of netboot-config.yaml
/** SeaBIOS and OVMF (UEFI): the same chain, and the test OS disk boots under both. */
const MACHINES = [
  { firmware: 'bios', serial: 'MAYU-VM-0001', mac: '52:54:00:4d:00:01', uuid: '6d617975-0000-4000-8000-000000000001' },
  { firmware: 'uefi', serial: 'MAYU-VM-UEFI-0001', mac: '52:54:00:4d:00:02', uuid: '6d617975-0000-4000-8000-000000000002' },
] as const;
const RUN_TIMEOUT_MS = 8 * 60_000; // TCG on a shared 2-core machine: generous

const consoleValue = (vm: Vm, pattern: RegExp) => pattern.exec(vm.console())?.[1];

describe('netboot over QEMU user networking: install, then boot from disk', { timeout: 35 * 60_000 }, () => {
  let workDir: string;
  let mayu: MayuProcess | undefined;
  const vms: Vm[] = [];

  before(async () => {
    await ensureNetbootImages(VERSION);
    workDir = await tempDir('mayu-netboot-');
  }, { timeout: 15 * 60_000 });

  after(async () => {
    for (const vm of vms) await vm.kill();
    await mayu?.stop();
    await rm(workDir, { recursive: true, force: true });
  });

  for (const machine of MACHINES) it(`${machine.firmware}: goes installing → installed → running, the OS reads the config mayu rendered`, async () => {
    mayu ??= await startMayu({ workDir, config: CONFIG, imagesDir: IMAGES_DIR });
    const { firmware, serial: SERIAL, mac: MAC } = machine;
    const serial = SERIAL.toLowerCase();
    const disk = path.join(workDir, `disk-${firmware}.raw`);
    await createBlankDisk(disk, 64);
    const ovmfVars = path.join(workDir, `ovmf-vars-${firmware}.fd`);
    if (firmware === 'uefi') await copyFile(OVMF_VARS, ovmfVars);
    const requestsBefore = mayu.logs.length;
    const vmOptions = (run: string): VmOptions => ({
      name: `VM ${firmware} ${run}`,
      consoleLog: path.join(workDir, `console-${firmware}-${run}.log`),
      netdev: userNetdev({ port: mayu!.port }),
      mac: MAC,
      serial: SERIAL,
      uuid: machine.uuid,
      disk,
      bootOrder: 'nc',
      firmware,
      ovmfVars,
    });
    const state = async () => ((await (await fetch(`${mayu!.url}/admin/host/${serial}`)).json()) as { State: string }).State;

    // Run 1: PXE → iPXE → chain → installer → first-stage script → image + config on disk → reboot.
    const install = startVm(vmOptions('install'));
    vms.push(install);
    const installExit = await install.waitForExit(RUN_TIMEOUT_MS);
    assert.equal(installExit.code, 0, `install run: QEMU exit ${installExit.code}/${installExit.signal}; console:\n${install.console().slice(-3000)}`);
    assert.match(install.console(), /mayu-installer: installed \(mayu answered 202\); rebooting/);
    assert.doesNotMatch(install.console(), /mayu-installer: ERROR/);
    assert.equal(await state(), 'installed');

    // Run 2: PXE → iPXE → chain → mayu answers "exit" → SeaBIOS boots the disk → test OS.
    const boot = startVm(vmOptions('disk-boot'));
    vms.push(boot);
    const bootExit = await boot.waitForExit(RUN_TIMEOUT_MS);
    assert.equal(bootExit.code, 0, `disk boot run: QEMU exit ${bootExit.code}/${bootExit.signal}; console:\n${boot.console().slice(-3000)}`);
    assert.doesNotMatch(boot.console(), /mayu-test-os: ERROR/);
    assert.match(boot.console(), new RegExp(`mayu: ${serial} is installed, booting from the local disk`));
    // BIOS: iPXE's sanboot of drive 0x80 says so; under OVMF, syslinux.efi loaded from the disk's EFI/BOOT/BOOTX64.EFI.
    if (firmware === 'bios') assert.match(boot.console(), /Booting from SAN device 0x80/);
    else assert.match(boot.console(), /mayu-test-os: started/);
    assert.match(boot.console(), /mayu-test-os: boot_complete reported \(HTTP 202\); powering off/);
    assert.doesNotMatch(boot.console(), /mayu-installer:/, 'the disk boot must not start the installer');

    // mayu's request log: the second boot's chained request was answered with the local-disk script.
    const bootAnswers = mayu.logs.slice(requestsBefore).filter((l) => l.msg === 'request' && typeof l.url === 'string' && l.url.startsWith('/ipxebootscript?')).map((l) => l.boot);
    assert.deepEqual(bootAnswers, ['installer', 'local-disk']);

    // The exact audit trail, read with the native git.
    assert.deepEqual(gitSubjects(mayu.clusterDir).filter((s) => s.startsWith(`${serial}: `)), FIRST_INSTALL_SUBJECTS.map((m) => `${serial}: ${m}`));
    const host = decodeHost(JSON.parse(git(mayu.clusterDir, 'show', `HEAD:${serial}/conf.json`)));
    assert.equal(host.State, 'running');
    assert.deepEqual(host.MacAddresses, [MAC]);
    assert.equal(host.ConnectedNIC, 'eth0');
    assert.equal(host.CoreOSVersion, VERSION, 'boot_complete carried the test OS version');

    // The config: what mayu rendered for the host as it was at "installing" (rendered again here
    // from that commit), what the installer received, and what the OS read from disk, byte for byte.
    const installingCommit = git(mayu.clusterDir, 'log', '--format=%H', `--grep=^${serial}: updated host state to installing$`).trim();
    const hostAtInstall = decodeHost(JSON.parse(git(mayu.clusterDir, 'show', `${installingCommit}:${serial}/conf.json`)));
    const loaded = await loadConfig(CONFIG);
    const reportKey = Buffer.from((await readFile(path.join(mayu.workDir, 'report-key'), 'utf8')).trim(), 'hex');
    const outputs = createOutputs({
      renderer: await loadTemplates({ templatesDir: path.join(ROOT, 'templates'), snippetsDir: path.join(ROOT, 'template_snippets') }),
      config: loaded.config,
      mayuUrl: `http://10.0.2.100:${mayu.port}`,
      version: (JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version,
      useIgnition: false,
      // The host's report token, derived as mayu does from the key in its work dir.
      reportTokenOf: (h) => reportToken(reportKey, h.Serial ?? '', h.MachineID ?? ''),
    });
    const rendered = outputs.cloudConfig(hostAtInstall);
    const sha = createHash('sha256').update(rendered).digest('hex');
    assert.equal(consoleValue(install, /mayu-installer: received cloud-config: \d+ bytes, sha256 ([0-9a-f]{64})/), sha);
    assert.equal(consoleValue(boot, /mayu-test-os: config kind=cloud-config bytes=\d+ sha256=([0-9a-f]{64})/), sha, 'the OS read a different config');
    assert.equal(consoleValue(boot, /mayu-test-os: config kind=cloud-config bytes=(\d+)/), String(Buffer.byteLength(rendered)));
  });

  it('a failing installer prints one ERROR line and powers off instead of rebooting; a placeholder serial falls back to the UUID', async () => {
    // The installer kernel and initrd booted directly, without mayu= on the command line, and
    // without -no-reboot: a reboot would netboot-loop until the timeout instead of exiting.
    const uuid = '6d617975-0000-4000-8000-0000000000f1';
    const vm = startVm({
      name: 'VM failing installer',
      consoleLog: path.join(workDir, 'console-failing-installer.log'),
      netdev: 'user,id=n0,restrict=on',
      mac: '52:54:00:4d:00:f1',
      serial: 'To be filled by O.E.M.',
      uuid: uuid.toUpperCase(),
      noReboot: false,
      extraArgs: ['-kernel', path.join(IMAGES_DIR, 'vmlinuz'), '-initrd', path.join(IMAGES_DIR, 'initrd.cpio.gz'), '-append', 'console=ttyS0,115200n8 panic=1 quiet'],
    });
    vms.push(vm);
    const exit = await vm.waitForExit(RUN_TIMEOUT_MS);
    assert.equal(exit.code, 0, vm.console().slice(-3000));
    assert.equal(consoleValue(vm, /mayu-installer: serial (\S+)/), uuid);
    const errors = vm.console().split('\n').filter((l) => l.startsWith('mayu-installer: ERROR'));
    assert.deepEqual(errors, ['mayu-installer: ERROR: no mayu=<url> on the kernel command line']);
    assert.match(vm.console(), /mayu-installer: powering off/);
    assert.equal(vm.console().match(/mayu-installer: started/g)?.length, 1, 'the installer ran once: no reboot');
  });
});
