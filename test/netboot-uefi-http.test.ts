import assert from 'node:assert/strict';
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeHost } from '../src/core/host.ts';
import { git } from './helpers/git.ts';
import { ensureNetbootImages } from './helpers/netboot-images.ts';
import { startNetbootNetns, type NetbootNetns } from './helpers/netboot-netns.ts';
import { OVMF_VARS } from './helpers/qemu.ts';

// UEFI HTTP boot through mayu's own dnsmasq (root: a private network namespace, as the netns
// netboot test): OVMF's own network stack (the NIC's iPXE option ROM left out) asks DHCP as
// HTTPClient, gets an HTTP URL to iPXE's UEFI binary that mayu serves, and no TFTP is used. OVMF
// tries PXE before HTTP; PXE is switched off through its fw_cfg knobs so this VM can only HTTP boot.

const VERSION = '1010.5.0';
const RUN_TIMEOUT_MS = 8 * 60_000;
const isRoot = process.getuid?.() === 0;

describe('UEFI HTTP boot: firmware → iPXE over HTTP → installer', { timeout: 25 * 60_000, skip: isRoot ? false : 'needs root (network namespace)' }, () => {
  let e: NetbootNetns;

  before(async () => {
    await ensureNetbootImages(VERSION);
    e = await startNetbootNetns({ machines: 1, serialPrefix: 'MAYU-HTTPBOOT' });
  }, { timeout: 15 * 60_000 });

  after(async () => {
    await e?.cleanup();
  });

  it('installs, iPXE fetched over HTTP from mayu, no TFTP', async () => {
    const m = e.machines[0]!;
    const ovmfVars = path.join(e.workDir, 'ovmf-vars.fd');
    await copyFile(OVMF_VARS, ovmfVars);
    const vm = {
      firmware: 'uefi' as const,
      ovmfVars,
      // OVMF's own virtio-net driver and HTTP boot instead of the NIC's iPXE ROM; no PXE.
      nicModel: 'virtio-net-pci,romfile=',
      extraArgs: ['-fw_cfg', 'name=opt/org.tianocore/IPv4PXESupport,string=n', '-fw_cfg', 'name=opt/org.tianocore/IPv6PXESupport,string=n'],
    };
    const install = await e.runVm(m, 'install', RUN_TIMEOUT_MS, vm);
    assert.doesNotMatch(install.vm.console(), /mayu-installer: ERROR/);
    assert.match(install.vm.console(), /mayu-installer: installed \(mayu answered 202\); rebooting/);
    const efiFetches = e.mayu.logs.filter((l) => l.msg === 'request' && l.url === '/uefi/snponly.efi' && l.status === 200);
    assert.ok(efiFetches.length >= 1, 'the firmware fetched iPXE from mayu over HTTP');

    assert.match(install.vm.console(), /Start HTTP Boot over IPv4/);
    assert.doesNotMatch(install.vm.console(), /Start PXE over/, 'no PXE (TFTP) boot was tried');
    const host = decodeHost(JSON.parse(git(e.mayu.clusterDir, 'show', `HEAD:${m.serial}/conf.json`)));
    assert.equal(host.State, 'installed');
    assert.deepEqual(host.MacAddresses, [m.mac]);
    // The boot from disk after iPXE's `exit` is covered under UEFI by the user-net test (iPXE
    // ROM). After an HTTP boot, OVMF goes on to its HTTPv6 entry and was seen to stall there.
  });
});
