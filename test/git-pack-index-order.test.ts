import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { GitObjectReader } from '../src/git/object-reader.ts';
import { objectId } from '../src/git/objects.ts';
import { PackBuilder } from '../src/git/pack.ts';
import { git } from './helpers/git.ts';

// A pack's index lists objects in id order. Ids that share their first bytes are rare in a small
// pack but certain in a storm's merged pack (~400 000 objects: a few pairs share 4 bytes), and a
// wrong order there made git unable to read a commit after a 10 000-machine storm.

/** Blob contents whose ids share their first 4 bytes (a birthday search: ~2^16 tries). */
function blobsWithSharedPrefix(): [Buffer, Buffer] {
  const seen = new Map<string, Buffer>();
  for (let i = 0; ; i++) {
    const content = Buffer.from(`blob ${i}\n`);
    const prefix = objectId('blob', content).slice(0, 8);
    const other = seen.get(prefix);
    if (other) return [other, content];
    seen.set(prefix, content);
  }
}

describe('pack index order', () => {
  it('sorts ids that share their first 4 bytes; native git and the reader find both', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-pack-order-'));
    try {
      git(dir, 'init', '-q');
      const [a, b] = blobsWithSharedPrefix();
      const ids = [objectId('blob', a), objectId('blob', b)];
      assert.equal(ids[0]!.slice(0, 8), ids[1]!.slice(0, 8));
      assert.notEqual(ids[0], ids[1]);
      // Added in both orders, and among others.
      const contents = [b, Buffer.from('x\n'), a, Buffer.from('y\n')];
      const pack = new PackBuilder(contents.length);
      const chunks = [pack.header()];
      for (const c of contents) chunks.push(pack.add(objectId('blob', c), 'blob', c));
      const { checksum, index } = pack.finish();
      const packDir = path.join(dir, '.git/objects/pack');
      const name = `pack-${checksum.toString('hex')}`;
      await writeFile(path.join(packDir, `${name}.pack`), Buffer.concat([...chunks, checksum]));
      await writeFile(path.join(packDir, `${name}.idx`), index);

      git(dir, 'verify-pack', path.join(packDir, `${name}.pack`));
      for (const [i, id] of ids.entries()) assert.equal(git(dir, 'cat-file', '-p', id), (i === 0 ? a : b).toString());
      const reader = new GitObjectReader(path.join(dir, '.git'));
      await reader.refresh();
      for (const [i, id] of ids.entries()) assert.deepEqual((await reader.read(id)).content, i === 0 ? a : b);
      await reader.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
