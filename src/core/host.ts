// The Host record as mayu 0.11 stores it in clusters/<serial>/conf.json and answers on
// GET /admin/hosts. Field names and order are the wire format; do not rename.

export const HOST_STATES = ['unknown', 'configured', 'installing', 'installed', 'running'] as const;
export type HostState = (typeof HOST_STATES)[number];

export const ZERO_TIME = '0001-01-01T00:00:00Z';

export type OverrideValue = string | number | boolean | null | OverrideValue[] | { [k: string]: OverrideValue };

export interface Host {
  Id?: number;
  ProviderId?: string;
  Enabled?: boolean;
  Name?: string;
  Serial?: string;
  MacAddresses?: string[];
  InternalAddr?: string;
  BondInterfaces?: string[];
  Cabinet?: number;
  MachineOnCabinet?: number;
  IPMIAddr?: string;
  Hostname?: string;
  MachineID?: string;
  ConnectedNIC: string;
  FleetMetadata?: string[];
  FleetDisableEngine?: boolean;
  KeepDiskData?: boolean;
  /** RFC 3339 as stored; ZERO_TIME when the host never booted. Kept as text so nanoseconds survive. */
  LastBoot: string;
  Profile?: string;
  EtcdClusterToken?: string;
  Overrides?: Record<string, OverrideValue>;
  State: HostState;
  CoreOSVersion?: string;
  MayuVersion?: string;
  DockerVersion?: string;
  FleetVersion?: string;
  EtcdVersion?: string;
  RktVersion?: string;
  K8sVersion?: string;
  YochuVersion?: string;
}

export const VERSION_FIELDS = [
  'CoreOSVersion', 'MayuVersion', 'DockerVersion', 'FleetVersion',
  'EtcdVersion', 'RktVersion', 'K8sVersion', 'YochuVersion',
] as const satisfies readonly (keyof Host)[];

type FieldKind = 'int' | 'uint' | 'bool' | 'string' | 'strings' | 'time' | 'map' | 'state';

/** Key order and Go type of every field, as encoding/json emits them. */
const FIELDS: readonly { key: keyof Host; kind: FieldKind; always?: boolean }[] = [
  { key: 'Id', kind: 'int' },
  { key: 'ProviderId', kind: 'string' },
  { key: 'Enabled', kind: 'bool' },
  { key: 'Name', kind: 'string' },
  { key: 'Serial', kind: 'string' },
  { key: 'MacAddresses', kind: 'strings' },
  { key: 'InternalAddr', kind: 'string' },
  { key: 'BondInterfaces', kind: 'strings' },
  { key: 'Cabinet', kind: 'uint' },
  { key: 'MachineOnCabinet', kind: 'uint' },
  { key: 'IPMIAddr', kind: 'string' },
  { key: 'Hostname', kind: 'string' },
  { key: 'MachineID', kind: 'string' },
  { key: 'ConnectedNIC', kind: 'string', always: true },
  { key: 'FleetMetadata', kind: 'strings' },
  { key: 'FleetDisableEngine', kind: 'bool' },
  { key: 'KeepDiskData', kind: 'bool' },
  { key: 'LastBoot', kind: 'time', always: true },
  { key: 'Profile', kind: 'string' },
  { key: 'EtcdClusterToken', kind: 'string' },
  { key: 'Overrides', kind: 'map' },
  { key: 'State', kind: 'state', always: true },
  ...VERSION_FIELDS.map((key) => ({ key, kind: 'string' as const })),
];

export function newHost(serial: string): Host {
  return { Enabled: true, Serial: serial, ConnectedNIC: '', LastBoot: ZERO_TIME, State: 'unknown' };
}

function isEmpty(kind: FieldKind, v: unknown): boolean {
  if (v === undefined || v === null) return true;
  switch (kind) {
    case 'int': case 'uint': return v === 0;
    case 'bool': return v === false;
    case 'string': return v === '';
    case 'strings': return (v as unknown[]).length === 0;
    case 'map': return Object.keys(v as object).length === 0;
    default: return false;
  }
}

/** JSON string literal the way Go's encoding/json writes it (HTML-safe escapes included). */
export function goJsonString(s: string): string {
  return goHtmlSafe(JSON.stringify(s));
}

