import assert from 'node:assert/strict';
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { rewriteFileSync } from '../src/fs/durable-fs.ts';

describe('rewriteFileSync (working-tree copies)', () => {
  it('creates a missing file, then rewrites it shorter and longer in place, on the same inode', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-rewrite-'));
    const file = path.join(dir, 'conf.json');
    rewriteFileSync(file, '{"State":"configured","Padding":"xxxxxxxxxxxx"}');
    const inode = (await stat(file)).ino;
    rewriteFileSync(file, '{"State":"running"}');
    assert.equal(await readFile(file, 'utf8'), '{"State":"running"}', 'no old tail after a shorter write');
    rewriteFileSync(file, `{"S":"${'é'.repeat(3000)}"}`);
    assert.equal(await readFile(file, 'utf8'), `{"S":"${'é'.repeat(3000)}"}`, 'multi-byte text, longer than before');
    assert.equal((await stat(file)).ino, inode, 'rewritten in place, not replaced');
  });

  it('leaves a file it cannot open alone and says why', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-rewrite-'));
    await writeFile(path.join(dir, 'a-file'), 'x');
    assert.throws(() => rewriteFileSync(path.join(dir, 'a-file', 'conf.json'), '{}'), { code: 'ENOTDIR' });
  });
});
