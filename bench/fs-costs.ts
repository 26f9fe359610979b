// What the store's file operations cost on this machine's filesystem (docs/performance.md,
// "How the store gets there"): creating a file, linking one, rewriting one in place, and the
// journal's append + fdatasync against a pack-and-ref write. Usage: npm run bench:fs [-- <dir>]

import * as fs from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const fdatasync = promisify(fs.fdatasync);
const fsync = promisify(fs.fsync);
const N = 300;
const root = mkdtempSync(path.join(process.argv[2] ?? tmpdir(), 'mayu-fs-'));
const dir = (name: string) => {
  const d = path.join(root, name);
  fs.mkdirSync(d);
  return d;
};

/** Mean milliseconds of `op` over N runs. */
async function mean(op: (i: number) => unknown): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < N; i++) await op(i);
  return (performance.now() - t0) / N;
}

const body = Buffer.alloc(6000, 7);
const rows: [string, number][] = [];
const create = dir('create');
rows.push(['create a new file (open O_CREAT, close)', await mean((i) => fs.closeSync(fs.openSync(path.join(create, `f${i}`), 'w')))]);
rows.push(['hard link to an existing file', await mean((i) => fs.linkSync(path.join(create, 'f0'), path.join(create, `l${i}`)))]);
rows.push(['mkdir', await mean((i) => fs.mkdirSync(path.join(create, `d${i}`)))]);
const inPlace = path.join(create, 'f1');
rows.push(['rewrite an existing 6 KB file in place', await mean(() => {
  const fd = fs.openSync(inPlace, fs.constants.O_WRONLY);
  fs.writeSync(fd, body, 0, body.length, 0);
  fs.closeSync(fd);
})]);

// A batch the old way: pack, index and ref lock created and fsync'd, renamed, folders fsync'd.
const packDir = dir('pack');
const refDir = dir('refs');
fs.writeFileSync(path.join(refDir, 'master'), 'x\n');
const packDirFd = fs.openSync(packDir, 'r');
const refDirFd = fs.openSync(refDir, 'r');
rows.push(['batch as pack + index + ref (3 new files, 3 fsync rounds)', await mean(async (i) => {
  const files = [path.join(packDir, `tmp-${i}`), path.join(packDir, `tmp-${i}.idx`), path.join(refDir, 'master.lock')];
  const fds = files.map((f) => fs.openSync(f, 'w'));
  for (const fd of fds) fs.writeSync(fd, body);
  await Promise.all(fds.map((fd) => fsync(fd)));
  for (const fd of fds) fs.closeSync(fd);
  fs.renameSync(files[0]!, path.join(packDir, `p-${i}.pack`));
  fs.renameSync(files[1]!, path.join(packDir, `p-${i}.idx`));
  await fsync(packDirFd);
  fs.renameSync(files[2]!, path.join(refDir, 'master'));
  await fsync(refDirFd);
})]);

// The same batch the journal's way: one append to a file that exists, fdatasync.
const journal = fs.openSync(path.join(root, 'journal'), 'w+');
let offset = 0;
rows.push(['batch as journal append + fdatasync', await mean(async () => {
  offset += fs.writeSync(journal, body, 0, body.length, offset);
  await fdatasync(journal);
})]);
for (const fd of [packDirFd, refDirFd, journal]) fs.closeSync(fd);
fs.rmSync(root, { recursive: true, force: true });

console.log(`file operations on ${path.dirname(root)}, mean of ${N} each`);
for (const [what, ms] of rows) console.log(`${what.padEnd(60)} ${ms.toFixed(3)} ms`);
