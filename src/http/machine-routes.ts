import { access } from 'node:fs/promises';
import path from 'node:path';
import Router, { type RouterMiddleware } from '@koa/router';
import { bootsFromLocalDisk } from '../core/boot-identity.ts';
import { parseHostData, parseNicFacts } from '../core/host-data.ts';
import type { Host } from '../core/host.ts';
import type { MayuService } from '../service/mayu-service.ts';
import { readJson } from './body.ts';
import { HttpError } from './errors.ts';
import { sendFile } from './file-response.ts';
import type { Outputs } from '../render/outputs.ts';
import type { LoadGate } from './load-shedding.ts';
import { firstStageWaitScript, ipxeWaitScript } from '../render/wait-scripts.ts';
import { NotAdmittedError, type AdmissionService } from '../service/admission-service.ts';

// Routes the netbooting machine calls, in boot order (protocol section 1).

/** Image files the installer's route serves, in order of preference (fastest to decompress first). */
const IMAGE_COMPRESSIONS = ['zst', 'gz', 'bz2'] as const;

const exists = (file: string) => access(file).then(() => true, () => false);

export interface MachineRouteDeps {
  service: MayuService;
  outputs: Outputs;
  imagesDir: string;
  /** iPXE's UEFI binary (snponly.efi) is served from here over HTTP too, for UEFI HTTP boot. */
  tftpRoot?: string;
  version: string;
  /** OS image version of a host without its own (config default_coreos_version). */
  defaultImageVersion: string;
  /** Refuses a new registration (429 rate limit, 503 overload) before anything is read or written. */
  gate?: Pick<LoadGate, 'admitNewHost'>;
  /** Admission control (issue 17): machines not admitted are answered scripts that wait and ask again. */
  admission?: { service: AdmissionService; mayuUrl: string };
}

