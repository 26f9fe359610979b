import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { macFor } from './mayu-process.ts';
import { indexOf, type Ack, type Route } from './storm-client.ts';

// After a storm (or right after a kill -9): what is on disk, read with the native git only, and
// the checks every storm must pass. Each check returns violations as sentences; [] means clean.

type Conf = Record<string, unknown>;

function run(dir: string, args: string[], input?: string) {
  return spawnSync('git', ['-C', dir, ...args], { input: input === undefined ? undefined : Buffer.from(input), maxBuffer: 1 << 30 });
}

/** `git cat-file --batch` of every object spec (`<rev>:<path>`), in order; null when missing. */
export function catFileBatch(dir: string, specs: readonly string[]): (Buffer | null)[] {
  const res = run(dir, ['cat-file', '--batch'], specs.map((s) => `${s}\n`).join(''));
  if (res.status !== 0) throw new Error(`git cat-file --batch in ${dir}: ${res.stderr.toString()}`);
  const out = res.stdout;
  const objects: (Buffer | null)[] = [];
  let pos = 0;
  for (let i = 0; i < specs.length; i++) {
    const eol = out.indexOf(10, pos);
    const header = out.subarray(pos, eol).toString('utf8');
    pos = eol + 1;
    if (header.endsWith(' missing') || header.endsWith(' ambiguous')) {
      objects.push(null);
      continue;
    }
    const size = Number(header.split(' ')[2]);
    objects.push(out.subarray(pos, pos + size));
    pos += size + 1; // content, then a newline
  }
  return objects;
}

/** `HEAD:<serial>/conf.json` of every serial, parsed; null when absent. */
export function gitHeadConfs(dir: string, serials: readonly string[]): Map<string, Conf | null> {
  const blobs = catFileBatch(dir, serials.map((s) => `HEAD:${s}/conf.json`));
  return new Map(serials.map((s, i) => [s, blobs[i] ? (JSON.parse(blobs[i].toString('utf8')) as Conf) : null]));
}

/** How often each commit subject occurs in HEAD's history. */
export function gitSubjectCounts(dir: string): Map<string, number> {
  const res = run(dir, ['log', '--format=%s', 'HEAD']);
  if (res.status !== 0) throw new Error(`git log in ${dir}: ${res.stderr.toString()}`);
  const counts = new Map<string, number>();
  for (const s of res.stdout.toString('utf8').split('\n')) if (s) counts.set(s, (counts.get(s) ?? 0) + 1);
  return counts;
}

export function gitCommitTotal(dir: string): number {
  return Number(run(dir, ['rev-list', '--count', 'HEAD']).stdout.toString().trim());
}

/** `git fsck --full --strict`; dangling objects (a batch cut off by kill -9) are not errors. */
export function gitFsckResult(dir: string): { ok: boolean; output: string } {
  const res = run(dir, ['fsck', '--full', '--strict', '--no-dangling', '--no-progress']);
  return { ok: res.status === 0, output: `${res.stdout.toString()}${res.stderr.toString()}`.trim() };
}

/**
 * `git fsck --full` of a repo a live mayu (or history writer) may be merging packs in: a result counts only
 * when the set of packs was the same before and after it (fsck does not look again for objects of
 * a pack that was merged away under it, as other git commands do); tried up to five times.
 */
export function gitFsckSettled(dir: string): { ok: boolean; output: string; tries: number } {
  const packs = () => readdirSync(path.join(dir, '.git/objects/pack')).sort().join(',');
  let last = { ok: false, output: '' };
  for (let tries = 1; tries <= 5; tries++) {
    const before = packs();
    last = gitFsckResult(dir);
    if (last.ok || packs() === before) return { ...last, tries };
  }
  return { ...last, tries: 5 };
}

/** `git status --porcelain` (empty: the index is HEAD's and the working tree matches it). */
export function gitStatusPorcelain(dir: string): string {
  const res = run(dir, ['status', '--porcelain']);
  return `${res.stdout.toString()}${res.stderr.toString()}`;
}

/** Files git does not recognise under .git/objects (`git count-objects -v` "garbage"), e.g. temp files left by a kill. */
export function gitGarbage(dir: string): { count: number; kib: number; files: string[] } {
  const res = run(dir, ['count-objects', '-v']);
  const out = res.stdout.toString('utf8');
  const num = (key: string) => Number(new RegExp(`^${key}: (\\d+)$`, 'm').exec(out)?.[1] ?? 0);
  const files = res.stderr.toString('utf8').split('\n').filter((l) => l.includes('garbage found')).map((l) => l.replace(/^.*garbage found: /, ''));
  return { count: num('garbage'), kib: num('size-garbage'), files };
}

/**
 * Refs other than the branch mayu writes. A temp file left in .git/refs/heads by a kill during
 * the ref update is read by git as a branch (an empty one breaks fsck and gc).
 */
