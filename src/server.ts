// Composition root: builds every part from explicit options and wires them together.
// Only src/cli/mayu.ts reads flags and the environment; it passes them in here.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { hostname } from 'node:os';
import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { ConfigError, loadConfig, type LoadedConfig } from './config/load.ts';
import { replicaSearchOffset } from './core/addresses.ts';
import { HostChangeError } from './core/host-changes.ts';
import { editProblems, type HostEdit, type HostsAfter } from './core/host-edits.ts';
import { goLocalTimestamp } from './core/go-time.ts';
import { ZERO_TIME, type Host } from './core/host.ts';
import { UTC_ZONE, type TimeZone } from './core/tzif.ts';
import { reportToken } from './core/tokens.ts';
import { DiscoveryOptionsError, openDiscovery } from './discovery/open-discovery.ts';
import { createApp } from './http/app.ts';
import { acceptFanout } from './http/accept-fanout.ts';
import { ConnectionClock } from './http/connection-clock.ts';
import { loadGateFor } from './http/load-gate-config.ts';
import { createMetrics } from './metrics/mayu-metrics.ts';
import type { AccessPolicy } from './http/auth.ts';
import { startDnsmasq, type DnsmasqOptions, type RunningDnsmasq } from './pxe/dnsmasq.ts';
import { POWER_HOOK_KEYS, PowerHook } from './power/power-hook.ts';
import { createOutputs } from './render/outputs.ts';
import { compileShellCommand, ShellCommandError } from './render/shell-command.ts';
import { loadTemplates, RenderError, type TemplateKey } from './render/renderer.ts';
import { resolveSecurity, type SecurityOptions } from './security/settings.ts';
import { HostEventHub } from './service/host-events.ts';
import { openAdmission } from './service/open-admission.ts';
import { MayuService, type HostChangeEvent } from './service/mayu-service.ts';
import { StuckWatch } from './service/stuck-watch.ts';
import { AuditPusher, type AuditPushStatus } from './store/audit-push.ts';
import { StorageWatch } from './store/disk-space.ts';
import { FileStore } from './store/file-store.ts';
import { GitStore } from './store/git-store.ts';
import type { EtcdStore, ExternalChange } from './store/etcd-store.ts';
import { openEtcdReplica } from './store/etcd/open-replica.ts';
import type { AdoptedChange, HostStore, OutsideProblem } from './store/store.ts';

export interface ServerOptions {
  configFile: string;
  profilesDir?: string;
  clusterDir: string;
  templatesDir: string;
  snippetsDir: string;
  /** Template files read instead of templatesDir/<0.11 name> (0.11's --first-stage-script and co.). */
  templateFiles?: Partial<Record<TemplateKey, string>>;
  imagesDir: string;
  tftpRoot: string;
  /**
   * Run dnsmasq for DHCP + TFTP when config network.pxe is true. Absent (--no-dnsmasq): mayu
   * serves HTTP only and writes no dnsmasq files, for sites with their own DHCP.
   */
  dnsmasq?: DnsmasqOptions;
  httpPort: number;
  httpBindAddress: string;
  useGit: boolean;
  /** How often the cluster repo is checked for operators' commits and hand edits (ms; default 1000, 0: only before a host's changes and at checkpoints). */
  outsideCheckMs?: number;
  /**
   * Hosts in etcd, shared with other replicas (config `etcd:`, README "Replicas with etcd");
   * clusterDir is then the audit repo the replicas share. Endpoints given here win over config.
   */
  etcdStore?: { endpoints?: string[]; replicaId?: string };
  /** Overrides config use_ignition when set. */
  useIgnition?: boolean;
  version: string;
  logger: Logger;
  /** Admin token, report key, TLS port (README "Security"); config.yaml `security:` fills what is absent. */
  security?: SecurityOptions;
  /** Randomness (machine ids, etcd token) and clock; tests pass fixed ones. */
  randomBytes?: (n: number) => Uint8Array;
  now?: () => Date;
  /**
   * Nanoseconds since the epoch, for LastBoot (0.11 wrote nanoseconds). Default: `now` when
   * given (its milliseconds), else the wall clock with process.hrtime's resolution.
   */
  nowNs?: () => bigint;
  /** The server's local time zone (LastBoot's offset, commits' offsets); default UTC. */
  zone?: TimeZone;
  /** Heartbeat comment interval of /admin/events streams (default 15 s). */
  eventHeartbeatMs?: number;
  /** The etcd discovery service (README "etcd discovery"); default: served by mayu, size 3. */
  etcdDiscovery?: { internal: boolean; endpoint?: string; quorumSize?: number; discoveryUrl?: string };
}

