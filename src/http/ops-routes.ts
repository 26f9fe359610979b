import Router from '@koa/router';
import { requireAdmin, type AccessPolicy } from './auth.ts';

// Probes and metrics for the people and programs running mayu (README "Metrics and health").

export interface OpsDeps {
  /** Why mayu cannot serve machines right now; empty when it can. */
  notReadyReasons(): string[];
  /**
   * What an operator should see in /readyz that never makes it fail (a failing audit push:
   * provisioning goes on), and extra fields for the answer; /readyz is open, so nothing secret.
   */
  readiness?(): { warnings: string[]; details: Record<string, unknown> };
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

  // Open as well; JSON so a probe's log shows why (dnsmasq down, ...). Warnings (audit push
  // failing) are shown but never turn the answer into a 503.
  router.get('/readyz', (ctx) => {
    const reasons = deps.notReadyReasons();
    const { warnings, details } = deps.readiness?.() ?? { warnings: [], details: {} };
    ctx.status = reasons.length === 0 ? 200 : 503;
    ctx.body = { ready: reasons.length === 0, reasons, warnings, ...details };
  });

  // Host counts per state and profile are operator data: same rule as the other admin reads.
  router.get('/metrics', requireAdmin(policy), async (ctx) => {
    const { contentType, body } = await deps.scrapeMetrics();
    ctx.type = contentType;
    ctx.body = body;
  });

  return router;
}
