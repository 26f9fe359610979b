import path from 'node:path';
import { z } from 'zod';

// Structural check of an Ignition spec 3.3.0 config, in process, before it is served: a machine
// that gets an invalid config fails its first boot with no way to report back. Mirrors what
// Ignition 2.14's validator rejects for the parts mayu emits and the common ones; like Ignition,
// unknown keys are errors. (The tests also run Debian's real `ignition-validate`.)

const UNIT_SUFFIXES = ['.service', '.socket', '.device', '.mount', '.automount', '.swap', '.target', '.path', '.timer', '.snapshot', '.slice', '.scope'];
const SOURCE_SCHEMES = ['data', 'http', 'https', 'tftp', 's3', 'gs', 'arn'];

const opt = <T extends z.ZodType>(t: T) => t.nullable().optional();

const absolutePath = z.string().superRefine((p, ctx) => {
  if (!p.startsWith('/')) ctx.addIssue({ code: 'custom', message: `path ${JSON.stringify(p)} is not absolute` });
  else if (p !== '/' && (path.posix.normalize(p) !== p || p.endsWith('/'))) ctx.addIssue({ code: 'custom', message: `path ${JSON.stringify(p)} is not clean (no "//", "." or ".." parts, no trailing "/")` });
});

function sourceProblem(url: string): string | undefined {
  const scheme = /^([a-z0-9+.-]+):/i.exec(url)?.[1]?.toLowerCase();
  if (!scheme || !SOURCE_SCHEMES.includes(scheme)) return `unsupported source URL scheme in ${JSON.stringify(url.slice(0, 40))} (allowed: ${SOURCE_SCHEMES.join(', ')})`;
  if (scheme === 'data') {
    const m = /^data:([^,]*),(.*)$/s.exec(url);
    if (!m) return 'data URL without ","';
    if (/%(?![0-9A-Fa-f]{2})/.test(m[2]!)) return 'data URL with an invalid percent-escape';
    if (/;base64$/i.test(m[1]!) && !/^[A-Za-z0-9+/=\s%]*$/.test(m[2]!)) return 'data URL with invalid base64';
    return undefined;
  }
  if (scheme === 'http' || scheme === 'https') {
    try {
      new URL(url);
    } catch {
      return `invalid URL ${JSON.stringify(url.slice(0, 60))}`;
    }
  }
  return undefined;
}