export interface RunningServer {
  /** Base URL the HTTP server answers on (bind address and real port). */
  url: string;
  port: number;
  /** https base URL and port of the admin API's TLS port, when configured. */
  tlsUrl?: string;
  tlsPort?: number;
  store: HostStore;
  config: LoadedConfig;
  /** This server's Prometheus registry (GET /metrics). */
  metrics: Registry;
  /** Durable host changes, as /admin/events streams them. */
  events: HostEventHub;
  /** The supervised dnsmasq, when one runs. */
  dnsmasq?: RunningDnsmasq;
  /** State of the audit push (config audit_push); undefined when none is configured. For /readyz, /metrics. */
  pushStatus(): AuditPushStatus | undefined;
  /** Stops serving, stops dnsmasq (waits until it is gone), closes the store. */
  close(): Promise<void>;
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const { logger } = opts;
  const loaded = await loadConfig(opts.configFile, opts.profilesDir);
  for (const w of loaded.warnings) logger.warn(w);
  const { config } = loaded;
  const security = await resolveSecurity({
    options: opts.security ?? {},
    config: config.security,
    configFile: opts.configFile,
    defaultReportKeyFile: path.join(PROJECT_ROOT, 'run/report-key'),
    httpPort: opts.httpPort,
    now: (opts.now ?? (() => new Date()))(),
  });
  for (const w of security.warnings) logger.warn(w);
  for (const n of security.notes) logger.info(n);
  const renderer = await loadTemplates({ templatesDir: opts.templatesDir, snippetsDir: opts.snippetsDir, files: opts.templateFiles });
  const powerHook = config.power_hook && new PowerHook({
    command: compilePowerHook(`${opts.configFile}: power_hook.command`, config.power_hook.command),
    timeoutMs: config.power_hook.timeout_ms,
    logger: logger.child({ component: 'power-hook' }),
    now: opts.now,
  });

