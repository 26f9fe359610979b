import { Readable } from 'node:stream';
import Router from '@koa/router';
import type { Context } from 'koa';
import { decodeHost, goHtmlSafe, hostToJsonObject, isHostState, type Host } from '../core/host.ts';
import { bootsFromLocalDisk } from '../core/boot-identity.ts';
import { parseFailureReport, REPORT_BODY_LIMIT } from '../core/install-failures.ts';
import { normalizeSerial } from '../core/serial.ts';
import type { Outputs } from '../render/outputs.ts';
import { UnknownHostError, type MayuService } from '../service/mayu-service.ts';
import { requireAdmin, requireReporter, type AccessPolicy } from './auth.ts';
import { readBody, readJsonObject } from './body.ts';
import { HttpError } from './errors.ts';

/** X-Mayu-Boot-Id of boot_complete: a kernel boot_id (a UUID) or any short token of the machine's. */
const BOOT_ID = /^[A-Za-z0-9-]{1,64}$/;

// Operator and installer reports under /admin (protocol section 2). Every PUT answers 202 with
// an empty body; bodies are whole Host objects (mayuctl) of which each route reads one field.

/** 0.11 answered every PUT with 202 and an empty body (koa would send "Accepted"). */
function accepted(ctx: Context): void {
  ctx.status = 202;
  ctx.body = '';
}

/** Optional parts of the server the admin API reports on. */
export interface AdminExtras {
  /** The power hook's last result for a host (config power_hook); absent when none is configured. */
  powerHook?: { lastResult(serial: string): object | undefined };
  /** The audit push (config audit_push); absent when none is configured. */
  auditPush?: { status(): object };
  /** Hosts stuck in installing / configured (README "Stuck installs"). */
  stuck?: { list(): object[] };
}

/** 404 for a serial mayu does not know (the new routes' answer; 0.11's routes keep their 400). */
async function notFoundIfUnknown<T>(serial: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof UnknownHostError) throw new HttpError(404, `host ${normalizeSerial(serial)} not found`);
    throw err;
  }
}

/** What `GET /admin/host/:serial/render/:kind` can render, with the type the machine route serves it as. */
export const RENDER_KINDS = {
  'ignition': { type: 'application/json', render: (o: Outputs, h: Host) => o.ignition(h) },
  'cloud-config': { type: 'text/yaml; charset=utf-8', render: (o: Outputs, h: Host) => o.cloudConfig(h) },
  'first-stage': { type: 'text/plain; charset=utf-8', render: (o: Outputs, h: Host) => o.firstStageScript(h) },
  // What /ipxebootscript?serial=... answers this host.
  'ipxe': { type: 'text/plain; charset=utf-8', render: (o: Outputs, h: Host) => (bootsFromLocalDisk(h) ? o.ipxeLocalBoot(h) : o.ipxeScript()) },
} as const;

/**
 * The list as 0.11's json.Encoder wrote it (compact, Go's escapes, a newline at the end), made
 * a hundred hosts at a time as the socket takes them: 10 000 hosts as one array of objects and
 * one string cost ~15 MB at once.
 */
function* jsonArrayChunks(hosts: readonly Readonly<Host>[]): Generator<string> {
  const per = 100;
  for (let i = 0; i < hosts.length; i += per) {
    const part = hosts.slice(i, i + per).map((h) => goHtmlSafe(JSON.stringify(hostToJsonObject(h)))).join(',');
    yield `${i === 0 ? '[' : ','}${part}`;
  }
  yield hosts.length === 0 ? '[]\n' : ']\n';
}

