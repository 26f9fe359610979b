// Request bodies exactly as 0.11's mayuctl sent them: json.Marshal of a whole hostmgr.Host
// with one field set, so the empty fields that Go never omits (ConnectedNIC, LastBoot, State)
// are present at their zero values. Pure: no I/O.

import { isIP } from 'node:net';
import { HOST_STATES, ZERO_TIME, goJsonString, hostToJsonObject, isHostState, type Host } from '../../core/host.ts';

/** Compact JSON like Go's json.Marshal: key order kept, <, > and & escaped. */
export function goJson(value: unknown): string {
  if (typeof value === 'string') return goJsonString(value);
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(goJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj).map((k) => `${goJsonString(k)}:${goJson(obj[k])}`).join(',')}}`;
}

/** The body of every mayuctl PUT: a zero Host plus the given fields. */
export function hostBody(fields: Partial<Host> = {}): string {
  return goJson(hostToJsonObject({ ConnectedNIC: '', LastBoot: ZERO_TIME, State: 'unknown', ...fields }));
}

export const SET_KEYS = ['metadata', 'providerid', 'ipmiaddr', 'cabinet', 'state', 'etcdtoken', 'profile'] as const;
export type SetKey = (typeof SET_KEYS)[number];

/** A usage error found before any request is sent. */
export class InvalidSetError extends Error {}

export interface SetRequest {
  /** Last path segment under /admin/host/<serial>/. */
  route: string;
  body: string;
}

/**
 * `mayuctl set <serial> <key> <value>` → route and body. Unlike 0.11 (which sent a null
 * IPMIAddr for a bad IP and accepted any state string until the server choked), bad values are
 * refused here.
 */
export function setRequest(key: string, value: string, options: { force?: boolean } = {}): SetRequest {
  if (options.force && key !== 'profile') throw new InvalidSetError('--force only applies to `set <serial> profile <name>`');
  switch (key) {
    case 'metadata':
      // 0.11: strings.Split(value, ","), so "" becomes [""], kept for compatibility.
      return { route: 'set_metadata', body: hostBody({ FleetMetadata: value.split(',') }) };
    case 'providerid':
      return { route: 'set_provider_id', body: hostBody({ ProviderId: value }) };
    case 'ipmiaddr':
      if (isIP(value) === 0) throw new InvalidSetError(`invalid IP address '${value}'`);
      return { route: 'set_ipmi_addr', body: hostBody({ IPMIAddr: value }) };
    case 'cabinet': {
      const cabinet = Number(value);
      if (!/^\d+$/.test(value) || !Number.isSafeInteger(cabinet)) {
        throw new InvalidSetError(`invalid cabinet '${value}': expected an unsigned integer`);
      }
      return { route: 'set_cabinet', body: hostBody({ Cabinet: cabinet }) };
    }
    case 'state':
      if (!isHostState(value)) {
        throw new InvalidSetError(`invalid state '${value}': expected one of ${HOST_STATES.join(', ')}`);
      }
      return { route: 'set_state', body: hostBody({ State: value }) };
    case 'etcdtoken':
      return { route: 'set_etcd_cluster_token', body: hostBody({ EtcdClusterToken: value }) };
    case 'profile': {
      // Not in 0.11: the Host body plus Force, which exceeds the profile's quantity.
      const host = hostToJsonObject({ ConnectedNIC: '', LastBoot: ZERO_TIME, State: 'unknown', Profile: value });
      return { route: 'set_profile', body: goJson(options.force ? { ...host, Force: true } : host) };
    }
    default:
      throw new InvalidSetError(`setting key with name '${key}' is not supported`);
  }
}

/** `mayuctl override <serial> <property> <value>`: the value is always sent as a string. */
export function overrideRequest(property: string, value: string): SetRequest {
  return { route: 'override', body: hostBody({ Overrides: { [property]: value } }) };
}

/** Env-file key → Host version field that boot-complete --update-versions reports. */
const VERSION_KEYS: readonly [string, keyof Host][] = [
  ['MAYU_VERSION', 'MayuVersion'],
  ['DOCKER_VERSION', 'DockerVersion'],
  ['ETCD_VERSION', 'EtcdVersion'],
  ['FLEET_VERSION', 'FleetVersion'],
  ['YOCHU_VERSION', 'YochuVersion'],
  ['RKT_VERSION', 'RktVersion'],
  ['K8S_VERSION', 'K8sVersion'],
];

/**
 * boot_complete body. Without updateVersions it is the zero Host (the server then keeps the
 * stored versions); with it, CoreOSVersion from os-release VERSION_ID (0.11 read VERSION,
 * the same value on CoreOS, used as a fallback) and the *_VERSION keys of /etc/mayu-env.
 */
export function bootCompleteRequest(
  mayuEnv: Readonly<Record<string, string>>,
  osRelease: Readonly<Record<string, string>>,
  updateVersions: boolean,
): SetRequest {
  const fields: Partial<Host> = {};
  if (updateVersions) {
    const out = fields as Record<string, string>;
    const coreos = osRelease['VERSION_ID'] ?? osRelease['VERSION'];
    if (coreos) out['CoreOSVersion'] = coreos;
    for (const [envKey, field] of VERSION_KEYS) {
      const v = mayuEnv[envKey];
      if (v) out[field] = v;
    }
  }
  return { route: 'boot_complete', body: hostBody(fields) };
}