  const rng = opts.randomBytes ?? ((n: number) => randomBytes(n));
  const zone = opts.zone ?? UTC_ZONE;
  const nowNs = opts.nowNs ?? (opts.now ? () => BigInt(opts.now!().getTime()) * 1_000_000n : wallClockNs());
  // Filled in below once the parts it reads exist; the store reports batches into it from the start.
  const registry = new Registry();
  const events = new HostEventHub();
  const runsDnsmasq = config.network.pxe && opts.dnsmasq !== undefined;
  let dnsmasq: RunningDnsmasq | undefined;
  let store: HostStore | undefined;
  // Made once the store is open; only in git mode (--no-git ignores audit_push).
  let auditPush: AuditPusher | undefined;
  let outsideProblems: OutsideProblem[] = [];
  // Stuck installs (README "Stuck installs"); made once the store is open.
  let stuckWatch: StuckWatch | undefined;
  // The cluster directory's disk: failed writes, free space, the new-host guard (README "Full or failing disk").
  const storage = new StorageWatch({
    dir: opts.clusterDir,
    probeDir: opts.useGit ? path.join(opts.clusterDir, '.git') : opts.clusterDir,
    policy: { minFreeBytes: config.storage.min_free_bytes, minFreePercent: config.storage.min_free_percent },
    logger: logger.child({ component: 'storage' }),
  });
  const metrics = createMetrics(registry, {
    hosts: () => store?.scan() ?? [],
    profileNames: loaded.profiles.map((p) => p.name),
    writeQueueDepth: () => store?.writeQueueDepth() ?? 0,
    eventSubscribers: () => events.subscribers,
    dnsmasq: runsDnsmasq ? () => ({ restarts: dnsmasq?.supervisor.restarts ?? 0, up: dnsmasq?.supervisor.serving ?? false }) : undefined,
    auditPush: config.audit_push && (opts.useGit || opts.etcdStore) ? () => auditPush?.status() : undefined,
    refusedOutsideChanges: opts.useGit ? () => outsideProblems.length : undefined,
    stuckHosts: () => stuckWatch?.counts() ?? new Map(),
    storage: () => {
      storage.sample();
      return storage.status();
    },
  });
  const observer = {
    batchWritten: (size: number) => {
      metrics.batchWritten(size);
      storage.writeSucceeded();
    },
    batchFailed: (err: Error, changes: number) => storage.writeFailed(err, changes),
  };
  // Changes operators make in the repo (commits, hand edits): judged against the config, taken
  // into memory and announced like mayu's own, or refused with one log line per episode.
  let onHostChange: ((e: HostChangeEvent) => void) | undefined;
  const outside = {
    checkEdits: (edits: HostEdit[], after: HostsAfter) => editProblems(edits, after, loaded.profiles),
    onAdopted: (changes: AdoptedChange[]) => {
      for (const c of changes) {
        metrics.outsideChangeAdopted();
        const host = c.after ?? c.before;
        if (!host) continue;
        onHostChange?.({ serial: c.serial, from: c.before?.State, to: host.State, messages: c.messages, host, deleted: c.after ? undefined : true, commit: c.commit });
      }
    },
    onOutsideProblems: (problems: OutsideProblem[]) => {
      const before = new Set(outsideProblems.map((p) => p.source));
      for (const p of problems) if (!before.has(p.source)) logger.error({ source: p.source, problems: p.problems }, 'change made outside mayu refused: fix or revert it in the cluster repo');
      const now = new Set(problems.map((p) => p.source));
      for (const p of outsideProblems) if (!now.has(p.source)) logger.info({ source: p.source }, 'refused outside change is gone (fixed or reverted)');
      outsideProblems = problems;
    },
    onOutsideError: (err: Error) => logger.error({ err }, 'could not read or take a change made outside mayu'),
  };
  // Changes another replica made (etcd store): the same events and dnsmasq update as our own.
  let externalChange: (c: ExternalChange) => void = () => {};
  let etcdStore: EtcdStore | undefined;
  const replicaId = opts.etcdStore && (opts.etcdStore.replicaId ?? `${hostname()}:${process.pid}`);
  if (opts.etcdStore) {
    if (!config.etcd && !opts.etcdStore.endpoints) throw new ConfigError(`${opts.configFile}: the etcd store needs an \`etcd:\` section (endpoints) or --etcd-store-endpoints`);
    const etcdConfig = { prefix: '/mayu/', request_timeout_ms: 3000, lease_ttl_seconds: 5, ...config.etcd, endpoints: opts.etcdStore.endpoints ?? config.etcd!.endpoints };
    const replica = await openEtcdReplica({
      config: etcdConfig,
      configDir: path.dirname(opts.configFile),
      clusterDir: opts.clusterDir,
      replicaId,
      limitedProfiles: new Set(loaded.profiles.filter((p) => p.quantity !== undefined).map((p) => p.name)),
      randomBytes: rng,
      now: opts.now,
      zone: opts.zone,
      observer,
      logger,
      onExternalChange: (c) => externalChange(c),
      onHistoryCheckpoint: () => auditPush?.notify(),
    }).catch((err: Error) => {
      throw new ConfigError(`etcd store: ${err.message}`);
    });
    etcdStore = replica.store;
  }
  store = etcdStore ?? (opts.useGit
    ? await GitStore.open({
        dir: opts.clusterDir,
        randomBytes: rng,
        now: opts.now,
        zone: opts.zone,
        compactInWorker: true,
        onCompaction: (r) => (r instanceof Error ? logger.error({ err: r }, 'pack merge failed') : logger.info(r, 'packs merged')),
        // Logged once per episode (start and end) by the storage watch, not once per batch.
        onMirrorError: (err) => storage.mirrorFailed(err),
        onCheckpointError: (err) => storage.checkpointFailed(err),
        onIndexError: (err) => logger.warn({ err }, 'git\'s index (.git/index) not written yet (retried; the changes are in git)'),
        // Pushed once git has them: under load git trails the answers by ~0.1 s.
        onCheckpoint: () => {
          storage.checkpointSucceeded();
          auditPush?.notify();
        },
        observer,
        ...outside,
        outsideCheckMs: opts.outsideCheckMs,
      })
    : await FileStore.open({ dir: opts.clusterDir, randomBytes: rng, observer }));
  logger.info({ hosts: store.size(), store: store.kind, dir: opts.clusterDir }, 'cluster loaded');
  storage.start();
  if (config.audit_push && store.kind === 'files') logger.warn('audit_push is ignored: --no-git keeps no history to push');
  // etcd store: pushed by whichever replica writes the history (after its checkpoints).
  auditPush = config.audit_push && store.kind !== 'files' ? new AuditPusher({
    dir: opts.clusterDir,
    // A relative path is a remote next to config.yaml, like the other paths there.
    url: isRelativePath(config.audit_push.url) ? path.resolve(path.dirname(opts.configFile), config.audit_push.url) : config.audit_push.url,
    branch: config.audit_push.branch,
    intervalMs: config.audit_push.interval_ms,
    maxBackoffMs: config.audit_push.max_backoff_ms,
    timeoutMs: config.audit_push.timeout_ms,
    logger: logger.child({ component: 'audit-push' }),
    now: opts.now,
  }) : undefined;
  auditPush?.notify(); // what is already committed (a new cluster's first commits, changes made while it was down)
  let discovery;
  try {
    discovery = await openDiscovery({
      options: opts.etcdDiscovery, clusterDir: opts.clusterDir, defaultToken: store.clusterConfig().DefaultEtcdClusterToken, randomBytes: rng, logger,
    });
  } catch (err) {
    await auditPush?.close();
    await store.close();
    throw err instanceof DiscoveryOptionsError ? new ConfigError(err.message) : err;
  }

