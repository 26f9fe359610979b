import path from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../config/load.ts';
import type { MayuConfig } from '../config/schema.ts';
import { INVENTORY_PATH } from '../core/admission.ts';
import type { Profile } from '../core/profiles.ts';
import type { HostStore } from '../store/store.ts';
import { AdmissionService } from './admission-service.ts';
import type { MayuService } from './mayu-service.ts';

/**
 * The admission service of a server (issue 17), checked before any port serves machines: an
 * inventory naming an unknown profile (or otherwise invalid) stops mayu with file, key, reason.
 * Undefined for a store that keeps no records in `open` mode: 0.11's behaviour (every store keeps
 * them now: git, files (--no-git) and etcd).
 */
export async function openAdmission(opts: {
  store: HostStore; clusterDir: string; config: MayuConfig; configFile: string; profiles: readonly Profile[]; service: MayuService; now?: () => Date; logger: Logger;
}): Promise<AdmissionService | undefined> {
  const { mode, retry_seconds: retrySeconds } = opts.config.admission;
  if (!opts.store.records || !opts.store.applyRecords) {
    if (mode !== 'open') throw new ConfigError(`${opts.configFile}: admission.mode: "${mode}" needs the git store or --no-git (the ${opts.store.kind} store keeps no admission records)`);
    return undefined;
  }
  const logger = opts.logger.child({ component: 'admission' });
  const admission = new AdmissionService({
    store: opts.store,
    profiles: opts.profiles,
    mode,
    retrySeconds,
    now: opts.now ?? (() => new Date()),
    createHost: (serial, admitted, first) => opts.service.createHost(serial, admitted, first),
    warn: (message) => logger.warn(message),
  });
  admission.checkInventory(path.join(opts.clusterDir, INVENTORY_PATH));
  logger.info({ mode, inventory: admission.inventory().size, waiting: admission.pending().length }, 'admission');
  return admission;
}
