import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { NotStoredError } from '../src/fs/write-errors.ts';
import { JournalUnusableError } from '../src/git/journal.ts';
import { NewHostsRefusedError, StorageWatch } from '../src/store/disk-space.ts';
import { captureLogger } from './helpers/log-capture.ts';

const MiB = 1024 * 1024;

async function watch(free: { bytes: number }, policy = { minFreeBytes: 64 * MiB, minFreePercent: 1 }) {
  const dir = await mkdtemp(path.join(tmpdir(), 'mayu-watch-'));
  const { logger, lines } = captureLogger();
  const w = new StorageWatch({ dir, probeDir: dir, policy, logger, statfs: () => ({ freeBytes: free.bytes, totalBytes: 100_000 * MiB }) });
  return { w, lines, msgs: () => lines.map((l) => String(l.msg)) };
}

const enospc = () => new NotStoredError(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));

describe('storage watch', () => {
  it('threshold is the larger of bytes and share; new hosts refused below it, with hysteresis and one line per episode', async () => {
    const free = { bytes: 2000 * MiB };
    const { w, msgs } = await watch(free);
    assert.equal(w.threshold(100_000 * MiB), 1000 * MiB, '1 % of the file system beats 64 MiB');
    w.admitNewHost();
    free.bytes = 999 * MiB;
    for (let i = 0; i < 3; i++) assert.throws(() => w.admitNewHost(), (e: unknown) => e instanceof NewHostsRefusedError && /999 MiB free, below the 1000 MiB kept/.test((e as Error).message));
    free.bytes = 1010 * MiB; // above the threshold, not yet 1/16 above it: still refused
    assert.throws(() => w.admitNewHost(), NewHostsRefusedError);
    free.bytes = 1100 * MiB;
    w.admitNewHost();
    const episode = msgs().filter((m) => m.startsWith('storage: free space'));
    assert.equal(episode.length, 2, String(episode));
    assert.match(episode[0]!, /^storage: free space low \(999 MiB free, below 1000 MiB\): new hosts are refused/);
    assert.match(episode[1]!, /^storage: free space back above the threshold/);
    assert.equal(w.status().refused.new_host, 4);
  });

  it('a failed write makes it not ready until a probe write succeeds; a stored change alone does not end it', async () => {
    const { w, msgs } = await watch({ bytes: 10_000 * MiB });
    w.writeFailed(enospc(), 2);
    w.writeFailed(enospc(), 1);
    assert.match(w.notReadyReasons()[0]!, /^changes cannot be stored since .*: disk full \(ENOSPC\); changes are answered 507 until a write succeeds$/);
    assert.equal(w.status().refused.not_stored, 3);
    w.writeSucceeded(); // starts a probe, which succeeds here (the temp dir has room)
    await w.close();
    assert.deepEqual(w.notReadyReasons(), []);
    assert.deepEqual(msgs().filter((m) => m.startsWith('storage: changes')).map((m) => m.split(' (')[0]), ['storage: changes cannot be stored', 'storage: changes are stored again']);
  });

  it('a journal that cannot undo a failed append needs a restart: probes do not end that', async () => {
    const { w } = await watch({ bytes: 0 });
    w.writeFailed(new NotStoredError(new JournalUnusableError('journal unusable since a write failed (EIO); restart mayu')), 1);
    w.writeSucceeded();
    await w.close();
    assert.match(w.notReadyReasons()[0]!, /restart mayu once the disk is fixed$/);
  });
});
