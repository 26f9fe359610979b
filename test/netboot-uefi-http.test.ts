import assert from 'node:assert/strict';
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { decodeHost } from '../src/core/host.ts';
import { git, gitSubjects } from './helpers/git.ts';
import { ensureNetbootImages } from './helpers/netboot-images.ts';
import { startNetbootNetns, type NetbootNetns } from './helpers/netboot-netns.ts';
import { OVMF_VARS, uefiHttpBootVm } from './helpers/qemu.ts';

// UEFI HTTP boot through mayu's own dnsmasq (root: a private network namespace, as the netns
// netboot test): OVMF's own network stack (the NIC's iPXE option ROM left out) asks DHCP as
// HTTPClient, gets an HTTP URL to iPXE's UEFI binary that mayu serves, and no TFTP is used. Then
// the second power-on: HTTP boot again, mayu answers `exit 1`, OVMF goes on to the disk's
// EFI/BOOT/BOOTX64.EFI, the test OS reports boot_complete: `running`.

const VERSION = '1010.5.0';
const RUN_TIMEOUT_MS = 8 * 60_000;
const isRoot = process.getuid?.() === 0;

const FIRST_INSTALL = [
  'host created', 'updated with predefined settings', 'updated host InternalAddr',
  'updated host profile and metadata', 'set default etcd discovery token',
  'collected host mac addresses', 'updated host connected nic', 'updated host state to installing',
  'updated state to installed', 'updated state to running',
];

describe('UEFI HTTP boot: firmware → iPXE over HTTP → installer → disk → running', { timeout: 25 * 60_000, skip: isRoot ? false : 'needs root (network namespace)' }, () => {
  let e: NetbootNetns;

  before(async () => {
    await ensureNetbootImages(VERSION);
    e = await startNetbootNetns({ machines: 1, serialPrefix: 'MAYU-HTTPBOOT' });
  }, { timeout: 15 * 60_000 });

  after(async () => {
    await e?.cleanup();
  });

  it('installs with iPXE fetched over HTTP from mayu (no TFTP), then boots the disk through exit 1: running', async (t: TestContext) => {
    const m = e.machines[0]!;
    const ovmfVars = path.join(e.workDir, 'ovmf-vars.fd');
    await copyFile(OVMF_VARS, ovmfVars);
    const vm = uefiHttpBootVm(ovmfVars);
    const install = await e.runVm(m, 'install', RUN_TIMEOUT_MS, vm);
    assert.doesNotMatch(install.vm.console(), /mayu-installer: ERROR/);
    assert.match(install.vm.console(), /mayu-installer: installed \(mayu answered 202\); rebooting/);
    const efiFetches = e.mayu.logs.filter((l) => l.msg === 'request' && l.url === '/uefi/snponly.efi' && l.status === 200);
    assert.ok(efiFetches.length >= 1, 'the firmware fetched iPXE from mayu over HTTP');
    assert.match(install.vm.console(), /Start HTTP Boot over IPv4/);
    assert.doesNotMatch(install.vm.console(), /Start PXE over/, 'no PXE (TFTP) boot was tried');

    const disk = await e.runVm(m, 'disk-boot', RUN_TIMEOUT_MS, vm);
    t.diagnostic(`install run ${install.exit.seconds.toFixed(1)} s, disk run ${disk.exit.seconds.toFixed(1)} s`);
    const text = disk.vm.console();
    assert.match(text, /Start HTTP Boot over IPv4/);
    assert.match(text, new RegExp(`mayu: ${m.serial} is installed, booting from the local disk`));
    assert.doesNotMatch(text, /Start HTTP Boot over IPv6|Start PXE over/, 'OVMF went from HTTPv4 straight to the disk');
    assert.match(text, /mayu-test-os: boot_complete reported \(HTTP 202\); powering off/);
    assert.doesNotMatch(text, /mayu-installer:/, 'the disk boot must not start the installer');

    const answers = e.mayu.logs.filter((l) => l.msg === 'request' && typeof l.url === 'string' && l.url.startsWith(`/ipxebootscript?serial=${m.smbiosSerial}&`)).map((l) => l.boot);
    assert.deepEqual(answers, ['installer', 'local-disk']);
    assert.deepEqual(gitSubjects(e.mayu.clusterDir).filter((s) => s.startsWith(`${m.serial}: `)).map((s) => s.slice(m.serial.length + 2)), FIRST_INSTALL);
    const host = decodeHost(JSON.parse(git(e.mayu.clusterDir, 'show', `HEAD:${m.serial}/conf.json`)));
    assert.equal(host.State, 'running');
    assert.deepEqual(host.MacAddresses, [m.mac]);
    assert.equal(host.CoreOSVersion, VERSION, 'boot_complete carried the test OS version');
  });
});
