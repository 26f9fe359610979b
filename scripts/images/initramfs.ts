// The file list of an initramfs: busybox-static with one symlink per applet, the device nodes the
// kernel needs before devtmpfs is mounted, kernel modules with the loader's tables, and the caller's
// own files (/init, ...). Pure: inputs in, cpio entries out.
import type { CpioEntry } from './cpio.ts';
import { modulesAliasIndex } from './kernel-modules.ts';

export interface KernelModule {
  name: string;
  data: Uint8Array;
}

export interface InitramfsInputs {
  busybox: Uint8Array;
  /** `busybox --list`. */
  applets: readonly string[];
  /** Every module file /init may load (/lib/modules/<name>.ko). */
  modules: readonly KernelModule[];
  /** The loader's tables (see kernel-modules.ts): modules.alias (and its keyed form), modules.dep, and the file-system modules mayu-modload loads before a mount. */
  moduleTables?: { alias: string; dep: string; filesystems: readonly string[] };
  /** The caller's files, e.g. /init. */
  files: readonly CpioEntry[];
}

export function initramfsEntries(inputs: InitramfsInputs): CpioEntry[] {
  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'etc', 'lib', 'proc', 'run', 'sys', 'tmp', 'root'].map((d): CpioEntry => ({ type: 'dir', path: d })),
    { type: 'symlink', path: 'sbin', target: 'bin' },
    // /dev/console must exist when the kernel starts /init (its stdin/stdout); /dev/null for
    // the shell before devtmpfs is mounted over /dev.
    { type: 'char', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
    { type: 'char', path: 'dev/null', major: 1, minor: 3, mode: 0o666 },
    { type: 'file', path: 'bin/busybox', data: inputs.busybox, mode: 0o755 },
  ];
  for (const applet of [...new Set(inputs.applets)].sort()) {
    if (applet === 'busybox' || applet.includes('/')) continue;
    entries.push({ type: 'symlink', path: `bin/${applet}`, target: 'busybox' });
  }
  if (inputs.modules.length) {
    for (const m of inputs.modules) entries.push({ type: 'file', path: `lib/modules/${m.name}.ko`, data: m.data });
  }
  if (inputs.moduleTables) {
    const t = inputs.moduleTables;
    entries.push({ type: 'file', path: 'lib/modules/modules.alias', data: t.alias });
    entries.push({ type: 'file', path: 'lib/modules/modules.alias.keyed', data: modulesAliasIndex(t.alias) });
    entries.push({ type: 'file', path: 'lib/modules/modules.dep', data: t.dep });
    entries.push({ type: 'file', path: 'lib/modules/filesystems', data: t.filesystems.map((n) => `${n}\n`).join('') });
  }
  entries.push(...inputs.files);
  return entries;
}
