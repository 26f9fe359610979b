import { z } from 'zod';
import { ipv4ToInt, isIpv4 } from '../core/addresses.ts';
import { admissionSchema, selectorSchema } from './selector-schema.ts';

// mayu 0.11's config.yaml, accepted unchanged, plus a few documented additions (README).
// Keys we do not know are reported as warnings, not errors, so configs of later 0.x versions load.

const ipv4 = z.string().refine(isIpv4, { message: 'expected an IPv4 address like 10.0.3.31' });

/** zod runs object refinements even when a field already failed: compare only valid addresses. */
const ordered = (a: string, b: string) => !isIpv4(a) || !isIpv4(b) || ipv4ToInt(a) <= ipv4ToInt(b);

const range = z
  .strictObject({ start: ipv4, end: ipv4 })
  .refine((r) => ordered(r.start, r.end), { message: 'start must not be above end' });

const tag = z.string().regex(/^[^=\s]+=.*$/, { message: 'expected a "key=value" tag' });

export const profileSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, { message: 'expected a name of letters, digits, ".", "_" or "-"' }),
  quantity: z.number().int().nonnegative().optional(),
  tags: z.array(tag).default([]),
  coreos_version: z.coerce.string().optional(),
  disable_engine: z.boolean().default(false),
  etcd_cluster_token: z.string().optional(),
  /** Only in profiles/*.yaml: position among the profile files (lower first). */
  order: z.number().optional(),
  /** Which machines the profile may take (issue 17, src/config/selector-schema.ts). */
  selector: selectorSchema.optional(),
});

export const networkSchema = z.looseObject({
  pxe: z.boolean().default(true),
  uefi: z.boolean().default(false),
  interface: z.string().min(1).default('eth0'),
  bind_addr: ipv4,
  bootstrap_range: range.optional(),
  ip_range: range,
  dns: z.array(ipv4).default([]),
  router: ipv4.optional(),
  network_model: z.enum(['singlenic', 'bond']).default('singlenic'),
  /** 0.11 hard-coded a /22; later mayu versions made it this key. */
  subnet_size: z.number().int().min(1).max(32).default(22),
  bond_interfaces: z.array(z.string()).default([]),
  /** mayu 0.11: DHCP ignores installed/running hosts. Default: they get DHCP and iPXE sends them to their disk. */
  ignore_installed_macs: z.boolean().default(false),
});

/** Additions to 0.11 (README "Security"); the matching flags of `mayu serve` win over these. */
export const securitySchema = z
  .strictObject({
    admin_token_file: z.string().min(1).optional(),
    report_key_file: z.string().min(1).optional(),
    insecure_reports: z.boolean().default(false),
    tls: z
      .strictObject({
        port: z.number().int().min(0).max(65535).optional(),
        cert_file: z.string().min(1).optional(),
        key_file: z.string().min(1).optional(),
        ca_file: z.string().min(1).optional(),
      })
      .optional(),
  })
  .prefault({});

const SIZE_UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 };

/** A byte count: a whole number, or a number with a unit ("64MiB", "1.5 GiB", "500MB"). */
const SIZE = /^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)\s*$/;
const SIZE_MESSAGE = 'expected a size like 67108864, "64MiB" or "1GiB"';

/** A byte count: a whole number, or a number with a unit ("64MiB", "1.5 GiB", "500MB"). */
const byteSize = z
  .union([z.number({ error: SIZE_MESSAGE }).int({ error: SIZE_MESSAGE }).nonnegative({ error: SIZE_MESSAGE }), z.string().regex(SIZE, { error: SIZE_MESSAGE })], { error: SIZE_MESSAGE })
  .transform((v) => {
    if (typeof v === 'number') return v;
    const [, n, unit] = SIZE.exec(v)!;
    return Math.floor(Number(n) * SIZE_UNITS[unit!]!);
  });

/**
 * Free-space guard of the cluster directory's disk (README "Full or failing disk"). Defaults:
 * 64 MiB holds tens of thousands of changes of known hosts (a few KB each in the journal and
 * packs) plus a pack merge, which writes the merged pack before it removes the old ones; 1 %
 * because file systems slow down and fragment when nearly full, and logs on the same disk grow.
 */
export const storageSchema = z
  .strictObject({
    /** New hosts are refused while the disk has less free; 0 turns the byte limit off. */
    min_free_bytes: byteSize.default(64 * 1024 * 1024),
    /** ... or less than this share of the file system; 0 turns it off. */
    min_free_percent: z.number().min(0).max(50).default(1),
  })
  .prefault({});

const bucket = (rate: number, burst: number) =>
  z.strictObject({ rate: z.number().min(0).max(1e6).default(rate), burst: z.number().int().min(1).max(1e7).default(burst) }).prefault({});

/**
 * Registration limits and overload bounds (README "Limits and overload"; src/http/load-shedding.ts).
 * The count limits never touch a rack booting normally (reasons in the README; the latency gates
 * may delay part of a burst on a busy host by one Retry-After): a machine registers
 * once per install from its own address, and a whole rack powering on at once is far below
 * what the bounds let through.
 */
