import type { MayuConfig } from '../config/schema.ts';
import { prefixToNetmask } from '../core/addresses.ts';
import type { Host } from '../core/host.ts';
import { RenderError } from './render-error.ts';

// The view every template is rendered with. Keys are snake_case and always present ("" / [] /
// false when unknown), so the strict renderer only fires on real typos in templates.

export interface ViewOptions {
  /** Base URL the machines reach this server on, e.g. http://10.0.3.251:4080 (no trailing slash needed). */
  mayuUrl: string;
  mayuVersion: string;
  /** Installer POSTs for Ignition instead of cloud-config; default config.use_ignition. */
  useIgnition?: boolean;
  /**
   * Disk the installer writes to; env.install_disk (templates_env or a host override) wins. Default
   * `auto` (the installer chooses, README "The installer"); else a /dev/... path (also
   * /dev/disk/by-path/...), `serial:<serial>` or `wwn:<wwn>`.
   */
  installDisk?: string;
  /** etcd discovery base; the host's token is appended by the templates. Default <mayuUrl>/etcd (0.11's proxy). */
  etcdDiscoveryUrl?: string;
  /** The host's report token (README "Security"); without it report_token is "". */
  reportTokenOf?: (host: Host) => string;
  /** https base URL of the admin API's TLS port; "" or absent when there is none. */
  tlsUrl?: string;
  /** PEM of the CA machines should trust for tlsUrl; "" or absent when none. */
  caPem?: string;
  /** The iPXE scripts' wait before asking again (retry_seconds); default config limits.retry_after_seconds. */
  retrySeconds?: number;
}

export interface HostView {
  serial: string;
  hostname: string;
  machine_id: string;
  internal_addr: string;
  ipmi_addr: string;
  connected_nic: string;
  mac_addresses: string[];
  profile: string;
  provider_id: string;
  state: string;
  etcd_cluster_token: string;
  /** The host's CoreOSVersion, else config.default_coreos_version. */
  coreos_version: string;
  fleet_metadata: string[];
  /** fleet_metadata joined with "," (fleet's metadata= format; mustache cannot join). */
  fleet_metadata_csv: string;
  fleet_disable_engine: boolean;
  keep_disk_data: boolean;
  cabinet: number;
  machine_on_cabinet: number;
}

export interface NetworkView {
  pxe: boolean;
  uefi: boolean;
  interface: string;
  bind_addr: string;
  /** "" when no router is configured. */
  router: string;
  dns: string[];
  has_dns: boolean;
  subnet_size: number;
  netmask: string;
  network_model: string;
  bootstrap_range: { start: string; end: string };
  /** The host's BondInterfaces, else network.bond_interfaces. */
  bond_interfaces: string[];
  /** systemd-networkd [Match] of bond members: bond_interfaces by name, else the host's MACs, else en*. */
  bond_slave_names: string[];
  bond_slave_macs: string[];
}

export interface SshKeyView {
  key: string;
  /** For separators in JSON/YAML flow lists: `{{^first}}, {{/first}}"{{key}}"`. */
  first: boolean;
}

export interface TemplateView {
  mayu_url: string;
  mayu_version: string;
  /** https URL of the TLS port ("" without TLS); machine routes stay on mayu_url (plain HTTP, for iPXE). */
  mayu_tls_url: string;
  /** CA for mayu_tls_url, PEM ("" when none): for templates that talk HTTPS to mayu. */
  mayu_ca_pem: string;
  /** Lowercase hex secret the machine sends as "Authorization: Bearer" with set_installed / boot_complete; "" without a host (and, from the server, for installed/running hosts). */
  report_token: string;
  use_ignition: boolean;
  install_disk: string;
  /**
   * Where the first-stage script stores the final config on install_disk after writing the image
   * (env keys of the same names override each): `file` mounts partition config_partition and
   * writes the config to config_path (CoreOS: the OEM partition's /config.ign, or ROOT's
   * /var/lib/coreos-install/user_data); `tar` writes a tar archive holding `config` and
   * `mayu-env` raw onto that partition (no filesystem or kernel module needed to read it: the
   * test OS of scripts/images does); `nocloud` mounts config_partition and writes cloud-init's
   * NoCloud seed into the folder config_path: user-data (the cloud-config) and meta-data
   * (instance-id = the machine ID, local-hostname).
   */
  config_store: ConfigStore;
  config_partition: number;
  /** Path inside the mounted partition: the config file (`file`) or the seed folder (`nocloud`). */
  config_path: string;
  etcd_discovery_url: string;
  /** Seconds the iPXE scripts wait before asking mayu again after a failed request (README "Limits and overload"). */
  retry_seconds: number;
  host: HostView;
  network: NetworkView;
  /** config.templates_env with the host's Overrides on top: a fresh deep copy per call. */
  env: Record<string, unknown>;
  /** env.ssh_authorized_keys as list items. */
  ssh_keys: SshKeyView[];
}

