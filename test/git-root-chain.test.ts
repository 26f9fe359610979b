import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyDelta } from '../src/git/delta.ts';
import { objectId, RootTree, TREE_MODE } from '../src/git/objects.ts';
import { RootChain } from '../src/git/root-chain.ts';

// A batch's root trees kept as a chain of deltas must give back every tree byte for byte, each
// delta against a tree placed before it, with whole trees at most every maxDepth + 1.

test('every root tree of a batch comes back exactly; depth bounded; a tree met again placed once', () => {
  const root = new RootTree();
  const oid = (i: number) => i.toString(16).padStart(40, '0');
  for (let i = 0; i < 200; i++) root.set({ mode: TREE_MODE, name: `host-${String(i).padStart(4, '0')}`, oid: oid(i) });
  const chain = new RootChain();
  const made = new Map<string, Buffer>();
  const add = () => {
    const bytes = root.bytes;
    const id = root.oid();
    assert.equal(id, objectId('tree', bytes), 'the saved hash states give the tree\'s id');
    // A copy: the root's bytes change in place.
    made.set(id, Buffer.from(bytes));
    chain.push(id, root);
  };
  for (let i = 0; i < 57; i++) {
    root.set({ mode: TREE_MODE, name: `host-${String((i * 37) % 230).padStart(4, '0')}`, oid: oid(1000 + i) });
    add();
  }
  // A change undone within the batch: the tree before it comes again.
  root.set({ mode: TREE_MODE, name: 'host-0001', oid: oid(5000) });
  add();
  root.set({ mode: TREE_MODE, name: 'host-0001', oid: oid(1) });
  add();
  for (let i = 0; i < 5; i++) {
    root.set({ mode: TREE_MODE, name: `host-${String(i).padStart(4, '0')}`, oid: oid(6000 + i) });
    add();
  }
  // Removals, and commits that change several entries (admission records: folder trees).
  root.remove('host-0003', TREE_MODE);
  add();
  root.set({ mode: TREE_MODE, name: '_admission', oid: oid(7000) });
  root.remove('host-0004', TREE_MODE);
  root.set({ mode: TREE_MODE, name: 'host-0999', oid: oid(7001) });
  add();
  assert.ok(made.size < 57 + 2 + 5 + 2, 'a tree came twice');
  assert.equal(chain.size, made.size);
  const maxDepth = 10;
  const placed = new Map<string, { content: Buffer; depth: number }>();
  let records = 0;
  for (const r of chain.newestFirst(maxDepth)) {
    records++;
    assert.ok(!placed.has(r.oid), `${r.oid} placed once`);
    if (r.delta) {
      const base = placed.get(r.baseOid);
      assert.ok(base, 'delta base placed before');
      const content = applyDelta(base.content, r.delta);
      placed.set(r.oid, { content, depth: base.depth + 1 });
    } else {
      placed.set(r.oid, { content: r.content, depth: 0 });
    }
    assert.ok(placed.get(r.oid)!.depth <= maxDepth);
    assert.ok(placed.get(r.oid)!.content.equals(made.get(r.oid)!), 'same bytes');
  }
  assert.equal(records, made.size);
  assert.ok([...placed.values()].filter((p) => p.depth === 0).length >= Math.ceil(made.size / (maxDepth + 1)));
});

test('a root tree\'s id from saved hash states equals hashing it whole, across replaces, inserts, removals and clones', () => {
  const root = new RootTree();
  const oid = (i: number) => i.toString(16).padStart(40, '0');
  let seed = 11;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
  let saved: RootTree | undefined;
  let savedBytes: Buffer | undefined;
  for (let i = 0; i < 3000; i++) {
    const name = `h-${String(rnd(900)).padStart(4, '0')}`;
    if (rnd(10) === 0) root.remove(name, TREE_MODE);
    else root.set({ mode: TREE_MODE, name, oid: oid(i) });
    if (i % 7 === 0) assert.equal(root.oid(), objectId('tree', root.bytes), `step ${i}`);
    if (i === 1500) {
      saved = root.clone();
      savedBytes = Buffer.from(root.bytes);
    }
  }
  assert.ok(saved!.bytes.equals(savedBytes!), 'a clone keeps its bytes while the original changes in place');
  assert.equal(root.oid(), objectId('tree', root.bytes));
  // A clone (the store's rollback copy) goes on from its own states.
  saved!.set({ mode: TREE_MODE, name: 'h-0001', oid: oid(99999) });
  assert.equal(saved!.oid(), objectId('tree', saved!.bytes));
});