export function machineRoutes(deps: MachineRouteDeps): Router {
  const { service, outputs, imagesDir } = deps;
  const router = new Router();
  const text = (body: string, type = 'text/plain; charset=utf-8') => ({ body, type });

  router.get('/', (ctx) => {
    ctx.body = `this is the iPXE server of mayu ${deps.version}`;
  });

  // Without a query string (the fixed URL dnsmasq hands out): a script that asks again with the
  // machine's serial, MAC and UUID. With one: installed/running hosts boot their disk, every
  // other machine gets the installer. See templates/ipxe_chain_script.ipxe.
  router.get('/ipxebootscript', async (ctx) => {
    if (ctx.querystring === '') {
      ctx.state.log = { boot: 'chain' };
      Object.assign(ctx, text(outputs.ipxeChainScript()));
      return;
    }
    const param = (name: string) => {
      const v = ctx.query[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const query = { serial: param('serial'), mac: param('mac'), uuid: param('uuid') };
    const host = await service.findBootHost(query);
    // issue 17: a machine with no host that may not install yet loops in iPXE (waits, asks again).
    // A machine that must wait is a new machine for the limits and overload bounds, like a first stage's.
    const waits = host ? undefined : deps.admission?.service.checkBoot(query, ctx.ip, deps.gate && (() => deps.gate!.admitNewHost(ctx.ip)));
    if (waits) {
      await waits.recorded;
      ctx.state.log = { boot: 'wait', admission: waits.status, host: waits.serial };
      Object.assign(ctx, text(ipxeWaitScript(deps.admission!.mayuUrl, waits.serial, waits.status, waits.retrySeconds)));
      return;
    }
    const localDisk = bootsFromLocalDisk(host);
    ctx.state.log = { boot: localDisk ? 'local-disk' : 'installer', host: host?.Serial ?? null };
    Object.assign(ctx, text(localDisk ? outputs.ipxeLocalBoot(host!) : outputs.ipxeScript()));
  });

  for (const name of ['vmlinuz', 'initrd.cpio.gz', 'hostinfo-helper']) {
    const route = name === 'hostinfo-helper' ? '/hostinfo-helper' : `/images/${name}`;
    router.get(route, (ctx) => sendFile(ctx, path.join(imagesDir, name), `images/${name}`));
    router.head(route, (ctx) => sendFile(ctx, path.join(imagesDir, name), `images/${name}`));
  }

  // UEFI HTTP boot: the firmware fetches iPXE itself over HTTP (dnsmasq answers vendor class
  // HTTPClient with this URL), so no TFTP is needed; iPXE then asks for /ipxebootscript.
  if (deps.tftpRoot) {
    const efi = path.join(deps.tftpRoot, 'snponly.efi');
    router.get('/uefi/snponly.efi', (ctx) => sendFile(ctx, efi, 'tftproot/snponly.efi'));
    router.head('/uefi/snponly.efi', (ctx) => sendFile(ctx, efi, 'tftproot/snponly.efi'));
  }

  const imageVersion = async (serial: string): Promise<string> => {
    const host = await service.get(serial);
    if (!host) throw new HttpError(404, `unknown host ${serial}: it must fetch its first-stage script first`);
    const version = host.CoreOSVersion || deps.defaultImageVersion;
    if (path.join(version, 'x').startsWith('..') || path.isAbsolute(version)) throw new HttpError(400, `invalid image version ${JSON.stringify(version)}`);
    return version;
  };
  // 0.11's name: the bzip2 image only.
  const bz2Image: RouterMiddleware = async (ctx) => {
    const rel = path.join(await imageVersion(ctx.params.serial!), 'install_image.bin.bz2');
    await sendFile(ctx, path.join(imagesDir, rel), `images/${rel}`);
  };
  router.get('/images/:serial/install_image.bin.bz2', bz2Image);
  router.head('/images/:serial/install_image.bin.bz2', bz2Image);
  // The installer's: the first of .zst, .gz, .bz2 the version has; the installer picks the
  // decompressor by the magic bytes.
  const anyImage: RouterMiddleware = async (ctx) => {
    const version = await imageVersion(ctx.params.serial!);
    let rel = path.join(version, 'install_image.bin.bz2');
    for (const ext of IMAGE_COMPRESSIONS) {
      const candidate = path.join(version, `install_image.bin.${ext}`);
      if (await exists(path.join(imagesDir, candidate))) {
        rel = candidate;
        break;
      }
    }
    await sendFile(ctx, path.join(imagesDir, rel), `images/${rel}`);
  };
  router.get('/images/:serial/install_image.bin', anyImage);
  router.head('/images/:serial/install_image.bin', anyImage);

  // Limits and overload: only a serial mayu has no host for is a new registration (load-shedding.ts);
  // admission's discovered and pending machines have none, so they are limited as new machines.
  const admitIfNew = (serial: string, source: string) => {
    if (deps.gate && !service.find(serial)) deps.gate.admitNewHost(source);
  };

  router.get('/first-stage-script/:serial', async (ctx) => {
    // The installer names the machine's NICs (?nic=<mac>,<driver>) for profile selectors; 0.11's sends none.
    const query = ctx.query.nic;
    const nics = parseNicFacts(query === undefined ? [] : Array.isArray(query) ? query : [query]);
    admitIfNew(ctx.params.serial!, ctx.ip);
    try {
      const { body } = await service.registerAndRender(ctx.params.serial!, (h) => outputs.firstStageScript(h), nics);
      Object.assign(ctx, text(body));
    } catch (err) {
      if (!(err instanceof NotAdmittedError) || !deps.admission) throw err;
      await err.recorded;
      ctx.state.log = { admission: err.status };
      Object.assign(ctx, text(firstStageWaitScript(deps.admission.mayuUrl, err.serial, err.status, err.retrySeconds)));
    }
  });

  const finalConfig = (route: string, render: (h: Host) => string, type: string): RouterMiddleware => async (ctx) => {
    const data = parseHostData(await readJson(ctx, route));
    admitIfNew(data.Serial, ctx.ip);
    let body: string;
    try {
      ({ body } = await service.recordHostData(data, render));
    } catch (err) {
      if (!(err instanceof NotAdmittedError)) throw err;
      await err.recorded;
      throw new HttpError(403, `${err.message}; it must fetch its first-stage script once admitted`);
    }
    Object.assign(ctx, text(body, type));
  };
  router.post('/final-cloud-config.yaml', finalConfig('final-cloud-config', (h) => outputs.cloudConfig(h), 'text/yaml; charset=utf-8'));
  router.post('/final-ignition-config.json', finalConfig('final-ignition-config', (h) => outputs.ignition(h), 'application/json'));

  return router;
}
