import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { Server as NetServer } from 'node:net';

// Node 20's libuv accepts ONE connection per event-loop turn and listening socket (libuv
// #3696). When mayu is busy, a turn lasts up to hundreds of ms, and a storm's new connections
// wait in the kernel's accept queue, drained a few per second (10 000-machine storm: up to
// 60 s, no in-flight bound or quick 503 reaches them). Each more descriptor of the same
// listening socket is one more accept per turn. Node 20 cannot dup() a descriptor nor set
// SO_REUSEPORT; sending the server's handle to a child process and back (SCM_RIGHTS) gives a new
// descriptor each time.

const ECHO = "process.on('message',(m,h)=>{for(let i=0;i<m.n;i++)process.send({i},h);process.send({done:true},()=>process.exit(0));});";

/**
 * `count` more http servers on `server`'s listening socket, each running `setup` (request
 * handler, connection watchers). Best effort: on any failure, none (the one socket still works).
 */
export async function acceptFanout(server: Server, count: number, setup: (extra: Server) => void, timeoutMs = 10_000): Promise<Server[]> {
  if (count <= 0) return [];
  const child = spawn(process.execPath, ['-e', ECHO], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const handles: NetServer[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timed out')), timeoutMs);
      child.on('message', (m: { done?: boolean }, handle?: NetServer) => {
        if (handle) handles.push(handle);
        if (m.done) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`helper exited (${code})`)));
      child.send({ n: count }, server);
    });
  } catch {
    for (const h of handles) h.close();
    return [];
  } finally {
    if (child.exitCode === null) child.kill();
  }
  // Each received net.Server listens on its own descriptor; an http server takes that handle over.
  return handles.map((h) => {
    const extra = createServer();
    (extra as typeof extra & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
    setup(extra);
    extra.listen((h as NetServer & { _handle: unknown })._handle as never);
    return extra;
  });
}