export function adminRoutes(service: MayuService, outputs: Outputs, policy: AccessPolicy, extras: AdminExtras = {}): Router {
  const router = new Router({ prefix: '/admin' });
  const admin = requireAdmin(policy);

  router.get('/hosts', admin, async (ctx) => {
    ctx.type = 'application/json';
    ctx.body = Readable.from(jsonArrayChunks(await service.list()));
  });

  router.get('/host/:serial', admin, async (ctx) => {
    const host = await service.get(ctx.params.serial!);
    if (!host) throw new HttpError(404, `host ${ctx.params.serial} not found`);
    ctx.body = hostToJsonObject(host);
  });

  // The installer's failure reports, per host and those still standing on any host.
  router.get('/host/:serial/install-failures', admin, async (ctx) => {
    ctx.body = await notFoundIfUnknown(ctx.params.serial!, () => service.installFailures(ctx.params.serial!));
  });
  router.get('/install-failures', admin, async (ctx) => {
    ctx.body = await service.currentInstallFailures();
  });

  // Stuck installs now: [{Serial, State, Since, Seconds, From}] by serial.
  router.get('/stuck', admin, async (ctx) => {
    ctx.body = extras.stuck?.list() ?? [];
  });

  router.get('/audit-push', admin, async (ctx) => {
    if (!extras.auditPush) throw new HttpError(404, 'no audit push is configured (config.yaml audit_push)');
    ctx.body = extras.auditPush.status();
  });

  router.get('/host/:serial/power-hook', admin, async (ctx) => {
    if (!extras.powerHook) throw new HttpError(404, 'no power hook is configured (config.yaml power_hook)');
    const serial = normalizeSerial(ctx.params.serial!);
    const result = extras.powerHook.lastResult(serial);
    if (!result) throw new HttpError(404, `the power hook has not run for host ${serial} since mayu started`);
    ctx.body = result;
  });

  // 204: the deletion is durable (committed) when the answer is sent.
  router.delete('/host/:serial', admin, async (ctx) => {
    await readBody(ctx);
    await service.deleteHost(ctx.params.serial!);
    ctx.status = 204;
  });

  // ?with=conf adds each commit's conf.json text (the dashboard diffs them).
  router.get('/host/:serial/history', admin, async (ctx) => {
    ctx.body = ctx.query['with'] === 'conf' ? await service.historyWithConf(ctx.params.serial!) : await service.history(ctx.params.serial!);
  });

  // Dry run: what mayu would serve this host, rendered without writing anything. The first-stage
  // script and configs carry the host's report token, which the admin token may see.
  router.get('/host/:serial/render/:kind', admin, async (ctx) => {
    const kind = ctx.params.kind!;
    if (!Object.hasOwn(RENDER_KINDS, kind)) {
      throw new HttpError(400, `unknown render kind ${JSON.stringify(kind.slice(0, 40))}: expected one of ${Object.keys(RENDER_KINDS).join(', ')}`);
    }
    const rawProfile = ctx.query['profile'];
    const profile = Array.isArray(rawProfile) ? rawProfile[0] : rawProfile;
    const stored = await service.get(ctx.params.serial!);
    if (stored && profile !== undefined) {
      throw new HttpError(400, `host ${stored.Serial} exists (profile ${JSON.stringify(stored.Profile)}): profile previews only hosts not registered yet`);
    }
    if (!stored && profile === undefined) {
      throw new HttpError(404, `host ${ctx.params.serial} not found; give a profile (?profile=<name>) to preview it as its creation would make it`);
    }
    const { host, created } = service.preview(ctx.params.serial!, profile);
    const { type, render } = RENDER_KINDS[kind as keyof typeof RENDER_KINDS];
    ctx.set('X-Mayu-Preview', created ? 'not-registered' : 'stored-host');
    ctx.type = type;
    ctx.body = render(outputs, host);
  });

  /** PUT route whose body is a Host; `apply` gets the decoded host and the raw object. */
  const put = (route: string, apply: (serial: string, body: Host, raw: Record<string, unknown>) => Promise<unknown>) => {
    router.put(`/host/:serial/${route}`, admin, async (ctx) => {
      const raw = await readJsonObject(ctx, route);
      let body: Host;
      try {
        body = decodeHost(raw);
      } catch (err) {
        throw new HttpError(400, `unable to parse json data in ${route} request: ${(err as Error).message}`);
      }
      await apply(ctx.params.serial!, body, raw);
      accepted(ctx);
    });
  };

  /** PUT route with no body. */
  const putEmpty = (route: string, auth: typeof admin, apply: (serial: string) => Promise<unknown>) => {
    router.put(`/host/:serial/${route}`, auth, async (ctx) => {
      await readBody(ctx);
      await apply(ctx.params.serial!);
      accepted(ctx);
    });
  };

  // The two machine reports: the host's report token or the admin token (auth.ts).
  putEmpty('set_installed', requireReporter(policy, 'set_installed'), (s) => service.setInstalled(s));
  putEmpty('mark_fresh', admin, (s) => service.markFresh(s));
  // A machine report like set_installed: the installer says why it stopped (README "Install failures").
  router.put('/host/:serial/install_failed', requireReporter(policy, 'install_failed'), async (ctx) => {
    const text = await readBody(ctx, REPORT_BODY_LIMIT);
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new HttpError(400, 'install_failed: the body is not JSON: expected {"Stage": "disk", "Reason": "one line", "Details": "optional"}');
    }
    const report = parseFailureReport(raw);
    await notFoundIfUnknown(ctx.params.serial!, () => service.reportInstallFailure(ctx.params.serial!, report));
    accepted(ctx);
  });
  router.put('/host/:serial/boot_complete', requireReporter(policy, 'boot_complete'), async (ctx) => {
    // The installed OS may send no body at all; an empty one means "no versions to report".
    const text = (await readBody(ctx)).trim();
    let reported: Host;
    try {
      reported = decodeHost(text === '' ? {} : JSON.parse(text));
    } catch {
      throw new HttpError(400, 'unable to parse json data in boot_complete request');
    }
    // Optional (new): the boot's id, so a retried report of the same boot makes no second commit.
    const bootId = ctx.get('x-mayu-boot-id');
    if (bootId !== '' && !BOOT_ID.test(bootId)) throw new HttpError(400, 'invalid X-Mayu-Boot-Id: expected 1 to 64 letters, digits or "-"');
    await service.bootComplete(ctx.params.serial!, reported, bootId === '' ? undefined : bootId);
    accepted(ctx);
  });
  put('set_metadata', (s, b) => service.setMetadata(s, b.FleetMetadata ?? []));
  put('set_provider_id', (s, b) => service.setProviderId(s, b.ProviderId ?? ''));
  put('set_ipmi_addr', (s, b) => service.setIpmiAddr(s, b.IPMIAddr ?? ''));
  put('set_cabinet', (s, b) => service.setCabinet(s, b.Cabinet ?? 0));
  put('set_etcd_cluster_token', (s, b) => service.setEtcdToken(s, b.EtcdClusterToken ?? ''));
  put('set_state', (s, b, raw) => {
    // decodeHost defaults State to "unknown"; a body without State must not mean that.
    if (!isHostState(raw.State)) throw new HttpError(400, `unable to parse json data in set_state request: State must be one of unknown, configured, installing, installed, running`);
    return service.setState(s, b.State);
  });
  put('set_profile', (s, b, raw) => {
    if (!b.Profile) throw new HttpError(400, 'set_profile: Profile is required (the name of a profile)');
    if (raw.Force !== undefined && typeof raw.Force !== 'boolean') throw new HttpError(400, 'set_profile: Force must be true or false');
    return service.setProfile(s, b.Profile, raw.Force === true);
  });
  put('override', (s, b) => service.override(s, b.Overrides ?? {}));

  return router;
}
