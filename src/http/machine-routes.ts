import path from 'node:path';
import Router, { type RouterMiddleware } from '@koa/router';
import { bootsFromLocalDisk } from '../core/boot-identity.ts';
import { parseHostData } from '../core/host-data.ts';
import type { Host } from '../core/host.ts';
import type { MayuService } from '../service/mayu-service.ts';
import { readJson } from './body.ts';
import { HttpError } from './errors.ts';
import { sendFile } from './file-response.ts';
import type { Outputs } from '../render/outputs.ts';
import type { LoadGate } from './load-shedding.ts';

// Routes the netbooting machine calls, in boot order (protocol section 1).

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
    const host = await service.findBootHost({ serial: param('serial'), mac: param('mac'), uuid: param('uuid') });
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

  const installImage: RouterMiddleware = async (ctx) => {
    const host = await service.get(ctx.params.serial!);
    if (!host) throw new HttpError(404, `unknown host ${ctx.params.serial}: it must fetch its first-stage script first`);
    const version = host.CoreOSVersion || deps.defaultImageVersion;
    const rel = path.join(version, 'install_image.bin.bz2');
    if (rel.startsWith('..') || path.isAbsolute(rel)) throw new HttpError(400, `invalid image version ${JSON.stringify(version)}`);
    await sendFile(ctx, path.join(imagesDir, rel), `images/${rel}`);
  };
  router.get('/images/:serial/install_image.bin.bz2', installImage);
  router.head('/images/:serial/install_image.bin.bz2', installImage);

  // Limits and overload: only a serial mayu does not know is a new registration (load-shedding.ts).
  const admitIfNew = (serial: string, source: string) => {
    if (deps.gate && !service.find(serial)) deps.gate.admitNewHost(source);
  };

  router.get('/first-stage-script/:serial', async (ctx) => {
    admitIfNew(ctx.params.serial!, ctx.ip);
    const { body } = await service.registerAndRender(ctx.params.serial!, (h) => outputs.firstStageScript(h));
    Object.assign(ctx, text(body));
  });

  const finalConfig = (route: string, render: (h: Host) => string, type: string): RouterMiddleware => async (ctx) => {
    const data = parseHostData(await readJson(ctx, route));
    admitIfNew(data.Serial, ctx.ip);
    const { body } = await service.recordHostData(data, render);
    Object.assign(ctx, text(body, type));
  };
  router.post('/final-cloud-config.yaml', finalConfig('final-cloud-config', (h) => outputs.cloudConfig(h), 'text/yaml; charset=utf-8'));
  router.post('/final-ignition-config.json', finalConfig('final-ignition-config', (h) => outputs.ignition(h), 'application/json'));

  return router;
}