  // Listen first: the URLs rendered for machines carry the ports really bound (port 0 in tests).
  const listen = async (server: Server, port: number) => {
    // A deep accept queue (the kernel caps it at net.core.somaxconn): with node's 511, a rack
    // powering on at once overflowed it, and a dropped SYN is retried by the machine's TCP after
    // 1, 3, 7, ... 63 s (10 000-machine storm: 60 s timeouts on the first request).
    server.listen({ port, host: opts.httpBindAddress, backlog: 4096 });
    await once(server, 'listening');
    return (server.address() as AddressInfo).port;
  };
  // Answer clients that half-close after sending their request (busybox `nc`, which the
  // installer and the test OS use for PUTs): Node otherwise drops the request on the client's
  // FIN, and a slow answer (a git commit) is lost although the change was made.
  const server = createServer();
  (server as typeof server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  const port = await listen(server, opts.httpPort);
  const tlsServer = security.tls ? createTlsServer({ cert: security.tls.cert, key: security.tls.key }) : undefined;
  if (tlsServer) (tlsServer as typeof tlsServer & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  const tlsPort = tlsServer && (await listen(tlsServer, security.tls!.port));
  const tlsUrl = tlsPort === undefined ? undefined : `https://${config.network.bind_addr}:${tlsPort}`;

  const reportTokenOf = (h: Host) => reportToken(security.reportKey, h.Serial ?? '', h.MachineID ?? '');
  // Rendered only while a host is being (re)installed: the machine routes are open, so an
  // installed host's token must not be one GET /first-stage-script away.
  const renderedTokenOf = (h: Host) => (h.State === 'installed' || h.State === 'running' ? '' : reportTokenOf(h));
  const useIgnition = opts.useIgnition ?? config.use_ignition;
  const mayuUrl = `http://${config.network.bind_addr}:${port}`;
  const outputs = createOutputs({
    renderer, config, mayuUrl, version: opts.version, useIgnition,
    reportTokenOf: renderedTokenOf, tlsUrl, caPem: security.tls?.caPem, etcdDiscoveryUrl: discovery.externalUrl,
  });
  // One gate for both ports: in-flight counts, load signals and registration buckets are the server's.
  const gate = loadGateFor(config.limits, () => store.writeQueueDepth());
  gate.start();
  const service = new MayuService({
    store,
    profiles: loaded.profiles,
    ipRange: config.network.ip_range,
    // Replicas each start looking for a free address elsewhere (fewer lost transactions); one mayu takes the lowest.
    addressSearchFrom: replicaId === undefined ? undefined : replicaSearchOffset(replicaId, config.network.ip_range),
    randomBytes: rng,
    bootTime: () => goLocalTimestamp(nowNs(), zone),
    now: opts.now ?? (() => new Date()),
    // An override that would break this host's script or config is refused before it is stored.
    checkHost: (h) => {
      try {
        outputs.firstStageScript(h);
        if (useIgnition) outputs.ignition(h);
        else outputs.cloudConfig(h);
      } catch (err) {
        if (err instanceof RenderError) throw new HostChangeError(`refused: the host's templates would not render with it: ${err.message}`);
        throw err;
      }
    },
    onChange: (e) => onHostChange!(e),
    observeCommit: (seconds) => {
      metrics.commit(seconds);
      gate.observeCommit(seconds);
    },
    observeInstallFailure: (f) => metrics.installFailure(f.Stage),
    admitNewHost: () => storage.admitNewHost(),
    admission: { admit: (serial, nics) => admission?.admit(serial, nics) ?? {} },
  });
  // issue 17: admission modes, the inventory, selectors' facts (src/service/open-admission.ts).
  const admission = await openAdmission({ store, clusterDir: opts.clusterDir, config, configFile: opts.configFile, profiles: loaded.profiles, service, now: opts.now, logger })
    .catch(async (err: unknown) => {
      for (const s of [server, tlsServer]) s?.close();
      await store.close();
      throw err;
    });
  onHostChange = (e) => {
      logger.info({ serial: e.serial, from: e.from, to: e.to, changes: e.messages, commit: e.commit, deleted: e.deleted }, 'host changed');
      if (e.installFailure) logger.warn({ serial: e.serial, stage: e.installFailure.Stage, reason: e.installFailure.Reason, state: e.installFailure.State, commit: e.commit }, 'install failed');
      // Any change may touch MACs or the state; an unchanged hostsfile is not rewritten.
      dnsmasq?.hostsChanged();
      stuckWatch?.observe(e);
      events.publish(e);
      // A reinstall was requested: the site's hook may netboot the machine (README "Host lifecycle").
      if (powerHook && !e.deleted && e.to === 'configured' && (e.from === 'installed' || e.from === 'running')) void powerHook.run(e.host);
  };
  externalChange = (c) => {
    const host = c.after ?? c.before;
    if (!host) return;
    dnsmasq?.hostsChanged();
    const e = { serial: c.serial, from: c.before?.State, to: host.State, messages: c.messages, host, ...(c.after ? {} : { deleted: true as const }) };
    stuckWatch?.observe(e);
    events.publish(e);
  };
  // Stuck installs: every change published (mayu's, operators', other replicas': observe() above)
  // moves its since-times; it publishes one event per episode itself.
  stuckWatch = new StuckWatch({
    store,
    afterMs: config.stuck_installs.after_seconds * 1000,
    now: opts.now && (() => opts.now!().getTime()),
    publish: (e) => events.publish(e),
    onStuck: (s) => logger.warn({ serial: s.Serial, state: s.State, since: s.Since, seconds: s.Seconds }, 'install stuck'),
    onRebuildError: (err) => logger.error({ err }, 'stuck installs: could not read since-times from history'),
  });
  const watch = stuckWatch;
  watch.start();
  // The store is loaded before any port opens, so only dnsmasq can hold readiness back.
  const dnsmasqNotReady = () => {
    if (!runsDnsmasq) return [];
    if (!dnsmasq) return ['dnsmasq is starting'];
    return dnsmasq.supervisor.serving ? [] : [`dnsmasq is not running (restarted ${dnsmasq.supervisor.restarts} times so far)`];
  };
  // A disk that refuses the journal's writes: every change would be answered 507. A refused
  // outside change: git waits for the operator (mayu still answers from its journal).
  const outsideNotReady = () => outsideProblems.map((p) => `${p.source} refused: ${p.problems.join('; ')}`);
  // etcd store: etcd unreachable from this replica (every change would be a 503).
  const notReadyReasons = () => [...(etcdStore?.notReadyReasons() ?? []), ...outsideNotReady(), ...dnsmasqNotReady(), ...storage.notReadyReasons()];
  // A failing audit push is shown in /readyz but never fails it (issue #53: "never blocking
  // provisioning"). /readyz is open: no URL (it may hold credentials) and no git error text.
  const readiness = () => {
    const push = pushReadiness();
    const { refused: _refused, ...disk } = storage.status();
    return { warnings: [...storage.warnings(), ...push.warnings], details: { ...push.details, storage: disk } };
  };
  const pushReadiness = () => {
    const s = auditPush?.status();
    if (!s) return { warnings: [], details: {} };
    const failures = `${s.consecutiveFailures} consecutive failure${s.consecutiveFailures === 1 ? '' : 's'}`;
    return {
      // Failing from a failed push until one succeeds: a retry in flight (state pushing) still is.
      warnings: s.consecutiveFailures > 0
        ? [`audit push failing (${failures}, last success ${s.lastSuccessAt ?? 'none since start'}); provisioning is not affected; see GET /admin/audit-push`]
        : [],
      details: { auditPush: { state: s.state, consecutiveFailures: s.consecutiveFailures, lastSuccessAt: s.lastSuccessAt ?? null } },
    };
  };

  const connections = new ConnectionClock();
  const appFor = (adminApiHere: boolean) => {
    const access: AccessPolicy = {
      adminToken: security.adminToken,
      insecureReports: security.insecureReports,
      reportTokenOf: (serial) => {
        const host = service.find(serial);
        return host && reportTokenOf(host);
      },
      adminApiHere,
      adminApiPort: tlsPort,
    };
    return createApp({
      service, outputs, admission: admission && { service: admission, mayuUrl }, imagesDir: opts.imagesDir, tftpRoot: opts.tftpRoot, version: opts.version, defaultImageVersion: config.default_coreos_version, logger, access,
      admin: { powerHook, auditPush, stuck: watch },
      unavailable: () => etcdStore?.notReadyReasons()[0],
      ops: { notReadyReasons, readiness, scrapeMetrics: async () => ({ contentType: registry.contentType, body: await registry.metrics() }) },
      events: { subscribe: (l) => events.subscribe(l), heartbeatMs: opts.eventHeartbeatMs ?? 15_000 },
      discovery: discovery.backend && { backend: discovery.backend, baseUrl: `${mayuUrl}/etcd`, defaultSize: discovery.quorumSize },
      observeRequest: metrics.request,
      gate,
      connections,
    });
  };
  // With a TLS port, the plain port keeps the machine routes and the two machine reports only.
  connections.watch(server);
  const handleRequest = appFor(tlsServer === undefined).callback();
  server.on('request', handleRequest);
  // More descriptors of the listening socket: more connections accepted per event-loop turn.
  const acceptors = await acceptFanout(server, config.limits.accept_descriptors - 1, (extra) => {
    connections.watch(extra);
    extra.on('request', handleRequest);
  });
  tlsServer?.on('request', appFor(true).callback());
  if (runsDnsmasq) {
    try {
      dnsmasq = await startDnsmasq({ ...opts.dnsmasq!, tftpRoot: opts.tftpRoot, renderer, config, httpPort: port, version: opts.version, hosts: store, logger });
    } catch (err) {
      for (const s of [server, tlsServer, ...acceptors]) s?.close();
      await store.close();
      throw err;
    }
    dnsmasq.hostsChanged(); // changes made while dnsmasq started
  } else if (config.network.pxe) {
    logger.info('network.pxe is true but dnsmasq is not run (--no-dnsmasq): DHCP and TFTP are up to this site');
  }
  logger.info({
    port, address: opts.httpBindAddress, mayuUrl, tlsPort, adminToken: security.adminToken !== undefined, version: opts.version,
  }, 'mayu listening');

  const local = opts.httpBindAddress === '0.0.0.0' ? '127.0.0.1' : opts.httpBindAddress;
  return {
    url: `http://${local}:${port}`,
    port,
    tlsUrl: tlsPort === undefined ? undefined : `https://${local}:${tlsPort}`,
    tlsPort,
    store,
    config: loaded,
    metrics: registry,
    events,
    dnsmasq,
    pushStatus: () => auditPush?.status(),
    async close() {
      gate.close();
      for (const s of [server, tlsServer, ...acceptors]) {
        s?.close();
        s?.closeAllConnections();
      }
      await dnsmasq?.close();
      await discovery.backend?.close();
      await powerHook?.close();
      watch.close();
      await auditPush?.close();
      await store.close();
      await storage.close();
    },
  };
}

/**
 * `mayu --show-templates`, as 0.11 did it: the final config (cloud-config, or Ignition with
 * use_ignition) rendered for an empty host, checked, under 0.11's heading. Reads config.yaml and
 * the templates only: no cluster directory, port or dnsmasq. Throws ConfigError / RenderError.
 */
export async function showTemplates(opts: Pick<ServerOptions,
  'configFile' | 'profilesDir' | 'templatesDir' | 'snippetsDir' | 'templateFiles' | 'httpPort' | 'useIgnition' | 'version'>): Promise<string> {
  const { config } = await loadConfig(opts.configFile, opts.profilesDir);
  const renderer = await loadTemplates({ templatesDir: opts.templatesDir, snippetsDir: opts.snippetsDir, files: opts.templateFiles });
  const useIgnition = opts.useIgnition ?? config.use_ignition;
  const outputs = createOutputs({
    renderer, config, mayuUrl: `http://${config.network.bind_addr}:${opts.httpPort}`, version: opts.version, useIgnition, reportTokenOf: () => '',
  });
  const empty: Host = { ConnectedNIC: '', LastBoot: ZERO_TIME, State: 'unknown' };
  const text = useIgnition ? outputs.ignition(empty) : outputs.cloudConfig(empty);
  const heading = useIgnition ? 'ignition config:' : 'last stage cloud config:';
  return `${heading}\n${text.endsWith('\n') ? text : `${text}\n`}`;
}

/**
 * The wall clock in nanoseconds: Date.now() gives milliseconds only, so the monotonic
 * process.hrtime is anchored to it, and re-anchored when the wall clock is set (NTP, by hand).
 */
export function wallClockNs(): () => bigint {
  const anchor = () => ({ wall: BigInt(Date.now()) * 1_000_000n, mono: process.hrtime.bigint() });
  let base = anchor();
  return () => {
    const ns = base.wall + (process.hrtime.bigint() - base.mono);
    const drift = ns - BigInt(Date.now()) * 1_000_000n;
    if (drift > 2_000_000n || drift < -2_000_000n) {
      base = anchor();
      return base.wall;
    }
    return ns;
  };
}

/** A path, not a URL (scheme://, scp-like user@host:path) nor an absolute path. */
function isRelativePath(url: string): boolean {
  return !path.isAbsolute(url) && !url.includes(':');
}

function compilePowerHook(name: string, template: string) {
  try {
    return compileShellCommand(name, template, POWER_HOOK_KEYS);
  } catch (err) {
    if (err instanceof ShellCommandError) throw new ConfigError(err.message);
    throw err;
  }
}

export const PROJECT_ROOT = path.resolve(import.meta.dirname, '..');
