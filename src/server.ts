// Composition root: builds every part from explicit options and wires them together.
// Only src/cli/mayu.ts reads flags and the environment; it passes them in here.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import { loadConfig, type LoadedConfig } from './config/load.ts';
import { createApp } from './http/app.ts';
import { startDnsmasq, type DnsmasqOptions, type RunningDnsmasq } from './pxe/dnsmasq.ts';
import { createOutputs } from './render/outputs.ts';
import { loadTemplates } from './render/renderer.ts';
import { MayuService } from './service/mayu-service.ts';
import { FileStore } from './store/file-store.ts';
import { GitStore } from './store/git-store.ts';
import type { HostStore } from './store/store.ts';

export interface ServerOptions {
  configFile: string;
  profilesDir?: string;
  clusterDir: string;
  templatesDir: string;
  snippetsDir: string;
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
  /** Overrides config use_ignition when set. */
  useIgnition?: boolean;
  version: string;
  logger: Logger;
  /** Randomness (machine ids, etcd token) and clock; tests pass fixed ones. */
  randomBytes?: (n: number) => Uint8Array;
  now?: () => Date;
}

export interface RunningServer {
  /** Base URL the HTTP server answers on (bind address and real port). */
  url: string;
  port: number;
  store: HostStore;
  config: LoadedConfig;
  /** The supervised dnsmasq, when one runs. */
  dnsmasq?: RunningDnsmasq;
  /** Stops serving, stops dnsmasq (waits until it is gone), closes the store. */
  close(): Promise<void>;
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const { logger } = opts;
  const loaded = await loadConfig(opts.configFile, opts.profilesDir);
  for (const w of loaded.warnings) logger.warn(w);
  const { config } = loaded;
  const renderer = await loadTemplates({ templatesDir: opts.templatesDir, snippetsDir: opts.snippetsDir });

  const rng = opts.randomBytes ?? ((n: number) => randomBytes(n));
  const store: HostStore = opts.useGit
    ? await GitStore.open({
        dir: opts.clusterDir,
        randomBytes: rng,
        now: opts.now,
        onCompaction: (r) => (r instanceof Error ? logger.error({ err: r }, 'compaction failed') : logger.info(r, 'loose objects packed')),
      })
    : await FileStore.open({ dir: opts.clusterDir, randomBytes: rng });
  logger.info({ hosts: store.size(), store: store.kind, dir: opts.clusterDir }, 'cluster loaded');

  let dnsmasq: RunningDnsmasq | undefined;
  const service = new MayuService({
    store,
    profiles: loaded.profiles,
    ipRange: config.network.ip_range,
    randomBytes: rng,
    now: opts.now ?? (() => new Date()),
    onChange: (e) => {
      logger.info({ serial: e.serial, from: e.from, to: e.to, changes: e.messages }, 'host changed');
      // Any change may touch MACs or the state; an unchanged hostsfile is not rewritten.
      dnsmasq?.hostsChanged();
    },
  });

  // Listen first: the URLs rendered for machines carry the port really bound (port 0 in tests).
  const server = createServer();
  server.listen(opts.httpPort, opts.httpBindAddress);
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const mayuUrl = `http://${config.network.bind_addr}:${port}`;
  const outputs = createOutputs({ renderer, config, mayuUrl, version: opts.version, useIgnition: opts.useIgnition ?? config.use_ignition });
  const app = createApp({
    service,
    outputs,
    imagesDir: opts.imagesDir,
    version: opts.version,
    defaultImageVersion: config.default_coreos_version,
    logger,
  });
  server.on('request', app.callback());
  if (config.network.pxe && opts.dnsmasq) {
    try {
      dnsmasq = await startDnsmasq({ ...opts.dnsmasq, tftpRoot: opts.tftpRoot, renderer, config, httpPort: port, version: opts.version, hosts: store, logger });
    } catch (err) {
      server.close();
      await store.close();
      throw err;
    }
    dnsmasq.hostsChanged(); // changes made while dnsmasq started
  } else if (config.network.pxe) {
    logger.info('network.pxe is true but dnsmasq is not run (--no-dnsmasq): DHCP and TFTP are up to this site');
  }
  logger.info({ port, address: opts.httpBindAddress, mayuUrl, version: opts.version }, 'mayu listening');

  return {
    url: `http://${opts.httpBindAddress === '0.0.0.0' ? '127.0.0.1' : opts.httpBindAddress}:${port}`,
    port,
    store,
    config: loaded,
    dnsmasq,
    async close() {
      server.close();
      server.closeAllConnections();
      await dnsmasq?.close();
      await store.close();
    },
  };
}

export const PROJECT_ROOT = path.resolve(import.meta.dirname, '..');