const sourceUrl = z.string().superRefine((s, ctx) => {
  const problem = sourceProblem(s);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

const resource = z.strictObject({
  compression: opt(z.enum(['', 'gzip'])),
  httpHeaders: opt(z.array(z.strictObject({ name: z.string().min(1), value: opt(z.string()) }))),
  source: opt(sourceUrl),
  verification: opt(z.strictObject({ hash: opt(z.string().regex(/^(sha256|sha512)-[0-9a-f]+$/, 'expected "sha256-<hex>" or "sha512-<hex>"')) })),
});

const nodeOwner = z.strictObject({ id: opt(z.number().int()), name: opt(z.string()) });
const node = { path: absolutePath, overwrite: opt(z.boolean()), user: opt(nodeOwner), group: opt(nodeOwner) };
const mode = opt(z.number().int().min(0).max(0o7777, 'mode must be at most 0o7777 (4095)'));

const file = z.strictObject({ ...node, contents: opt(resource), append: opt(z.array(resource)), mode });
const directory = z.strictObject({ ...node, mode });
const link = z.strictObject({ ...node, target: z.string().min(1), hard: opt(z.boolean()) });

const partition = z.strictObject({
  label: opt(z.string()), number: opt(z.number().int()), sizeMiB: opt(z.number().int()), startMiB: opt(z.number().int()),
  typeGuid: opt(z.string()), guid: opt(z.string()), wipePartitionEntry: opt(z.boolean()), shouldExist: opt(z.boolean()), resize: opt(z.boolean()),
});
const disk = z.strictObject({ device: absolutePath, wipeTable: opt(z.boolean()), partitions: opt(z.array(partition)) });
const filesystem = z.strictObject({
  device: absolutePath, format: opt(z.string()), path: opt(absolutePath), wipeFilesystem: opt(z.boolean()), label: opt(z.string()),
  uuid: opt(z.string()), options: opt(z.array(z.string())), mountOptions: opt(z.array(z.string())),
});
const raid = z.strictObject({ name: z.string().min(1), level: opt(z.string()), devices: opt(z.array(absolutePath)), spares: opt(z.number().int()), options: opt(z.array(z.string())) });
/** LUKS volumes are checked loosely (name and device only); mayu does not emit them. */
const luks = z.looseObject({ name: z.string().min(1), device: opt(absolutePath) });

const unitName = z.string().refine((n) => UNIT_SUFFIXES.includes(path.posix.extname(n)), {
  message: `unit name must end in one of ${UNIT_SUFFIXES.join(' ')}`,
});
const dropin = z.strictObject({ name: z.string().regex(/^[^/]+\.conf$/, 'drop-in name must end in .conf'), contents: opt(z.string()) });
const unit = z.strictObject({ name: unitName, enabled: opt(z.boolean()), mask: opt(z.boolean()), contents: opt(z.string()), dropins: opt(z.array(dropin)) });

const user = z.strictObject({
  name: z.string().min(1), passwordHash: opt(z.string()), sshAuthorizedKeys: opt(z.array(z.string())), uid: opt(z.number().int()),
  gecos: opt(z.string()), homeDir: opt(z.string()), noCreateHome: opt(z.boolean()), primaryGroup: opt(z.string()), groups: opt(z.array(z.string())),
  noUserGroup: opt(z.boolean()), noLogInit: opt(z.boolean()), shell: opt(z.string()), system: opt(z.boolean()), shouldExist: opt(z.boolean()),
});
const group = z.strictObject({ name: z.string().min(1), gid: opt(z.number().int()), passwordHash: opt(z.string()), shouldExist: opt(z.boolean()), system: opt(z.boolean()) });

/** Ignition refuses two entries for one path (files, directories and links share one namespace). */
function noDuplicates<T>(items: readonly T[] | null | undefined, key: (t: T) => string, where: string, ctx: z.RefinementCtx): void {
  const seen = new Set<string>();
  (items ?? []).forEach((item, i) => {
    const k = key(item);
    if (seen.has(k)) ctx.addIssue({ code: 'custom', path: [...where.split('.'), i], message: `duplicate entry ${JSON.stringify(k)}` });
    seen.add(k);
  });
}

const storage = z
  .strictObject({
    disks: opt(z.array(disk)), raid: opt(z.array(raid)), filesystems: opt(z.array(filesystem)), luks: opt(z.array(luks)),
    files: opt(z.array(file)), directories: opt(z.array(directory)), links: opt(z.array(link)),
  })
  .superRefine((s, ctx) => {
    const paths = new Set<string>();
    for (const kind of ['files', 'directories', 'links'] as const) {
      (s[kind] ?? []).forEach((entry, i) => {
        if (paths.has(entry.path)) ctx.addIssue({ code: 'custom', path: [kind, i, 'path'], message: `duplicate entry ${JSON.stringify(entry.path)}` });
        paths.add(entry.path);
      });
    }
  });

const systemd = z
  .strictObject({ units: opt(z.array(unit)) })
  .superRefine((s, ctx) => noDuplicates(s.units, (u) => u.name, 'units', ctx));

const ignitionConfig = z.strictObject({
  version: z.literal('3.3.0', { error: 'ignition.version must be exactly "3.3.0"' }),
  config: opt(z.strictObject({ merge: opt(z.array(resource)), replace: opt(resource) })),
  timeouts: opt(z.strictObject({ httpResponseHeaders: opt(z.number().int()), httpTotal: opt(z.number().int()) })),
  security: opt(z.strictObject({ tls: opt(z.strictObject({ certificateAuthorities: opt(z.array(resource)) })) })),
  proxy: opt(z.strictObject({ httpProxy: opt(z.string()), httpsProxy: opt(z.string()), noProxy: opt(z.array(z.string())) })),
});

export const ignitionSchema = z.strictObject({
  ignition: ignitionConfig,
  kernelArguments: opt(z.strictObject({ shouldExist: opt(z.array(z.string())), shouldNotExist: opt(z.array(z.string())) })),
  passwd: opt(
    z
      .strictObject({ users: opt(z.array(user)), groups: opt(z.array(group)) })
      .superRefine((p, ctx) => {
        noDuplicates(p.users, (u) => u.name, 'users', ctx);
        noDuplicates(p.groups, (g) => g.name, 'groups', ctx);
      }),
  ),
  storage: opt(storage),
  systemd: opt(systemd),
});

export type IgnitionConfig = z.infer<typeof ignitionSchema>;

/** "$.storage.files[0].path" */
function jsonPath(segments: readonly PropertyKey[]): string {
  return '$' + segments.map((s) => (typeof s === 'number' ? `[${s}]` : `.${String(s)}`)).join('');
}

/** Problems with a parsed Ignition config, each "<JSON path>: <message>"; empty when valid. */
export function ignitionProblems(doc: unknown): string[] {
  const result = ignitionSchema.safeParse(doc);
  if (result.success) return [];
  return result.error.issues.map((issue) => `${jsonPath(issue.path)}: ${issue.message}`);
}
