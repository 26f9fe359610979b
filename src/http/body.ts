import type { Context } from 'koa';
import { HttpError } from './errors.ts';

export const JSON_BODY_LIMIT = 64 * 1024;

/** Reads the raw body, refusing more than `limit` bytes (413) before buffering it all. */
export async function readBody(ctx: Context, limit = JSON_BODY_LIMIT): Promise<string> {
  const declared = Number(ctx.get('content-length') || 0);
  if (declared > limit) throw new HttpError(413, `request body too large: ${declared} bytes, limit ${limit}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, `request body too large: over ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** JSON body with 0.11's error text for the route (`unable to parse json data in <route> request`). */
export async function readJson(ctx: Context, route: string): Promise<unknown> {
  const text = await readBody(ctx);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, `unable to parse json data in ${route} request`);
  }
}

/** JSON object body; a non-object (array, number, null) gets the same 0.11 error. */
export async function readJsonObject(ctx: Context, route: string): Promise<Record<string, unknown>> {
  const value = await readJson(ctx, route);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HttpError(400, `unable to parse json data in ${route} request`);
  }
  return value as Record<string, unknown>;
}
