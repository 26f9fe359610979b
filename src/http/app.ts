import Koa from 'koa';
import type { Logger } from 'pino';
import type { MayuService } from '../service/mayu-service.ts';
import { adminRoutes, type AdminExtras } from './admin-routes.ts';
import { admissionRoutes } from './admission-routes.ts';
import type { AccessPolicy } from './auth.ts';
import { discoveryRoutes, type DiscoveryRouteDeps } from './discovery-routes.ts';
import { HttpError, statusFor } from './errors.ts';
import { eventRoutes, type EventStreamDeps } from './event-stream.ts';
import type { ConnectionClock } from './connection-clock.ts';
import { RefusalError, type LoadGate } from './load-shedding.ts';
import { machineRoutes, type MachineRouteDeps } from './machine-routes.ts';
import { opsRoutes, type OpsDeps } from './ops-routes.ts';
import { uiRoutes } from './ui-routes.ts';

export interface AppDeps extends MachineRouteDeps {
  service: MayuService;
  logger: Logger;
  access: AccessPolicy;
  admin?: AdminExtras;
  ops: OpsDeps;
  events: EventStreamDeps;
  /** The /etcd discovery routes; absent with an external discovery service (--etcd-discovery). */
  discovery?: DiscoveryRouteDeps;
  /**
   * Why the state this server answers from cannot be trusted right now (the etcd store cannot
   * reach etcd): every route but the probes and /metrics answers 503 with it.
   */
  unavailable?: () => string | undefined;
  /** Told about every answered request: method, the router's path pattern ("(unmatched)" if none), status. */
  observeRequest?: (method: string, route: string, status: number) => void;
  /** Overload protection and registration limits (load-shedding.ts); absent: no bounds. */
  gate?: LoadGate;
  /** Accept times of connections: the log's sinceAcceptMs (connection-clock.ts). */
  connections?: ConnectionClock;
}

/** Koa app: one JSON log line per request; errors become plain-text answers, never a crash. */
export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  app.silent = true;
  const { logger } = deps;

  app.use(async (ctx, next) => {
    const started = process.hrtime.bigint();
    const sinceAccept = deps.connections?.firstRequestWait(ctx.req.socket);
    try {
      await next();
    } catch (err) {
      const status = statusFor(err);
      const message = err instanceof Error ? err.message : String(err);
      ctx.status = status ?? 500;
      if (err instanceof HttpError) ctx.set(err.headers);
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body = status ? message : `internal error: ${message}`;
      if (err instanceof RefusalError) ctx.message = err.reasonPhrase;
      if (!status) logger.error({ err, method: ctx.method, url: ctx.url }, 'request failed');
    } finally {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      // Routes may add what they decided (e.g. the iPXE boot answer) to ctx.state.log.
      const extra = (ctx.state as { log?: Record<string, unknown> }).log;
      // The pattern, not the URL: one series per route, whatever serials machines send.
      const matched = (ctx as { _matchedRoute?: string | RegExp })._matchedRoute;
      deps.observeRequest?.(ctx.method, matched === undefined ? '(unmatched)' : String(matched), ctx.status);
      logger.info({
        method: ctx.method, url: ctx.url, status: ctx.status, ms: Math.round(ms * 100) / 100, remote: ctx.ip,
        ...(sinceAccept === undefined ? {} : { sinceAcceptMs: Math.round(sinceAccept) }), ...extra,
      }, 'request');
    }
  });

  // Bounded work in flight (load-shedding.ts): past the bound, a 503 before any route runs.
  if (deps.gate) app.use(deps.gate.middleware());

  // Memory may be behind what other replicas did (etcd store without etcd): answer nothing from it.
  if (deps.unavailable) {
    const probes = new Set(['/healthz', '/readyz', '/metrics']);
    app.use(async (ctx, next) => {
      const reason = probes.has(ctx.path) ? undefined : deps.unavailable!();
      if (!reason) return next();
      ctx.status = 503;
      ctx.set('Retry-After', '2');
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body = `mayu cannot serve from here right now: ${reason}`;
    });
  }

  // Open like the other machine routes: installed machines' etcd calls them (0.11 did the same).
  if (deps.discovery) app.use(discoveryRoutes(deps.discovery));
  const routers = [
    machineRoutes(deps), opsRoutes(deps.ops, deps.access), eventRoutes(deps.events, deps.access),
    adminRoutes(deps.service, deps.outputs, deps.access, deps.admin), uiRoutes(),
    ...(deps.admission ? [admissionRoutes(deps.admission.service, deps.access)] : []),
  ];
  for (const router of routers) {
    app.use(router.routes());
    app.use(router.allowedMethods());
  }
  app.on('error', (err) => logger.error({ err }, 'koa error'));
  return app;
}
