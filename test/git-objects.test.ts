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
