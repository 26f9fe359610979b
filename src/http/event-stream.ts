import { PassThrough } from 'node:stream';
import Router from '@koa/router';
import type { HostChangeEvent } from '../service/mayu-service.ts';
import { requireAdmin, type AccessPolicy } from './auth.ts';

// GET /admin/events: every durable host change as a server-sent event, one JSON object each.

export interface EventStreamDeps {
  subscribe(listener: (event: HostChangeEvent) => void): () => void;
  /** Comment lines this often keep proxies and load balancers from closing an idle stream. */
  heartbeatMs: number;
}

/**
 * The wire form of a change: `from` is null for a host this change created; a deletion has
 * `to: null` and `deleted: true` (`from` is the state the host had), other changes no `deleted`.
 * An install failure report has `installFailure` ({Time, Stage, Reason, Details?, State}); a
 * host that became stuck (nothing written) has `stuck` ({Serial, State, Since, Seconds, From}).
 */
export function eventJson(e: HostChangeEvent): string {
  return JSON.stringify({
    serial: e.serial, from: e.from ?? null, to: e.deleted ? null : e.to, messages: e.messages,
    ...(e.commit === undefined ? {} : { commit: e.commit }),
    ...(e.deleted ? { deleted: true } : {}),
    ...(e.installFailure ? { installFailure: e.installFailure } : {}),
    ...(e.stuck ? { stuck: e.stuck } : {}),
  });
}

export function eventRoutes(deps: EventStreamDeps, policy: AccessPolicy): Router {
  const router = new Router({ prefix: '/admin' });

  router.get('/events', requireAdmin(policy), (ctx) => {
    const stream = new PassThrough();
    ctx.req.socket.setTimeout(0);
    ctx.req.socket.setNoDelay(true);
    ctx.status = 200;
    ctx.body = stream;
    ctx.type = 'text/event-stream';
    ctx.set('Cache-Control', 'no-cache, no-transform');
    // nginx buffers proxied answers unless told not to.
    ctx.set('X-Accel-Buffering', 'no');

    const unsubscribe = deps.subscribe((e) => stream.write(`data: ${eventJson(e)}\n\n`));
    const heartbeat = setInterval(() => stream.write(': heartbeat\n\n'), deps.heartbeatMs);
    heartbeat.unref();
    // Sent at once: the client knows it is subscribed before any change it may cause.
    stream.write(': subscribed\n\n');
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      unsubscribe();
      clearInterval(heartbeat);
      stream.end();
    };
    // The response's close, not the request's: a GET's request 'close' fires once it is read.
    ctx.res.on('close', close);
    // The server allows half-open sockets (for busybox nc's PUTs), so a client that goes away is
    // only an 'end' here; without this the stream would linger until a heartbeat write failed.
    const socket = ctx.req.socket;
    const onEnd = () => {
      close();
      socket.destroy();
    };
    socket.once('end', onEnd);
    ctx.res.once('close', () => socket.off('end', onEnd));
    ctx.res.on('error', close);
  });

  return router;
}
