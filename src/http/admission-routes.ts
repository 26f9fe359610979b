import Router, { type RouterMiddleware } from '@koa/router';
import type { Context } from 'koa';
import { hostToJsonObject } from '../core/host.ts';
import { AdmissionRequestError, type AdmissionService } from '../service/admission-service.ts';
import { HostExistsError } from '../service/mayu-service.ts';
import { requireAdmin, type AccessPolicy } from './auth.ts';
import { readBody } from './body.ts';
import { HttpError } from './errors.ts';

// Operators' admission routes (issue 17): the machines waiting, approve, reject, the inventory.
// Every refusal is a 4xx with the reason, and writes nothing.

/** Optional JSON body `{"Profile": "<name>"}` (empty body: none). */
async function profileOf(ctx: Context, route: string): Promise<string | undefined> {
  const text = (await readBody(ctx)).trim();
  if (text === '') return undefined;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpError(400, `unable to parse json data in ${route} request`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, `${route}: expected {"Profile": "<name>"}`);
  const extra = Object.keys(body).filter((k) => k !== 'Profile');
  if (extra.length > 0) throw new HttpError(400, `${route}: unknown field ${JSON.stringify(extra[0]!.slice(0, 40))} (only "Profile")`);
  const profile = (body as { Profile?: unknown }).Profile;
  if (profile === undefined || profile === null || profile === '') return undefined;
  if (typeof profile !== 'string') throw new HttpError(400, `${route}: Profile must be a string`);
  return profile;
}

/** The service's refusals as HTTP answers. */
const answers: RouterMiddleware = async (_ctx, next) => {
  try {
    await next();
  } catch (err) {
    if (err instanceof AdmissionRequestError) throw new HttpError(err.status, err.message);
    if (err instanceof HostExistsError) throw new HttpError(409, err.message);
    throw err;
  }
};

export function admissionRoutes(admission: AdmissionService, policy: AccessPolicy): Router {
  const router = new Router({ prefix: '/admin' });
  const admin = requireAdmin(policy);
  router.use(answers);

  router.get('/pending', admin, (ctx) => {
    ctx.body = { Mode: admission.mode, Machines: admission.pending() };
  });

  router.put('/host/:serial/approve', admin, async (ctx) => {
    const host = await admission.approve(ctx.params.serial!, await profileOf(ctx, 'approve'));
    ctx.body = hostToJsonObject(host);
  });

  router.put('/host/:serial/reject', admin, async (ctx) => {
    await admission.reject(ctx.params.serial!);
    ctx.status = 202;
    ctx.body = '';
  });

  router.get('/inventory', admin, (ctx) => {
    ctx.body = admission.inventoryList();
  });
  router.get('/inventory/:serial', admin, (ctx) => {
    ctx.body = admission.inventoryEntry(ctx.params.serial!);
  });
  router.put('/inventory/:serial', admin, async (ctx) => {
    const changed = await admission.inventoryAdd(ctx.params.serial!, await profileOf(ctx, 'inventory'));
    ctx.status = changed ? 201 : 200;
    ctx.body = admission.inventoryEntry(ctx.params.serial!);
  });
  router.delete('/inventory/:serial', admin, async (ctx) => {
    await admission.inventoryRemove(ctx.params.serial!);
    ctx.status = 204;
  });
  return router;
}
