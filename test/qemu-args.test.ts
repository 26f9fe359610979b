import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { qemuArgs, tapNetdev, uefiHttpBootVm, userNetdev } from './helpers/qemu.ts';

// The VM command line the netboot tests use: TCG, isolated user networking, network boot first.

describe('QEMU command line', () => {
  it('user networking: restrict=on, boot file and the only forward both on the guest address, to 127.0.0.1', () => {
    const netdev = userNetdev({ port: 40123 });
    assert.equal(
      netdev,
      'user,id=n0,restrict=on,bootfile=http://10.0.2.100:40123/ipxebootscript,guestfwd=tcp:10.0.2.100:40123-cmd:busybox nc 127.0.0.1 40123',
    );
    assert.equal(netdev.match(/guestfwd=/g)?.length, 1);
    assert.throws(() => userNetdev({ port: 0 }), /invalid port/);
  });

  it('TCG, serial console on stdio, -no-reboot, SMBIOS serial (commas doubled), disk, network before disk', () => {
    const args = qemuArgs({ name: 'x', consoleLog: '/dev/null', netdev: 'user,id=n0', mac: '52:54:00:00:00:01', serial: 'A,B', uuid: 'u', disk: '/tmp/d.raw' });
    const s = args.join(' ');
    assert.match(s, /^-accel tcg -m 256 -nographic -serial stdio -monitor none -no-reboot /);
    assert.ok(!s.includes('kvm'));
    assert.match(s, / -smbios type=1,serial=A,,B -uuid u /);
    assert.match(s, / -device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01 /);
    assert.match(s, / -drive file=\/tmp\/d\.raw,if=virtio,format=raw -boot order=nc$/);
    assert.ok(!qemuArgs({ name: 'x', consoleLog: '', netdev: 'n', mac: 'm', noReboot: false }).includes('-no-reboot'));
  });

  it('tap networking: an existing tap, no ifup/ifdown scripts', () => {
    assert.equal(tapNetdev({ ifname: 'tap2' }), 'tap,id=n0,ifname=tap2,script=no,downscript=no');
    assert.throws(() => tapNetdev({ ifname: 'tap1,script=/bin/sh' }), /invalid interface name/);
  });

  it('a NIC without link: paused start (-S) and a monitor socket beside the console log; NICs with link need neither', () => {
    const base = { name: 'x', consoleLog: '/tmp/c.log', netdev: 'user,id=n0', mac: '52:54:00:00:00:01' };
    const down = qemuArgs({ ...base, deadNicsBefore: [{ model: 'e1000e', mac: '52:54:00:00:00:02', link: 'down' }, { model: 'e1000', mac: '52:54:00:00:00:03' }] }).join(' ');
    assert.match(down, / -device e1000e,id=deadnic0,netdev=dead0,mac=52:54:00:00:00:02,romfile= /);
    assert.match(down, / -device e1000,id=deadnic1,netdev=dead1,mac=52:54:00:00:00:03,romfile= /);
    assert.match(down, / -S -chardev socket,id=mon0,path=\/tmp\/c\.log\.monitor,server=on,wait=off -mon chardev=mon0,mode=readline /);
    const up = qemuArgs({ ...base, deadNicsBefore: [{ model: 'e1000', mac: '52:54:00:00:00:03' }] });
    assert.ok(!up.includes('-S') && !up.includes('-mon'));
  });

  it('UEFI HTTP boot VM: OVMF, no iPXE ROM, PXE and IPv6 off (HTTPv4 then the disk)', () => {
    const s = qemuArgs({ name: 'x', consoleLog: '', netdev: 'user,id=n0', mac: 'm', disk: '/d', ...uefiHttpBootVm('/v.fd') }).join(' ');
    assert.match(s, /-drive if=pflash,format=raw,file=\/v\.fd /);
    assert.match(s, / -device virtio-net-pci,romfile=,netdev=n0,mac=m,bootindex=1 /);
    assert.match(s, /virtio-blk-pci,drive=disk,bootindex=2 /);
    for (const knob of ['IPv4PXESupport', 'IPv6PXESupport', 'IPv6Support']) assert.ok(s.includes(`-fw_cfg name=opt/org.tianocore/${knob},string=n`), knob);
  });
});
