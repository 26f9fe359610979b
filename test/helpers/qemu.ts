// QEMU VMs for netboot tests: TCG only (no KVM on these machines), serial console captured to
// a file and kept in memory, waits for console lines and for exit, kill by PID. The network is
// the caller's (-netdev string): QEMU user networking here, a tap in a namespace elsewhere.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { createConnection } from 'node:net';

export interface VmOptions {
  /** For messages only. */
  name: string;
  /** The serial console (with SeaBIOS, iPXE, kernel and init output) is written here. */
  consoleLog: string;
  /** A -netdev value whose id is `netdevId`, e.g. from userNetdev(). */
  netdev: string;
  netdevId?: string;
  mac: string;
  /** SMBIOS type 1 serial (what iPXE's ${serial} and /sys/class/dmi/id/product_serial show). */
  serial?: string;
  uuid?: string;
  /** Raw disk image, attached as virtio-blk (/dev/vda). */
  disk?: string;
  /** QEMU NIC model of the boot NIC (default virtio-net-pci), e.g. e1000, e1000e, rtl8139, vmxnet3. */
  nicModel?: string;
  /** Disks on other buses, instead of or beside `disk` (see DiskBus). */
  disks?: VmDisk[];
  /**
   * NICs placed before the boot NIC (so they come first on the PCI bus and in the guest's names),
   * each on a dead segment: a QEMU hub with nothing else on it (link up, no DHCP answer), or with
   * `link: 'down'` no carrier at all (a cable unplugged): QEMU starts paused, `set_link <id> off`
   * goes through its monitor socket before the guest runs (see startVm).
   */
  deadNicsBefore?: { model: string; mac: string; link?: 'up' | 'down' }[];
  /** Firmware: SeaBIOS (default) or OVMF (UEFI); OVMF needs `ovmfVars`, a writable copy of OVMF_VARS. */
  firmware?: 'bios' | 'uefi';
  ovmfVars?: string;
  memoryMb?: number;
  /** -boot order: 'nc' = network first, then the disk (after iPXE's `exit`). */
  bootOrder?: string;
  /** Exit QEMU when the guest reboots (default true), so a run ends at the installer's reboot. */
  noReboot?: boolean;
  extraArgs?: string[];
  /** Command prefix that execs QEMU, e.g. ['ip', 'netns', 'exec', ns] (a tap lives in a namespace). */
  wrap?: string[];
}

/** Disk controllers QEMU emulates, as the drivers of real servers see them. */
export type DiskBus = 'virtio-blk' | 'ahci' | 'nvme' | 'virtio-scsi' | 'megasas';

export interface VmDisk {
  file: string;
  bus: DiskBus;
  /** The disk's serial number (what the installer's serial: selection matches). */
  serial?: string;
}

export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';

/**
 * VmOptions of a UEFI machine that HTTP boots with OVMF's own network stack: the NIC's iPXE
 * option ROM left out, PXE (v4 and v6) and IPv6 switched off through OVMF's fw_cfg knobs, so its
 * network entries are HTTPv4 only and iPXE's `exit 1` leads straight to the disk (with IPv6 on,
 * OVMF tries an HTTPv6 entry before the disk and waits there for a DHCPv6 server). `ovmfVars`: a
 * writable copy of OVMF_VARS. Pure.
 */
export function uefiHttpBootVm(ovmfVars: string): Partial<VmOptions> {
  const knob = (name: string) => ['-fw_cfg', `name=opt/org.tianocore/${name},string=n`];
  return {
    firmware: 'uefi',
    ovmfVars,
    nicModel: 'virtio-net-pci,romfile=',
    extraArgs: [...knob('IPv4PXESupport'), ...knob('IPv6PXESupport'), ...knob('IPv6Support')],
  };
}

/**
 * VmOptions of a UEFI machine that PXE boots with OVMF's own network stack (no iPXE option ROM):
 * DHCP, then iPXE's snponly.efi over TFTP from mayu's dnsmasq, as a rack's UEFI server does.
 * IPv6 off (no PXEv6/HTTPv6 entry waiting for DHCPv6); OVMF's HTTPv4 entry stays, so after
 * iPXE's `exit 1` it HTTP boots iPXE once more before the disk. Pure.
 */
export function uefiPxeBootVm(ovmfVars: string): Partial<VmOptions> {
  return {
    firmware: 'uefi',
    ovmfVars,
    nicModel: 'virtio-net-pci,romfile=',
    extraArgs: ['-fw_cfg', 'name=opt/org.tianocore/IPv6Support,string=n'],
  };
}

