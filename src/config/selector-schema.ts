import { z } from 'zod';

// The `selector:` of a profile and the `admission:` section (issue 17), checked at load: an
// invalid rule stops mayu with the file, the key and the reason (src/config/load.ts).

const GLOB = /^[A-Za-z0-9._:+*?-]{1,128}$/;
const serialGlob = z
  .string()
  .regex(GLOB, { message: 'expected a serial or a glob of up to 128 letters, digits, ".", "_", ":", "+", "-", "*" or "?"' })
  .transform((s) => s.toLowerCase());

const MAC_PREFIX = /^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){0,5}$/;
const macPrefix = z
  .string()
  .regex(MAC_PREFIX, { message: 'expected a MAC address or a prefix of it like "00:25:90" (an OUI), octets in hex separated by ":" or "-"' })
  .transform((s) => s.toLowerCase().replace(/-/g, ':'));

/** One value or a list of them, always a list after parsing. */
const oneOrMany = <T extends z.ZodType<string, string>>(item: T) =>
  z.union([item, z.array(item).min(1, { message: 'expected at least one value' })]).transform((v) => (Array.isArray(v) ? v : [v]) as string[]);

const count = z.number().int().min(1).max(64);

export const selectorSchema = z
  .strictObject({
    serials: oneOrMany(serialGlob).optional(),
    macs: oneOrMany(macPrefix).optional(),
    nic_count: z
      .union([count, z.strictObject({ min: count.optional(), max: count.optional() })])
      .transform((n) => (typeof n === 'number' ? { min: n, max: n } : n))
      .refine((n) => n.min === undefined || n.max === undefined || n.min <= n.max, { message: 'min must not be above max' })
      .optional(),
    nic_drivers: oneOrMany(z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, { message: 'expected a kernel driver name like "ixgbe"' })).optional(),
  })
  .refine((s) => Object.values(s).some((v) => v !== undefined), {
    message: 'an empty selector matches every machine: leave it out, or name serials, macs, nic_count or nic_drivers',
  });

export const ADMISSION_MODES = ['open', 'known', 'approve'] as const;

export const admissionSchema = z
  .strictObject({
    /** open: 0.11 (any machine gets a host); known: only the inventory's; approve: new machines wait for an operator. */
    mode: z.enum(ADMISSION_MODES).default('open'),
    /** How long a machine that is not admitted waits before it asks again (its boot script sleeps this long). */
    retry_seconds: z.number().int().min(5).max(3600).default(30),
  })
  .prefault({});

export type AdmissionConfig = z.infer<typeof admissionSchema>;