export const CONFIG_STORES = ['file', 'tar', 'nocloud'] as const;
export type ConfigStore = (typeof CONFIG_STORES)[number];

/**
 * Default places: Ignition (Flatcar/CoreOS) reads /config.ign on the OEM partition (6); the
 * cloud-config goes to cloud-init's NoCloud seed folder in the root filesystem of the Debian
 * image (partition 2, see scripts/images/debian-os.ts).
 */
const DEFAULT_CONFIG_PLACES = {
  ignition: { config_store: 'file', config_partition: 6, config_path: '/config.ign' },
  cloudConfig: { config_store: 'nocloud', config_partition: 2, config_path: '/var/lib/cloud/seed/nocloud' },
} as const;

/** env keys the shipped templates read, so a config without them still renders. */
const ENV_DEFAULTS: Readonly<Record<string, unknown>> = { ssh_authorized_keys: [] };

function viewError(message: string): RenderError {
  return new RenderError(message, { template: '(view)' });
}

function sshKeys(raw: unknown): SshKeyView[] {
  // YAML `ssh_authorized_keys:` with nothing after it is null: no keys.
  const list = raw == null ? [] : typeof raw === 'string' ? [raw] : raw;
  if (!Array.isArray(list) || !list.every((k): k is string => typeof k === 'string')) {
    throw viewError('env.ssh_authorized_keys must be a list of strings (templates_env or a host override)');
  }
  return list.map((key, i) => ({ key, first: i === 0 }));
}

function configPlace(env: Record<string, unknown>, useIgnition: boolean): Pick<TemplateView, 'config_store' | 'config_partition' | 'config_path'> {
  const defaults = useIgnition ? DEFAULT_CONFIG_PLACES.ignition : DEFAULT_CONFIG_PLACES.cloudConfig;
  const store = env['config_store'] ?? defaults.config_store;
  if (!CONFIG_STORES.includes(store as ConfigStore)) {
    throw viewError(`env.config_store must be one of ${CONFIG_STORES.join(', ')} (templates_env or a host override)`);
  }
  if (store === 'nocloud' && useIgnition) throw viewError('env.config_store nocloud is for cloud-config (cloud-init), not Ignition (templates_env or a host override)');
  // Overrides set with mayuctl arrive as strings.
  const partition = env['config_partition'] ?? defaults.config_partition;
  if (!/^[1-9][0-9]{0,2}$/.test(String(partition))) {
    throw viewError('env.config_partition must be a partition number like 6 (templates_env or a host override)');
  }
  const configPath = env['config_path'] ?? defaults.config_path;
  if (typeof configPath !== 'string' || !configPath.startsWith('/') || configPath.endsWith('/')) {
    throw viewError('env.config_path must be an absolute file path like /config.ign (templates_env or a host override)');
  }
  return { config_store: store as ConfigStore, config_partition: Number(partition), config_path: configPath };
}

