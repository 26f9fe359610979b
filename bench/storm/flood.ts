import http from 'node:http';

// A flood of unknown serials: scripts (or netbooting lab VMs) asking for first-stage scripts of
// serials mayu never saw, as fast as they are answered and without honouring Retry-After (the
// worst case). Each source is its own loopback address (127.0.0.2, 127.0.0.3, ...: Linux routes
// all of 127/8 to lo), so mayu's per-source buckets apply as they would on a rack.

export interface FloodOptions {
  url: string;
  /** Distinct source addresses, 127.0.0.2 upwards. */
  sources: number;
  /** Requests in flight per source. */
  perSource: number;
  /** Runs until this resolves. */
  until: Promise<void>;
}

export interface FloodResult {
  seconds: number;
  /** Answers by status: 200 = a host was created, 429 rate-limited, 503 overload. */
  byStatus: Map<number, number>;
  /** Serials that were created (200). */
  created: string[];
  /** Latencies in ms of the refusals (429/503): how quick "no" is. */
  refusalLatencies: number[];
  errors: number;
}

export async function runFlood(opts: FloodOptions): Promise<FloodResult> {
  const byStatus = new Map<number, number>();
  const created: string[] = [];
  const refusalLatencies: number[] = [];
  let errors = 0;
  let stopped = false;
  void opts.until.then(() => (stopped = true));
  const t0 = performance.now();

  const get = (agent: http.Agent, localAddress: string, serial: string) =>
    new Promise<number>((resolve, reject) => {
      const req = http.get(`${opts.url}/first-stage-script/${serial}`, { agent, localAddress }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      });
      req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
      req.on('error', reject);
    });

  const loops: Promise<void>[] = [];
  const agents: http.Agent[] = [];
  for (let s = 0; s < opts.sources; s++) {
    const localAddress = `127.0.0.${2 + s}`;
    const agent = new http.Agent({ keepAlive: true, maxSockets: opts.perSource });
    agents.push(agent);
    for (let c = 0; c < opts.perSource; c++) {
      loops.push((async () => {
        for (let n = 0; !stopped; n++) {
          const serial = `flood-${s}-${c}-${n}`;
          const started = performance.now();
          try {
            const status = await get(agent, localAddress, serial);
            byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
            if (status === 200) created.push(serial);
            else if (status === 429 || status === 503) refusalLatencies.push(performance.now() - started);
          } catch {
            errors++;
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      })());
    }
  }
  await Promise.all(loops);
  for (const agent of agents) agent.destroy();
  return { seconds: (performance.now() - t0) / 1000, byStatus, created, refusalLatencies, errors };
}
