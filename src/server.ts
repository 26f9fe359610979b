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
import { DnsmasqConfWriter } from './pxe/dnsmasq-conf-writer.ts';
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
  /** Where the generated dnsmasq.conf goes (only with network.pxe). */
  dnsmasqConf: string;
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

  const dnsmasq = config.network.pxe
    ? new DnsmasqConfWriter({ file: opts.dnsmasqConf, renderer, config, tftpRoot: opts.tftpRoot, store, logger, version: opts.version })
    : undefined;

  const service = new MayuService({
    store,
    profiles: loaded.profiles,
    ipRange: config.network.ip_range,
    randomBytes: rng,
    now: opts.now ?? (() => new Date()),
    onChange: (e) => {
      logger.info({ serial: e.serial, from: e.from, to: e.to, changes: e.messages }, 'host changed');
      if (e.from !== e.to) dnsmasq?.schedule();
    },
  });

  // Listen first: the URLs rendered for machines carry the port really bound (port 0 in tests).
  const server = createServer();
  // Answer clients that half-close after sending their request (busybox `nc`, which the
  // installer and the test OS use for PUTs): Node otherwise drops the request on the client's
  // FIN, and a slow answer (a git commit) is lost although the change was made.
  (server as typeof server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
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
  await dnsmasq?.write(port);
  logger.info({ port, address: opts.httpBindAddress, mayuUrl, version: opts.version }, 'mayu listening');

  return {
    url: `http://${opts.httpBindAddress === '0.0.0.0' ? '127.0.0.1' : opts.httpBindAddress}:${port}`,
    port,
    store,
    config: loaded,
    async close() {
      server.close();
      server.closeAllConnections();
      await store.close();
      await dnsmasq?.close();
    },
  };
}

export const PROJECT_ROOT = path.resolve(import.meta.dirname, '..');
