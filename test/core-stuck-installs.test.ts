import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkIntervalMs, entryFromHistory, formatStuckFor, isWatched, nextEntry, stuckHost, stuckMessage, type StateAtCommit,
} from '../src/core/stuck.ts';

// The pure rules of stuck-install detection (src/core/stuck.ts): which states are watched, how
// since-times follow changes and are rebuilt from history, when a host counts as stuck.

const T0 = Date.parse('2026-12-01T10:00:00Z');
const HOUR = 3600_000;

describe('stuck installs: which states are watched', () => {
  it('watches every installing host', () => {
    assert.equal(isWatched({ state: 'installing', from: 'unknown' }), true);
    assert.equal(isWatched({ state: 'installing', from: undefined }), true);
  });
  it('watches configured only after a reinstall request (from installed, running or installing)', () => {
    assert.equal(isWatched({ state: 'configured', from: 'running' }), true);
    assert.equal(isWatched({ state: 'configured', from: 'installed' }), true);
    assert.equal(isWatched({ state: 'configured', from: 'installing' }), true);
    assert.equal(isWatched({ state: 'configured', from: 'unknown' }), false, 'pre-staged, never installed');
    assert.equal(isWatched({ state: 'configured', from: undefined }), false, 'created configured');
  });
  it('watches configured of unknown origin when history cannot tell (--no-git)', () => {
    assert.equal(isWatched({ state: 'configured', from: undefined }, false), true);
  });
  it('never watches unknown, installed or running', () => {
    for (const state of ['unknown', 'installed', 'running'] as const) assert.equal(isWatched({ state, from: 'installing' }), false, state);
  });
});

describe('stuck installs: since-times', () => {
  it('keeps the entry while the state stays (a metadata change, a retried report) and starts a new one on a change', () => {
    const a = nextEntry(undefined, 'unknown', 'installing', T0);
    assert.deepEqual(a, { state: 'installing', since: T0, from: 'unknown' });
    assert.equal(nextEntry(a, 'installing', 'installing', T0 + HOUR), a);
    assert.deepEqual(nextEntry(a, 'installing', 'installed', T0 + HOUR), { state: 'installed', since: T0 + HOUR, from: 'installing' });
  });

  it('rebuilds from history: the oldest commit of the newest run in the current state, from the state before it', () => {
    const commits: StateAtCommit[] = [ // newest first
      { time: '2026-12-01T12:00:00Z', state: 'configured' }, // e.g. a metadata change while waiting
      { time: '2026-12-01T11:00:00Z', state: 'configured' }, // the reinstall request
      { time: '2026-12-01T10:30:00Z', state: 'running' },
      { time: '2026-12-01T10:00:00Z', state: 'configured' }, // an older episode: not this one
    ];
    assert.deepEqual(entryFromHistory('configured', commits), { state: 'configured', since: Date.parse('2026-12-01T11:00:00Z'), from: 'running' });
  });

  it('rebuilds a host that was created and went straight to installing with no earlier state', () => {
    const commits: StateAtCommit[] = [
      { time: '2026-12-01T10:05:00Z', state: 'installing' },
      { time: '2026-12-01T10:00:00Z', state: 'unknown' },
    ];
    assert.deepEqual(entryFromHistory('installing', commits), { state: 'installing', since: Date.parse('2026-12-01T10:05:00Z'), from: 'unknown' });
    assert.deepEqual(entryFromHistory('installing', [{ time: '2026-12-01T10:05:00Z', state: 'installing' }]),
      { state: 'installing', since: Date.parse('2026-12-01T10:05:00Z'), from: undefined });
  });

  it('gives up on history that does not match the host (none, or the newest commit in another state)', () => {
    assert.equal(entryFromHistory('installing', []), undefined);
    assert.equal(entryFromHistory('installing', [{ time: '2026-12-01T10:05:00Z', state: 'running' }]), undefined);
    assert.equal(entryFromHistory('installing', [{ time: 'not a time', state: 'installing' }]), undefined);
  });
});

describe('stuck installs: flagging', () => {
  const entry = { state: 'installing' as const, since: T0, from: 'unknown' as const };

  it('is not stuck before the threshold, stuck at and after it, with whole seconds', () => {
    assert.equal(stuckHost('n1', entry, T0 + HOUR - 1, HOUR), undefined);
    assert.deepEqual(stuckHost('n1', entry, T0 + HOUR, HOUR), { Serial: 'n1', State: 'installing', Since: '2026-12-01T10:00:00Z', Seconds: 3600, From: 'unknown' });
    assert.equal(stuckHost('n1', entry, T0 + HOUR + 72 * 60_000 + 999, HOUR)!.Seconds, 3600 + 72 * 60);
  });

  it('never flags a pre-staged configured host, however long it waits', () => {
    assert.equal(stuckHost('n2', { state: 'configured', since: T0, from: 'unknown' }, T0 + 100 * HOUR, HOUR), undefined);
    assert.ok(stuckHost('n2', { state: 'configured', since: T0, from: 'running' }, T0 + 2 * HOUR, HOUR));
  });

  it('looks a quarter of the threshold apart, within 100 ms and 30 s', () => {
    assert.equal(checkIntervalMs(HOUR), 30_000);
    assert.equal(checkIntervalMs(60_000), 15_000);
    assert.equal(checkIntervalMs(1000), 250);
    assert.equal(checkIntervalMs(10), 100);
  });

  it('says how long in words an operator reads at a glance', () => {
    assert.equal(formatStuckFor(42), '42s');
    assert.equal(formatStuckFor(45 * 60), '45m');
    assert.equal(formatStuckFor(72 * 60), '1h12m');
    assert.equal(formatStuckFor(50 * 3600), '2d2h');
    assert.equal(stuckMessage({ Serial: 'n1', State: 'installing', Since: '2026-12-01T10:00:00Z', Seconds: 3900, From: null }),
      'stuck in installing for 1h05m (since 2026-12-01T10:00:00Z)');
  });
});
