// Debian packages as build inputs, without root: `apt-get download` into a cache folder, then
// `dpkg-deb -x` into a folder of their own. Both steps are skipped when their result exists.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';

export interface DebianPackage {
  name: string;
  version: string;
  /** Folder the package's files were extracted into. */
  root: string;
}

const run = (cmd: string, args: string[], cwd?: string) =>
  execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** The candidate version apt would install (from `apt-cache policy`). */
export function candidateVersion(name: string): string {
  const m = /Candidate:\s*(\S+)/.exec(run('apt-cache', ['policy', name]));
  if (!m || m[1] === '(none)') throw new Error(`apt knows no package ${name} (run apt-get update?)`);
  return m[1]!;
}

/** Candidate versions of several packages from one `apt-cache policy` (each call costs ~1 s). */
export function candidateVersions(names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  let current: string | undefined;
  for (const line of run('apt-cache', ['policy', ...names]).split('\n')) {
    const name = /^(\S+):$/.exec(line)?.[1];
    if (name) current = name;
    const candidate = /^\s+Candidate:\s*(\S+)/.exec(line)?.[1];
    if (current && candidate && candidate !== '(none)') out[current] = candidate;
  }
  for (const n of names) if (!out[n]) throw new Error(`apt knows no package ${n} (run apt-get update?)`);
  return out;
}

/** The package a metapackage depends on, e.g. linux-image-cloud-amd64 -> linux-image-6.1.0-56-cloud-amd64. */
export function resolveDependency(meta: string, prefix: string): string {
  const dep = run('apt-cache', ['depends', meta])
    .split('\n')
    .map((l) => /^\s*Depends:\s*(\S+)/.exec(l)?.[1])
    .find((d) => d?.startsWith(prefix));
  if (!dep) throw new Error(`${meta} depends on no package starting with ${prefix}`);
  return dep;
}

/** Downloads (once) and extracts (once) the candidate version of `name` (`version` when the caller asked apt already) under `cacheDir`. */
export async function fetchPackage(name: string, cacheDir: string, version = candidateVersion(name)): Promise<DebianPackage> {
  const debDir = path.join(cacheDir, 'debs');
  const root = path.join(cacheDir, 'root', `${name}_${version.replace(/[^A-Za-z0-9.+~-]/g, '_')}`);
  if (existsSync(root)) return { name, version, root };
  await mkdir(debDir, { recursive: true });
  const debName = (f: string) => f.startsWith(`${name}_`) && f.endsWith('.deb');
  // apt-get download names the file <name>_<version with ":" as %3a>_<arch>.deb.
  const encoded = version.replace(/:/g, '%3a');
  let deb = (await readdir(debDir)).find((f) => debName(f) && f.includes(`_${encoded}_`));
  if (!deb) {
    run('apt-get', ['download', '-q', `${name}=${version}`], debDir);
    deb = (await readdir(debDir)).find((f) => debName(f) && f.includes(`_${encoded}_`));
    if (!deb) throw new Error(`apt-get download ${name}=${version} left no .deb in ${debDir}`);
  }
  // Extract into a temp folder and rename: an interrupted build never leaves half a package.
  const tmp = `${root}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  run('dpkg-deb', ['-x', path.join(debDir, deb), tmp]);
  await rename(tmp, root);
  return { name, version, root };
}