/** Go's encoding/json escapes of JSON text: <, >, &, U+2028, U+2029 (they occur only inside strings). */
export function goHtmlSafe(json: string): string {
  return json.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function encodeValue(v: unknown, indent: string, step: string): string {
  if (typeof v === 'string') return goJsonString(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return JSON.stringify(v);
  const inner = indent + step;
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return `[\n${v.map((x) => inner + encodeValue(x, inner, step)).join(',\n')}\n${indent}]`;
  }
  // Go sorts map keys.
  const keys = Object.keys(v as object).sort();
  if (keys.length === 0) return '{}';
  const obj = v as Record<string, unknown>;
  return `{\n${keys.map((k) => `${inner}${goJsonString(k)}: ${encodeValue(obj[k], inner, step)}`).join(',\n')}\n${indent}}`;
}

/** conf.json bytes: Go's json.MarshalIndent(host, "", "  "), no trailing newline. */
export function encodeHost(host: Host, step = '  '): string {
  const parts: string[] = [];
  for (const f of FIELDS) {
    const v = host[f.key];
    if (!f.always && isEmpty(f.kind, v)) continue;
    const value = v === undefined ? (f.kind === 'time' ? ZERO_TIME : f.kind === 'state' ? 'unknown' : '') : v;
    parts.push(`${step}${goJsonString(f.key)}: ${encodeValue(value, step, step)}`);
  }
  return `{\n${parts.join(',\n')}\n}`;
}

/** Compact form for HTTP answers (GET /admin/hosts items): same keys and order. */
export function hostToJsonObject(host: Host): Record<string, unknown> {
  return JSON.parse(encodeHost(host)) as Record<string, unknown>;
}

export class HostDecodeError extends Error {}

/**
 * Reads a Host from parsed JSON. Unknown keys are ignored (mayuctl sends whole objects and
 * newer clients may add fields); a known key with the wrong type is an error.
 */
export function decodeHost(raw: unknown): Host {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new HostDecodeError('host must be a JSON object');
  const obj = raw as Record<string, unknown>;
  const host: Host = { ConnectedNIC: '', LastBoot: ZERO_TIME, State: 'unknown' };
  const out = host as unknown as Record<string, unknown>;
  for (const f of FIELDS) {
    const v = obj[f.key];
    if (v === undefined || v === null) continue;
    const bad = () => new HostDecodeError(`field ${f.key}: expected ${f.kind}, got ${JSON.stringify(v).slice(0, 40)}`);
    switch (f.kind) {
      case 'int':
        if (!Number.isSafeInteger(v)) throw bad();
        break;
      case 'uint':
        if (!Number.isSafeInteger(v) || (v as number) < 0) throw bad();
        break;
      case 'bool':
        if (typeof v !== 'boolean') throw bad();
        break;
      case 'string':
        if (typeof v !== 'string') throw bad();
        break;
      case 'strings':
        if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw bad();
        break;
      case 'time':
        if (typeof v !== 'string' || !isRfc3339(v)) throw bad();
        break;
      case 'map':
        if (typeof v !== 'object' || Array.isArray(v)) throw bad();
        break;
      case 'state':
        if (!isHostState(v)) throw new HostDecodeError(`field State: unknown state ${JSON.stringify(v)}`);
        break;
    }
    // Copies of nested values only: the caller's object must not be shared with the host.
    out[f.key] = typeof v === 'object' && v !== null ? structuredClone(v) : v;
  }
  return host;
}

export function isHostState(v: unknown): v is HostState {
  return typeof v === 'string' && (HOST_STATES as readonly string[]).includes(v);
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
export function isRfc3339(s: string): boolean {
  return RFC3339.test(s);
}

export function cloneHost(h: Host): Host {
  return structuredClone(h);
}

/** A copy without the fields conf.json omits, so equal hosts compare deep-equal however they were made. */
export function canonicalHost(h: Host): Host {
  const out: Record<string, unknown> = {};
  for (const f of FIELDS) {
    const v = h[f.key];
    if (f.always || !isEmpty(f.kind, v)) out[f.key] = structuredClone(v);
  }
  return out as unknown as Host;
}

export function hostsEqual(a: Host, b: Host): boolean {
  return encodeHost(a) === encodeHost(b);
}
