import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { fdatasync } from 'node:fs';
import { mkdtemp, readFile, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { GitJournal, type JournalEntry } from '../src/git/journal.ts';

const oid = () => randomBytes(20).toString('hex');

/** A chain of entries, each built on the one before, with records of random bytes. */
function chain(from: string | undefined, n: number): JournalEntry[] {
  const out: JournalEntry[] = [];
  let parent = from;
  for (let i = 0; i < n; i++) {
    const base = oid();
    const entry: JournalEntry = {
      parent,
      head: oid(),
      objects: [
        { oid: base, crc: 1, record: randomBytes(100 + i) },
        { oid: oid(), crc: 2, record: randomBytes(7), baseOid: base },
      ],
    };
    out.push(entry);
    parent = entry.head;
  }
  return out;
}

async function appendAll(j: GitJournal, entries: JournalEntry[]) {
  const tickets = [];
  for (const e of entries) tickets.push(await j.append(e));
  return tickets;
}

const heads = (entries: JournalEntry[]) => entries.map((e) => e.head);

describe('git journal', () => {
  it('gives back, after a reopen, the entries that follow the ref, records and delta bases intact', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-journal-'));
    const entries = chain(undefined, 5);
    const j = await GitJournal.open(dir);
    await appendAll(j, entries);
    await j.close();
    const again = await GitJournal.open(dir);
    assert.deepEqual(again.chainFrom(undefined), entries);
    assert.deepEqual(heads(again.chainFrom(entries[1]!.head)), heads(entries.slice(2)));
    assert.deepEqual(again.chainFrom(entries[4]!.head), [], 'nothing beyond the newest');
    assert.deepEqual(again.chainFrom(oid()), [], 'nothing follows a commit the journal does not know');
    await again.close();
  });

  it('ends at a torn entry: what follows it was never acknowledged', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-journal-'));
    const entries = chain(undefined, 3);
    const j = await GitJournal.open(dir);
    await appendAll(j, entries);
    await j.close();
    const file = path.join(dir, 'mayu-journal-0');
    await truncate(file, (await readFile(file)).length - 3);
    const again = await GitJournal.open(dir);
    assert.deepEqual(heads(again.chainFrom(undefined)), heads(entries.slice(0, 2)));
    await again.close();
  });

  it('takes turns between its two files: the one it leaves is reused only once everything in it is in git', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-journal-'));
    const a = chain(undefined, 3);
    const b = chain(a[2]!.head, 2);
    const c = chain(b[1]!.head, 1);
    const d = chain(c[0]!.head, 1);
    const j = await GitJournal.open(dir);
    const inA = await appendAll(j, a);
    j.rotate(); // a checkpoint of `a` starts: new entries go to file 1
    await appendAll(j, b);
    j.checkpointed(inA);
    j.rotate(); // file 0 is all in git: overwritten from its start
    await appendAll(j, c);
    j.rotate(); // file 1 holds `b`, not in git yet: appends stay in file 0, or b would be overwritten
    await appendAll(j, d);
    await j.close();
    const again = await GitJournal.open(dir);
    // The ref as a kill during b's checkpoint leaves it; a's stale remains in file 0 never chain.
    assert.deepEqual(heads(again.chainFrom(a[2]!.head)), heads([...b, ...c, ...d]));
    await again.close();
  });

  it('undoes a failed append on disk: the entries acknowledged after it are found, it is never replayed', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-journal-'));
    const [ok1] = chain(undefined, 1);
    const [refused] = chain(ok1!.head, 1);
    const [ok2, ok3] = chain(ok1!.head, 2);
    let failNext = false;
    const sync = promisify(fdatasync);
    const j = await GitJournal.open(dir, {
      fdatasync: (fd) => (failNext ? ((failNext = false), Promise.reject(new Error('EIO'))) : sync(fd)),
    });
    await j.append(ok1!);
    failNext = true;
    await assert.rejects(j.append(refused!), /EIO/);
    await appendAll(j, [ok2!, ok3!]);
    await j.close();
    const again = await GitJournal.open(dir);
    assert.deepEqual(heads(again.chainFrom(undefined)), heads([ok1!, ok2!, ok3!]));
    await again.close();
  });

  it('takes no more entries once a failed append cannot be undone either', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-journal-'));
    const [ok1, refused] = chain(undefined, 2);
    let failing = false;
    const sync = promisify(fdatasync);
    const j = await GitJournal.open(dir, { fdatasync: (fd) => (failing ? Promise.reject(new Error('EIO')) : sync(fd)) });
    await j.append(ok1!);
    failing = true;
    await assert.rejects(j.append(refused!), /EIO/);
    failing = false;
    await assert.rejects(j.append(chain(ok1!.head, 1)[0]!), /journal unusable since a write failed \(EIO\); restart mayu/);
    await j.close();
  });

  it('prefers the later of two entries on the same parent (a failed append, then the batch that replaced it)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-journal-'));
    const [first] = chain(undefined, 1);
    const [failed] = chain(first!.head, 1);
    const [retried] = chain(first!.head, 1);
    const j = await GitJournal.open(dir);
    await appendAll(j, [first!, failed!, retried!]);
    await j.close();
    const again = await GitJournal.open(dir);
    assert.deepEqual(heads(again.chainFrom(undefined)), [first!.head, retried!.head]);
    await again.clear();
    await again.close();
    const empty = await GitJournal.open(dir);
    assert.deepEqual(empty.chainFrom(undefined), [], 'clear() empties both files');
    await empty.close();
  });

  it('keeps, across a reopen, which entries a later one replaced; chains start where no entry made the parent', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-journal-'));
    const j = await GitJournal.open(dir);
    const base = oid();
    const old = chain(base, 2);
    const outside = oid();
    const [replaced] = chain(outside, 1);
    replaced!.supersedes = heads(old);
    await appendAll(j, [...old, replaced!]);
    await j.close();
    const again = await GitJournal.open(dir);
    assert.deepEqual([...again.superseded()].sort(), heads(old).sort());
    assert.deepEqual(again.chainStarts().sort(), [base, outside].sort());
    const read = again.chainFrom(outside);
    assert.deepEqual(heads(read), [replaced!.head]);
    assert.deepEqual(read[0]!.supersedes, heads(old));
    assert.deepEqual(read[0]!.objects.map((o) => o.record.toString('hex')), replaced!.objects.map((o) => o.record.toString('hex')));
    assert.equal(again.chainFrom(base)[0]!.supersedes, undefined, 'an ordinary entry names none');
    await again.close();
  });
});