function hostView(host: Host | undefined, config: MayuConfig): HostView {
  const h: Partial<Host> = host ?? {};
  const fleetMetadata = [...(h.FleetMetadata ?? [])];
  return {
    serial: h.Serial ?? '',
    hostname: h.Hostname ?? '',
    machine_id: h.MachineID ?? '',
    internal_addr: h.InternalAddr ?? '',
    ipmi_addr: h.IPMIAddr ?? '',
    connected_nic: h.ConnectedNIC ?? '',
    mac_addresses: [...(h.MacAddresses ?? [])],
    profile: h.Profile ?? '',
    provider_id: h.ProviderId ?? '',
    state: h.State ?? '',
    etcd_cluster_token: h.EtcdClusterToken ?? '',
    coreos_version: h.CoreOSVersion || config.default_coreos_version,
    fleet_metadata: fleetMetadata,
    fleet_metadata_csv: fleetMetadata.join(','),
    fleet_disable_engine: h.FleetDisableEngine ?? false,
    keep_disk_data: h.KeepDiskData ?? false,
    cabinet: h.Cabinet ?? 0,
    machine_on_cabinet: h.MachineOnCabinet ?? 0,
  };
}

function networkView(host: Host | undefined, config: MayuConfig): NetworkView {
  const n = config.network;
  const bondInterfaces = [...(host?.BondInterfaces?.length ? host.BondInterfaces : n.bond_interfaces)];
  const macs = bondInterfaces.length ? [] : [...(host?.MacAddresses ?? [])];
  return {
    pxe: n.pxe,
    uefi: n.uefi,
    interface: n.interface,
    bind_addr: n.bind_addr,
    router: n.router ?? '',
    dns: [...n.dns],
    has_dns: n.dns.length > 0,
    subnet_size: n.subnet_size,
    netmask: prefixToNetmask(n.subnet_size),
    network_model: n.network_model,
    bootstrap_range: { start: n.bootstrap_range?.start ?? '', end: n.bootstrap_range?.end ?? '' },
    bond_interfaces: bondInterfaces,
    bond_slave_names: bondInterfaces.length ? bondInterfaces : macs.length ? [] : ['en*'],
    bond_slave_macs: macs,
  };
}

/** Values of install_disk the first-stage script understands (it escapes them; this keeps them meaningful). */
const isInstallDisk = (v: string) => v === 'auto' || v.startsWith('/dev/') || /^(serial|wwn):[A-Za-z0-9._:-]+$/.test(v);

/**
 * Builds the view for one render. Everything is copied: mayu 0.11 merged overrides into the shared
 * templates_env map, so one host's overrides leaked into every later host.
 */
export function buildView(host: Host | undefined, config: MayuConfig, opts: ViewOptions): TemplateView {
  const env: Record<string, unknown> = {
    ...structuredClone(ENV_DEFAULTS),
    ...structuredClone(config.templates_env),
    ...structuredClone(host?.Overrides ?? {}),
  };
  const mayuUrl = opts.mayuUrl.replace(/\/+$/, '');
  const envDisk = env['install_disk'];
  if (envDisk !== undefined && (typeof envDisk !== 'string' || !isInstallDisk(envDisk))) {
    throw viewError('env.install_disk must be auto, a device path like /dev/sda or /dev/disk/by-path/..., serial:<disk serial> or wwn:<disk wwn> (templates_env or a host override)');
  }
  const useIgnition = opts.useIgnition ?? config.use_ignition;
  return {
    mayu_url: mayuUrl,
    mayu_version: opts.mayuVersion,
    mayu_tls_url: (opts.tlsUrl ?? '').replace(/\/+$/, ''),
    mayu_ca_pem: opts.caPem ?? '',
    report_token: host && opts.reportTokenOf ? opts.reportTokenOf(host) : '',
    use_ignition: useIgnition,
    install_disk: envDisk ?? opts.installDisk ?? 'auto',
    ...configPlace(env, useIgnition),
    etcd_discovery_url: (opts.etcdDiscoveryUrl ?? `${mayuUrl}/etcd`).replace(/\/+$/, ''),
    retry_seconds: opts.retrySeconds ?? config.limits?.retry_after_seconds ?? 5,
    host: hostView(host, config),
    network: networkView(host, config),
    env,
    ssh_keys: sshKeys(env['ssh_authorized_keys']),
  };
}