/** -device/-drive arguments of one disk with its own controller. Pure. */
export function diskArgs(d: VmDisk, index: number): string[] {
  const drive = `file=${d.file},if=none,id=disk${index},format=raw`;
  const serial = d.serial ? `,serial=${d.serial}` : '';
  switch (d.bus) {
    case 'virtio-blk': return ['-drive', drive, '-device', `virtio-blk-pci,drive=disk${index}${serial}`];
    case 'nvme': return ['-drive', drive, '-device', `nvme,drive=disk${index},serial=${d.serial ?? `nvme${index}`}`];
    case 'ahci': return ['-drive', drive, '-device', `ahci,id=ahci${index}`, '-device', `ide-hd,drive=disk${index},bus=ahci${index}.0${serial}`];
    case 'virtio-scsi': return ['-drive', drive, '-device', `virtio-scsi-pci,id=scsi${index}`, '-device', `scsi-hd,drive=disk${index},bus=scsi${index}.0${serial}`];
    // LSI MegaRAID SAS 2208 (megaraid_sas), the RAID controller model QEMU has.
    case 'megasas': return ['-drive', drive, '-device', `megasas-gen2,id=sas${index}`, '-device', `scsi-hd,drive=disk${index},bus=sas${index}.0${serial}`];
  }
}

/** Device ids of the NICs that start without link (VmOptions.deadNicsBefore). Pure. */
export function linkDownNics(opts: VmOptions): string[] {
  return (opts.deadNicsBefore ?? []).flatMap((n, i) => (n.link === 'down' ? [`deadnic${i}`] : []));
}

/** The monitor socket of a VM that needs one (beside its console log). */
const monitorSocket = (opts: VmOptions) => `${opts.consoleLog}.monitor`;

/** The qemu-system-x86_64 arguments for `opts`. Pure. */
export function qemuArgs(opts: VmOptions): string[] {
  const id = opts.netdevId ?? 'n0';
  const uefi = opts.firmware === 'uefi';
  if (uefi && !opts.ovmfVars) throw new Error(`${opts.name}: UEFI needs ovmfVars (a writable copy of ${OVMF_VARS})`);
  return [
    '-accel', 'tcg',
    '-m', String(opts.memoryMb ?? 256),
    '-nographic', '-serial', 'stdio', '-monitor', 'none',
    ...(opts.noReboot === false ? [] : ['-no-reboot']),
    ...(uefi ? ['-drive', `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`, '-drive', `if=pflash,format=raw,file=${opts.ovmfVars}`] : []),
    ...(opts.serial !== undefined ? ['-smbios', `type=1,serial=${opts.serial.replace(/,/g, ',,')}`] : []),
    ...(opts.uuid ? ['-uuid', opts.uuid] : []),
    ...(opts.deadNicsBefore ?? []).flatMap((n, i) => ['-netdev', `hubport,id=dead${i},hubid=${90 + i}`, '-device', `${n.model},id=deadnic${i},netdev=dead${i},mac=${n.mac},romfile=`]),
    ...(linkDownNics(opts).length ? ['-S', '-chardev', `socket,id=mon0,path=${monitorSocket(opts)},server=on,wait=off`, '-mon', 'chardev=mon0,mode=readline'] : []),
    '-netdev', opts.netdev,
    // OVMF keeps its own boot order (it ignores -boot order=): bootindex puts the NIC first, as
    // on a rack's servers, then the disk.
    '-device', `${opts.nicModel ?? 'virtio-net-pci'},netdev=${id},mac=${opts.mac}${uefi ? ',bootindex=1' : ''}`,
    ...(opts.disk && !uefi ? ['-drive', `file=${opts.disk},if=virtio,format=raw`] : []),
    ...(opts.disk && uefi ? ['-drive', `file=${opts.disk},if=none,id=disk,format=raw`, '-device', 'virtio-blk-pci,drive=disk,bootindex=2'] : []),
    ...(opts.disks ?? []).flatMap((d, i) => diskArgs(d, i)),
    '-boot', `order=${opts.bootOrder ?? 'nc'}`,
    ...(opts.extraArgs ?? []),
  ];
}

/**
 * QEMU user networking that keeps every guest packet inside QEMU (restrict=on) except TCP to
 * `guestAddr:port`, which is forwarded to mayu on 127.0.0.1:`port` (one `busybox nc` per
 * connection). QEMU's own DHCP hands iPXE `bootPath` on that address as its boot file.
 */
export function userNetdev(o: { port: number; id?: string; guestAddr?: string; bootPath?: string }): string {
  const addr = o.guestAddr ?? '10.0.2.100';
  if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw new Error(`invalid port ${o.port}`);
  return [
    `user,id=${o.id ?? 'n0'}`,
    'restrict=on',
    `bootfile=http://${addr}:${o.port}${o.bootPath ?? '/ipxebootscript'}`,
    `guestfwd=tcp:${addr}:${o.port}-cmd:busybox nc 127.0.0.1 ${o.port}`,
  ].join(',');
}

/**
 * A tap device that already exists (in the namespace QEMU runs in, see VmOptions.wrap), with no
 * ifup/ifdown scripts: the caller has put it on a bridge.
 */
export function tapNetdev(o: { ifname: string; id?: string }): string {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(o.ifname)) throw new Error(`invalid interface name ${JSON.stringify(o.ifname)}`);
  return `tap,id=${o.id ?? 'n0'},ifname=${o.ifname},script=no,downscript=no`;
}

/** A sparse raw disk of `sizeMb` MiB. */
export async function createBlankDisk(file: string, sizeMb: number): Promise<void> {
  const fh = await open(file, 'w');
  try {
    await fh.truncate(sizeMb * 1024 * 1024);
  } finally {
    await fh.close();
  }
}