export function strayRefs(dir: string): string[] {
  const res = run(dir, ['for-each-ref', '--format=%(refname) %(objectname)']);
  if (res.status !== 0) return [`git for-each-ref failed: ${res.stderr.toString().trim()}`];
  return res.stdout.toString('utf8').split('\n').filter((r) => r && !r.startsWith('refs/heads/master '));
}

const STATE_ORDER = ['unknown', 'configured', 'installing', 'installed', 'running'];

/** What an acknowledged request guarantees: a lower bound on the state, commits, and fields. */
const ACK_IMPLIES: Partial<Record<Route, { minState: string; messages: string[]; fields: (c: Conf, serial: string) => string | undefined }>> = {
  'first-stage-script': {
    minState: 'unknown',
    messages: ['host created', 'updated with predefined settings', 'updated host InternalAddr', 'updated host profile and metadata', 'set default etcd discovery token'],
    fields: (c) => (c.InternalAddr && c.Profile && c.MachineID ? undefined : 'InternalAddr, Profile and MachineID set'),
  },
  'final-cloud-config': {
    minState: 'installing',
    messages: ['collected host mac addresses', 'updated host connected nic', 'updated host state to installing'],
    fields: (c, serial) => ((c.MacAddresses as string[] | undefined)?.includes(macFor(indexOf(serial))) && c.ConnectedNIC === 'ens3' ? undefined : `MAC ${macFor(indexOf(serial))} and ConnectedNIC ens3 recorded`),
  },
  set_installed: { minState: 'installed', messages: ['updated state to installed'], fields: () => undefined },
  boot_complete: {
    minState: 'running',
    messages: ['updated state to running'],
    fields: (c) => (c.CoreOSVersion === 'x' && c.LastBoot !== '0001-01-01T00:00:00Z' ? undefined : 'CoreOSVersion x and LastBoot set'),
  },
};

/** Every acknowledged change must be in HEAD's conf.json and have its commit in the history. */
export function checkAcks(acks: readonly Ack[], confs: Map<string, Conf | null>, subjects: Map<string, number>): string[] {
  const violations: string[] = [];
  for (const ack of acks) {
    const implied = ACK_IMPLIES[ack.route];
    if (!implied) continue;
    const where = `${ack.route} of ${ack.serial} (acknowledged by server #${ack.generation})`;
    const conf = confs.get(ack.serial);
    if (!conf) {
      violations.push(`${where}: no ${ack.serial}/conf.json at HEAD`);
      continue;
    }
    if (STATE_ORDER.indexOf(String(conf.State)) < STATE_ORDER.indexOf(implied.minState)) {
      violations.push(`${where}: HEAD state is ${String(conf.State)}, expected at least ${implied.minState}`);
    }
    const missing = implied.fields(conf, ack.serial);
    if (missing) violations.push(`${where}: HEAD conf.json lacks ${missing}: ${JSON.stringify(conf)}`);
    for (const m of implied.messages) {
      if (!subjects.get(`${ack.serial}: ${m}`)) violations.push(`${where}: no commit "${ack.serial}: ${m}" in git log`);
    }
  }
  return violations;
}

/**
 * The end state of a storm in which every machine finished: all hosts known and running, API
 * equal to git HEAD, no address given twice, no profile over its quantity.
 */
export function checkFinalHosts(apiHosts: readonly Conf[], confs: Map<string, Conf | null>, serials: readonly string[], quantities: Readonly<Record<string, number>>): string[] {
  const violations: string[] = [];
  const bySerial = new Map(apiHosts.map((h) => [String(h.Serial), h]));
  if (apiHosts.length !== serials.length) violations.push(`GET /admin/hosts lists ${apiHosts.length} hosts, expected ${serials.length}`);
  for (const serial of serials) {
    const api = bySerial.get(serial);
    const conf = confs.get(serial);
    if (!api) violations.push(`${serial}: missing from GET /admin/hosts`);
    else if (api.State !== 'running') violations.push(`${serial}: state ${String(api.State)}, expected running`);
    if (!conf) violations.push(`${serial}: no conf.json at HEAD`);
    else if (api && JSON.stringify(api) !== JSON.stringify(conf)) violations.push(`${serial}: GET /admin/hosts differs from git HEAD:\n  api ${JSON.stringify(api)}\n  git ${JSON.stringify(conf)}`);
  }
  const owners = new Map<string, string>();
  for (const h of apiHosts) {
    const addr = String(h.InternalAddr ?? '');
    if (!addr) violations.push(`${String(h.Serial)}: no InternalAddr`);
    else if (owners.has(addr)) violations.push(`${addr} given to both ${owners.get(addr)} and ${String(h.Serial)}`);
    else owners.set(addr, String(h.Serial));
  }
  for (const [profile, quantity] of Object.entries(quantities)) {
    const holders = apiHosts.filter((h) => h.Profile === profile).length;
    if (holders > quantity) violations.push(`profile ${profile}: ${holders} hosts, quantity is ${quantity}`);
    if (serials.length >= quantity && holders < quantity) violations.push(`profile ${profile}: only ${holders} hosts, expected it filled to ${quantity}`);
  }
  return violations;
}
