import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/**
 * When each connection was accepted, so the request log can say how long a connection's first
 * request took to reach the app (`sinceAcceptMs`): time the event loop was too busy to read it.
 * Time in the kernel's accept queue is before this and not seen here.
 */
export class ConnectionClock {
  private readonly accepted = new WeakMap<Socket, number>();

  watch(server: Server): void {
    server.on('connection', (socket: Socket) => this.accepted.set(socket, performance.now()));
  }

  /** Ms from the accept to now for a connection's first request; undefined for later ones. */
  firstRequestWait(socket: Socket): number | undefined {
    const at = this.accepted.get(socket);
    if (at === undefined) return undefined;
    this.accepted.delete(socket);
    return performance.now() - at;
  }
}
