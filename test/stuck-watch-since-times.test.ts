import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Host, HostState } from '../src/core/host.ts';
import type { HostChangeEvent } from '../src/service/mayu-service.ts';
import { StuckWatch } from '../src/service/stuck-watch.ts';
import type { CommitInfo } from '../src/store/store.ts';

// StuckWatch with a fake clock and store: episodes from changes, once each; the start-up rebuild
// from history, and its fallback when there is none (--no-git).

const MIN = 60_000;

function fakeStore(hosts: Record<string, HostState>, history?: Record<string, { time: string; state: HostState }[]>) {
  const host = (serial: string): Host | undefined => (hosts[serial] ? { Serial: serial, State: hosts[serial]!, ConnectedNIC: '', LastBoot: '' } : undefined);
  return {
    get: host,
    scan: () => Object.keys(hosts).map((s) => host(s)!),
    history: async (serial: string): Promise<CommitInfo[]> => {
      if (!history) throw new Error('no history: mayu runs with --no-git');
      return (history[serial] ?? []).map((c, i) => ({ commit: `${serial}-${i}`, time: c.time, message: `${serial}: x` }));
    },
    confAt: async (serial: string, commit: string) => {
      const c = history![serial]![Number(commit.slice(serial.length + 1))]!;
      return JSON.stringify({ Serial: serial, State: c.state });
    },
  };
}

const change = (serial: string, from: HostState | undefined, to: HostState): HostChangeEvent =>
  ({ serial, from, to, messages: ['x'], host: { Serial: serial, State: to, ConnectedNIC: '', LastBoot: '' } });

describe('StuckWatch', () => {
  it('flags an installing host once per episode, after the threshold; a change of state ends it', () => {
    let now = Date.parse('2026-12-01T10:00:00Z');
    const hosts: Record<string, HostState> = {};
    const published: HostChangeEvent[] = [];
    const watch = new StuckWatch({ store: fakeStore(hosts), afterMs: 60 * MIN, now: () => now, publish: (e) => published.push(e) });
    hosts['a'] = 'installing';
    watch.observe(change('a', 'unknown', 'installing'));
    now += 59 * MIN;
    watch.check();
    assert.equal(published.length, 0);
    watch.observe(change('a', 'installing', 'installing')); // a retried report: same episode
    now += MIN;
    watch.check();
    watch.check();
    assert.deepEqual(published.map((e) => [e.serial, e.stuck?.Seconds, e.messages[0]]), [['a', 3600, 'stuck in installing for 1h00m (since 2026-12-01T10:00:00Z)']]);
    assert.deepEqual([...watch.counts()], [['installing', 1], ['configured', 0]]);
    watch.observe(published[0]!); // its own event changes nothing
    assert.equal(watch.list().length, 1);
    hosts['a'] = 'installed';
    watch.observe(change('a', 'installing', 'installed'));
    assert.deepEqual(watch.list(), []);
    hosts['a'] = 'configured';
    watch.observe(change('a', 'installed', 'configured'));
    now += 61 * MIN;
    watch.check();
    assert.deepEqual(published.map((e) => e.stuck?.State), ['installing', 'configured'], 'a new episode, announced again');
  });

  it('rebuilds since-times at start from history; without history, from the start time', async () => {
    const start = Date.parse('2026-12-01T12:00:00Z');
    const withGit = new StuckWatch({
      store: fakeStore({ r: 'configured', p: 'configured' }, {
        r: [{ time: '2026-12-01T10:30:00Z', state: 'configured' }, { time: '2026-12-01T10:00:00Z', state: 'running' }],
        p: [{ time: '2026-12-01T09:00:00Z', state: 'configured' }, { time: '2026-12-01T08:00:00Z', state: 'unknown' }],
      }),
      afterMs: 60 * MIN, now: () => start, publish: () => {},
    });
    withGit.start();
    await withGit.ready();
    withGit.close();
    assert.deepEqual(withGit.list(), [{ Serial: 'r', State: 'configured', Since: '2026-12-01T10:30:00Z', Seconds: 5400, From: 'running' }], 'p is pre-staged');

    let now = start;
    const noGit = new StuckWatch({ store: fakeStore({ r: 'configured' }), afterMs: 60 * MIN, now: () => now, publish: () => {} });
    noGit.start();
    await noGit.ready();
    noGit.close();
    assert.deepEqual(noGit.list(), []);
    now += 60 * MIN;
    assert.deepEqual(noGit.list(), [{ Serial: 'r', State: 'configured', Since: '2026-12-01T12:00:00Z', Seconds: 3600, From: null }]);
  });
});
