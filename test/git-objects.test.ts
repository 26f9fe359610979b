import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { deflateSync, inflateSync } from 'node:zlib';
import { applyDelta, computeDelta } from '../src/git/delta.ts';
import { isStoredZlib, zlibStored } from '../src/git/pack.ts';
import { encodeTree, FILE_MODE, parseTree, RootTree, TREE_MODE, type TreeEntry } from '../src/git/objects.ts';

const oid = () => randomBytes(20).toString('hex');

describe('git objects', () => {
  it('writes stored zlib streams by hand that zlib inflates, in blocks of at most 64 KiB', () => {
    for (const size of [0, 1, 1000, 0xffff, 0x10000, 200_000]) {
      const data = randomBytes(size);
      const z = zlibStored(data);
      assert.deepEqual(inflateSync(z), data, `${size} bytes`);
      assert.equal(z.length, 2 + Math.max(1, Math.ceil(size / 0xffff)) * 5 + size + 4);
      assert.ok(isStoredZlib(z));
    }
    assert.equal(isStoredZlib(deflateSync(Buffer.alloc(1000, 'a'), { level: 1 })), false);
  });

  it('keeps the root tree byte-identical to a full encoding, in git order, through replaces and inserts', () => {
    const entries = new Map<string, TreeEntry>();
    const root = new RootTree();
    // Names around "/" in byte order: git sorts a tree "abc" as "abc/", after "abc-1" and "abc.x".
    const names = ['abc', 'abc-1', 'abc.x', 'abc0', 'cluster.json', 'Z', 'a', 'abc_', 'zz'];
    for (let round = 0; round < 200; round++) {
      const name = names[round % names.length]!;
      const e = { mode: name.includes('.json') ? FILE_MODE : TREE_MODE, name, oid: oid() };
      entries.set(name, e);
      root.set(e);
      assert.deepEqual(root.bytes, encodeTree([...entries.values()]));
    }
    assert.deepEqual(parseTree(root.bytes).map((e) => e.name), ['Z', 'a', 'abc-1', 'abc.x', 'abc', 'abc0', 'abc_', 'cluster.json', 'zz']);
  });

  it('a clone is independent of later changes', () => {
    const root = new RootTree([{ mode: TREE_MODE, name: 'a', oid: oid() }]);
    const before = root.bytes;
    const copy = root.clone();
    root.set({ mode: TREE_MODE, name: 'b', oid: oid() });
    assert.deepEqual(copy.bytes, before);
    assert.equal(copy.size, 1);
    assert.equal(root.size, 2);
  });

  it('undoes the changes after a point in place: bytes, oid and later changes as before them', () => {
    const names = Array.from({ length: 600 }, (_, i) => `host-${(i * 7919) % 1000}`);
    const root = new RootTree(names.slice(0, 400).map((name) => ({ mode: TREE_MODE, name, oid: oid() })));
    root.set({ mode: FILE_MODE, name: 'cluster.json', oid: oid() });
    const saved = root.clone();
    const seq = root.seq;
    const savedOid = root.oid();
    // Replaces, inserts (past the buffer's room) and removals, some of the same entry twice.
    for (let i = 0; i < 300; i++) {
      const name = names[(i * 31) % names.length]!;
      if (i % 5 === 4) root.remove(name, TREE_MODE);
      else root.set({ mode: TREE_MODE, name, oid: oid() });
    }
    assert.notEqual(root.oid(), savedOid);
    assert.equal(root.undoTo(seq), true);
    assert.deepEqual(root.bytes, saved.bytes);
    assert.equal(root.size, saved.size);
    assert.equal(root.seq, seq);
    assert.equal(root.oid(), savedOid);
    assert.deepEqual(root.changesSince(seq), []);
    // The entry bookkeeping (keys, lengths) is back too: the same changes give the same bytes.
    for (const t of [root, saved]) {
      t.remove('host-7', TREE_MODE);
      t.set({ mode: TREE_MODE, name: 'host-999x', oid: '1'.repeat(40) });
      t.set({ mode: TREE_MODE, name: 'host-14', oid: '2'.repeat(40) });
    }
    assert.deepEqual(root.bytes, saved.bytes);
    assert.equal(root.oid(), saved.oid());
    assert.deepEqual(root.bytes, encodeTree(parseTree(saved.bytes)));
    // Past what the tree remembers: refused, nothing changed.
    const before = Buffer.from(root.bytes);
    for (let i = 0; i < 1100; i++) root.set({ mode: TREE_MODE, name: 'host-1', oid: oid() });
    const after = Buffer.from(root.bytes);
    assert.equal(root.undoTo(seq), false);
    assert.deepEqual(root.bytes, after);
    assert.notDeepEqual(after, before);
  });

  it('round-trips deltas, small for a one-entry change and correct for unrelated buffers', () => {
    const base = Buffer.from('a'.repeat(5000) + 'OLD' + 'b'.repeat(5000));
    const target = Buffer.from('a'.repeat(5000) + 'NEW!' + 'b'.repeat(5000));
    const delta = computeDelta(base, target);
    assert.ok(delta.length < 30, `${delta.length} bytes`);
    assert.deepEqual(applyDelta(base, delta), target);
    for (let i = 0; i < 50; i++) {
      const a = randomBytes(i * 97);
      const b = Buffer.concat([a.subarray(0, i * 13), randomBytes(i), a.subarray(i * 13 + 5)]);
      assert.deepEqual(applyDelta(a, computeDelta(a, b)), b);
    }
    assert.throws(() => applyDelta(Buffer.alloc(3), computeDelta(Buffer.alloc(4), Buffer.alloc(4))), /base of 4 bytes/);
  });
});