export interface VmExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  seconds: number;
}

export interface Vm {
  name: string;
  pid: number;
  proc: ChildProcess;
  /** Console output so far (\r removed). */
  console(): string;
  /** Resolves with the first console line matching `pattern`; rejects on exit or timeout. */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string>;
  /** Resolves when QEMU exits; after `timeoutMs` kills it and rejects, quoting the console tail. */
  waitForExit(timeoutMs: number): Promise<VmExit>;
  /** SIGKILL by PID if still running; resolves once it is gone. Safe to call twice. */
  kill(): Promise<void>;
}

export function startVm(opts: VmOptions): Vm {
  const started = performance.now();
  // The wrap (ip netns exec) execs QEMU: proc.pid is QEMU's.
  const [command, ...prefix] = [...(opts.wrap ?? []), 'qemu-system-x86_64'];
  const proc = spawn(command!, [...prefix, ...qemuArgs(opts)], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (proc.pid === undefined) throw new Error(`${opts.name}: qemu-system-x86_64 did not start`);
  const log = createWriteStream(opts.consoleLog);
  const stamped = process.env.MAYU_CONSOLE_STAMPS ? createWriteStream(`${process.env.MAYU_CONSOLE_STAMPS}/${opts.name}-${Date.now()}.log`) : undefined;
  let partial = '';
  let text = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    log.write(d);
    if (stamped) {
      const lines = (partial + d.toString('latin1').replace(/\r/g, '')).split('\n');
      partial = lines.pop() ?? '';
      const t = ((performance.now() - started) / 1000).toFixed(2);
      for (const line of lines) stamped.write(`${t} ${line}\n`);
    }
    text += d.toString('latin1').replace(/\r/g, '');
    for (const l of listeners) l();
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<VmExit>((resolve) => {
    proc.once('exit', (code, signal) => {
      log.end();
      resolve({ code, signal, seconds: (performance.now() - started) / 1000 });
      for (const l of listeners) l();
    });
  });
  const tail = () => text.split('\n').slice(-25).join('\n');
  // Paused (-S) for NICs without link: set their links off through the monitor, then run.
  const downs = linkDownNics(opts);
  if (downs.length) {
    void setLinksOffAndRun(monitorSocket(opts), downs).catch((err: Error) => {
      onData(Buffer.from(`\ntest harness: ${opts.name}: set_link through the monitor failed: ${err.message}\n`));
      if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid!, 'SIGKILL');
    });
  }
  const kill = async () => {
    if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid!, 'SIGKILL');
    await exited;
  };

  return {
    name: opts.name,
    pid: proc.pid,
    proc,
    console: () => text,
    waitForLine(pattern, timeoutMs) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => finish(new Error(`${opts.name}: no console line matching ${pattern} within ${timeoutMs} ms; console tail:\n${tail()}`)), timeoutMs);
        const check = () => {
          const line = text.split('\n').find((l) => pattern.test(l));
          if (line !== undefined) finish(undefined, line);
          else if (proc.exitCode !== null || proc.signalCode !== null) finish(new Error(`${opts.name}: QEMU exited before a console line matched ${pattern}; console tail:\n${tail()}`));
        };
        const finish = (err?: Error, line?: string) => {
          clearTimeout(timer);
          listeners.delete(check);
          if (err) reject(err);
          else resolve(line!);
        };
        listeners.add(check);
        check();
      });
    },
    async waitForExit(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          void kill().then(() => reject(new Error(`${opts.name}: QEMU still running after ${timeoutMs} ms, killed; console tail:\n${tail()}`)));
        }, timeoutMs);
      });
      try {
        return await Promise.race([exited, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    kill,
  };
}

/** Over QEMU's human monitor at `socket` (waits up to 10 s for it): `set_link <id> off` for each id, then `cont`. */
async function setLinksOffAndRun(socket: string, ids: string[]): Promise<void> {
  for (const until = Date.now() + 10_000; !(await stat(socket).then((st) => st.isSocket(), () => false));) {
    if (Date.now() > until) throw new Error(`no monitor socket ${socket} after 10 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise<void>((resolve, reject) => {
    const conn = createConnection(socket);
    let answer = '';
    const timer = setTimeout(() => { conn.destroy(); reject(new Error(`monitor: no answer to cont within 10 s: ${answer}`)); }, 10_000);
    conn.on('error', (err) => { clearTimeout(timer); reject(err); });
    conn.on('data', (d) => {
      answer += d.toString('latin1');
      // The readline monitor echoes each command and prompts "(qemu)" again once it is done.
      if ((answer.match(/\(qemu\)/g) ?? []).length > ids.length + 1) {
        clearTimeout(timer);
        conn.end();
        if (/Error|not found|could not/i.test(answer)) reject(new Error(`monitor: ${answer.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '')}`));
        else resolve();
      }
    });
    conn.write([...ids.map((id) => `set_link ${id} off`), 'cont', ''].join('\n'));
  });
}
