import Router from '@koa/router';
import { requireAdmin, type AccessPolicy } from './auth.ts';

// Probes and metrics for the people and programs running mayu (README "Metrics and health").

export interface OpsDeps {
  /** Why mayu cannot serve machines right now; empty when it can. */
  notReadyReasons(): string[];
  /** The Prometheus exposition text. */
  scrapeMetrics(): Promise<{ contentType: string; body: string }>;
}

export function opsRoutes(deps: OpsDeps, policy: AccessPolicy): Router {
  const router = new Router();

  // Open: a liveness probe has no token, and the answer tells nothing about the cluster.
  router.get('/healthz', (ctx) => {
    ctx.type = 'text/plain; charset=utf-8';
    ctx.body = 'ok';
  });

  // Open as well; JSON so a probe's log shows why (dnsmasq down, ...).
  router.get('/readyz', (ctx) => {
    const reasons = deps.notReadyReasons();
    ctx.status = reasons.length === 0 ? 200 : 503;
    ctx.body = { ready: reasons.length === 0, reasons };
  });

  // Host counts per state and profile are operator data: same rule as the other admin reads.
  router.get('/metrics', requireAdmin(policy), async (ctx) => {
    const { contentType, body } = await deps.scrapeMetrics();
    ctx.type = contentType;
    ctx.body = body;
  });

  return router;
}
