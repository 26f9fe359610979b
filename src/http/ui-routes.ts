import path from 'node:path';
import Router from '@koa/router';
import type { Context } from 'koa';
import { HttpError } from './errors.ts';
import { sendFile } from './file-response.ts';

// GET /ui/: the operator dashboard, plain ES modules and CSS from src/ui/ (no build step). The
// files are open: they hold no cluster data; the page asks for the admin token and sends it to
// the /admin routes, which check it as for any other client.

export const UI_DIR = path.resolve(import.meta.dirname, '../ui');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

// The page builds every element from DOM calls and sets text with textContent: no inline script,
// no style attribute, nothing from another origin.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export function uiRoutes(dir = UI_DIR): Router {
  const router = new Router();

  const serve = async (ctx: Context, name: string) => {
    // Flat folder, fixed extensions: no path ever leaves it.
    const ext = path.extname(name);
    if (!/^[a-z0-9][a-z0-9-]*\.[a-z]+$/.test(name) || !Object.hasOwn(TYPES, ext)) throw new HttpError(404, `file not found: ui/${name.slice(0, 80)}`);
    ctx.set('Cache-Control', 'no-cache');
    ctx.set('Content-Security-Policy', CSP);
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    await sendFile(ctx, path.join(dir, name), `ui/${name}`, TYPES[ext]);
  };

  // The router matches "/ui" and "/ui/" alike; relative module URLs need the slash.
  router.get('/ui', async (ctx) => {
    if (!ctx.path.endsWith('/')) return ctx.redirect('/ui/');
    await serve(ctx, 'index.html');
  });
  router.get('/ui/:file', (ctx) => serve(ctx, ctx.params.file!));

  return router;
}