export const limitsSchema = z
  .strictObject({
    /** New registrations per source address: token bucket; rate 0 turns it off. */
    new_hosts_per_source: bucket(2, 20),
    /** Sources the per-source bucket leaves alone (the overall one still counts them): mayu's own host. */
    exempt_sources: z.array(z.string().min(1)).default(['127.0.0.1', '::1', '::ffff:127.0.0.1']),
    /** New registrations from everybody together; rate 0 turns it off. */
    new_hosts: bucket(500, 2000),
    /** New registrations get 503 while more requests than this are in flight. */
    max_in_flight_new: z.number().int().min(1).default(128),
    /** ... or while more changes than this wait to be stored. */
    max_write_queue_new: z.number().int().min(1).default(200),
    /** ... or while the event loop runs this late, or changes take this long to be stored (ms; 0: off). */
    max_lag_ms_new: z.number().int().min(0).default(300),
    max_commit_ms_new: z.number().int().min(0).default(500),
    /** ... or while the event loop was busy more than this share of the time (0..1; 0: off). */
    max_busy_new: z.number().min(0).max(1).default(0.8),
    /**
     * Descriptors of the HTTP port accepting connections (src/http/accept-fanout.ts): Node 20
     * accepts one connection per descriptor and event-loop turn. 1: the socket alone.
     */
    accept_descriptors: z.number().int().min(1).max(1024).default(64),
    /** Every machine request gets 503 past this many in flight (known hosts keep priority below it). */
    max_in_flight: z.number().int().min(1).default(1024),
    /** Retry-After of a 503: between this and twice it. */
    retry_after_seconds: z.number().int().min(1).max(3600).default(5),
  })
  .prefault({})
  .refine((l) => l.max_in_flight >= l.max_in_flight_new, { message: 'max_in_flight must not be below max_in_flight_new (known hosts keep priority)', path: ['max_in_flight'] });

export const configSchema = z
  .looseObject({
    default_coreos_version: z.coerce.string().min(1),
    network: networkSchema,
    profiles: z.array(profileSchema).default([]),
    templates_env: z.record(z.string(), z.unknown()).default({}),
    /** Serve Ignition (POST /final-ignition-config.json) instead of cloud-config to installers. */
    use_ignition: z.boolean().default(false),
    security: securitySchema,
    storage: storageSchema,
    limits: limitsSchema,
    /** Which machines get a host (issue 17, src/config/selector-schema.ts). */
    admission: admissionSchema,
    /** Command run when a reinstall is requested (README "Host lifecycle"). */
    power_hook: z
      .strictObject({
        command: z.string().min(1),
        timeout_ms: z.number().int().min(100).max(3_600_000).default(60_000),
      })
      .optional(),
    /** Push the cluster repo to a remote after commits (README "Audit push"). */
    audit_push: z
      .strictObject({
        // A leading "-" would reach git as an option.
        url: z.string().min(1).regex(/^[^-\s]/, { message: 'expected a git URL or a path (not starting with "-")' }),
        branch: z.string().regex(/^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]+$/, { message: 'expected a branch name of letters, digits, ".", "_", "/" or "-"' }).default('master'),
        interval_ms: z.number().int().min(0).default(5_000),
        max_backoff_ms: z.number().int().min(100).default(300_000),
        timeout_ms: z.number().int().min(1_000).default(120_000),
      })
      .optional(),
    /** Stuck-install detection (README "Stuck installs"): the threshold; default an hour. */
    stuck_installs: z
      .strictObject({ after_seconds: z.number().min(1).max(7 * 24 * 3600).default(3600) })
      .prefault({}),
    /** The etcd store (`mayu serve --store etcd`, README "Replicas with etcd"). */
    etcd: z
      .strictObject({
        endpoints: z.array(z.string().regex(/^https?:\/\/[^\s/]+$/, { message: 'expected an endpoint URL like http://10.0.1.5:2379' })).min(1),
        prefix: z.string().regex(/^\/[^\s]*\/$/, { message: 'expected a key prefix starting and ending with "/", like /mayu/' }).default('/mayu/'),
        tls: z
          .strictObject({ ca_file: z.string().min(1), cert_file: z.string().min(1).optional(), key_file: z.string().min(1).optional() })
          .optional(),
        request_timeout_ms: z.number().int().min(100).max(60_000).default(3000),
        lease_ttl_seconds: z.number().int().min(2).max(300).default(5),
      })
      .optional(),
  })
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.profiles.forEach((p, i) => {
      if (seen.has(p.name)) ctx.addIssue({ code: 'custom', path: ['profiles', i, 'name'], message: `duplicate profile name "${p.name}"` });
      seen.add(p.name);
    });
    const b = c.network.bootstrap_range;
    const ip = c.network.ip_range;
    if (b && ip && isIpv4(b.start) && isIpv4(ip.start) && ordered(b.start, ip.end) && ordered(ip.start, b.end)) {
      ctx.addIssue({ code: 'custom', path: ['network', 'ip_range'], message: 'overlaps network.bootstrap_range' });
    }
    if (c.network.pxe && !b) {
      ctx.addIssue({ code: 'custom', path: ['network', 'bootstrap_range'], message: 'required when network.pxe is true' });
    }
  });

export type ProfileConfig = z.infer<typeof profileSchema>;
export type NetworkConfig = z.infer<typeof networkSchema>;
export type MayuConfig = z.infer<typeof configSchema>;
export type SecurityConfig = z.infer<typeof securitySchema>;
export type StorageConfig = z.infer<typeof storageSchema>;
export type LimitsConfig = z.infer<typeof limitsSchema>;

/** Top-level and network keys this version reads; anything else is reported as ignored. */
export const KNOWN_KEYS = {
  top: ['default_coreos_version', 'network', 'profiles', 'templates_env', 'use_ignition', 'security', 'power_hook', 'audit_push', 'storage', 'etcd', 'stuck_installs', 'admission', 'limits'],
  network: Object.keys(networkSchema.shape),
};
