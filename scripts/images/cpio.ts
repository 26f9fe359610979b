// newc ("070701") cpio writer, the format the Linux kernel unpacks as an initramfs. Pure: entries
// in, bytes out. Device nodes are plain archive entries, so building an initramfs needs no root
// (no mknod). Every field is written deterministically (mtime 0, uid/gid 0), so the same entries
// always give the same bytes.

export type CpioEntry =
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'file'; path: string; data: Uint8Array | string; mode?: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'char'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const TRAILER = 'TRAILER!!!';

export class CpioError extends Error {}

const hex8 = (n: number) => {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new CpioError(`cpio field out of range: ${n}`);
  return n.toString(16).padStart(8, '0');
};

const pad4 = (n: number) => (4 - (n % 4)) % 4;

function normalizePath(p: string): string {
  const clean = p.replace(/^\/+/, '').replace(/\/+$/, '');
  if (clean === '' || clean.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new CpioError(`invalid archive path ${JSON.stringify(p)}`);
  }
  return clean;
}

function header(fields: { ino: number; mode: number; nlink: number; size: number; rdevMajor: number; rdevMinor: number; nameSize: number }): string {
  return (
    '070701' +
    hex8(fields.ino) +
    hex8(fields.mode) +
    hex8(0) + // uid
    hex8(0) + // gid
    hex8(fields.nlink) +
    hex8(0) + // mtime
    hex8(fields.size) +
    hex8(0) + // devmajor
    hex8(0) + // devminor
    hex8(fields.rdevMajor) +
    hex8(fields.rdevMinor) +
    hex8(fields.nameSize) +
    hex8(0) // check (only used by the "070702" variant)
  );
}

function record(ino: number, name: string, mode: number, data: Uint8Array, rdev: [number, number] = [0, 0], nlink = 1): Buffer {
  const nameBytes = Buffer.from(`${name}\0`, 'utf8');
  const head = Buffer.from(header({ ino, mode, nlink, size: data.length, rdevMajor: rdev[0], rdevMinor: rdev[1], nameSize: nameBytes.length }), 'ascii');
  // Header + name are padded to 4 bytes, then the data is padded to 4 bytes.
  return Buffer.concat([head, nameBytes, Buffer.alloc(pad4(head.length + nameBytes.length)), data, Buffer.alloc(pad4(data.length))]);
}

/**
 * The archive. Missing parent directories are added (mode 0755) before their first child,
 * because the kernel's unpacker does not create them; a path given twice is an error.
 */
export function writeCpio(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const seen = new Set<string>();
  let ino = 1;
  const add = (name: string, mode: number, data: Uint8Array, rdev?: [number, number]) => {
    if (seen.has(name)) throw new CpioError(`duplicate archive path ${name}`);
    seen.add(name);
    parts.push(record(ino++, name, mode, data, rdev, (mode & 0o170000) === S_IFDIR ? 2 : 1));
  };
  const ensureParents = (name: string) => {
    const dirs = name.split('/').slice(0, -1);
    for (let i = 1; i <= dirs.length; i++) {
      const dir = dirs.slice(0, i).join('/');
      if (!seen.has(dir)) add(dir, S_IFDIR | 0o755, new Uint8Array());
    }
  };
  for (const e of entries) {
    const name = normalizePath(e.path);
    ensureParents(name);
    switch (e.type) {
      case 'dir':
        add(name, S_IFDIR | (e.mode ?? 0o755), new Uint8Array());
        break;
      case 'file':
        add(name, S_IFREG | (e.mode ?? 0o644), typeof e.data === 'string' ? Buffer.from(e.data, 'utf8') : e.data);
        break;
      case 'symlink':
        add(name, S_IFLNK | 0o777, Buffer.from(e.target, 'utf8'));
        break;
      case 'char':
        add(name, S_IFCHR | (e.mode ?? 0o600), new Uint8Array(), [e.major, e.minor]);
        break;
    }
  }
  parts.push(record(0, TRAILER, 0, new Uint8Array()));
  return Buffer.concat(parts);
}
