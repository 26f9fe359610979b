import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { piecesAfter } from '../src/fs/write-pieces.ts';

// What is left to write after a (possibly short) writev: whole pieces dropped, a cut one resumed.
describe('pieces left after a writev', () => {
  const pieces = [Buffer.from('abc'), Buffer.from('de'), Buffer.from('fghi')];
  const left = (n: number) => piecesAfter(pieces, n).map((b) => b.toString());
  it('drops the pieces written whole and cuts the one written in part', () => {
    assert.deepEqual(left(0), ['abc', 'de', 'fghi']);
    assert.deepEqual(left(2), ['c', 'de', 'fghi']);
    assert.deepEqual(left(3), ['de', 'fghi']);
    assert.deepEqual(left(6), ['ghi']);
    assert.deepEqual(left(9), []);
  });
  it('leaves the caller\'s list as it was', () => {
    piecesAfter(pieces, 4);
    assert.deepEqual(pieces.map((b) => b.toString()), ['abc', 'de', 'fghi']);
  });
});
