import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

// The dashboard's conf.json diff (src/ui/diff.js, a browser module with no DOM use), in node.

type DiffLine = { op: string; line: string };
const diff = (await import(new URL('../src/ui/diff.js', import.meta.url).href)) as {
  lineDiff(a: string[], b: string[], key?: (l: string) => string): DiffLine[];
  withContext(d: DiffLine[], context?: number): DiffLine[];
  confLines(text: string | null): string[];
  jsonLineKey(line: string): string;
};
const show = (d: DiffLine[]) => d.map((x) => `${x.op}${x.line}`);

describe('dashboard conf.json diff', () => {
  it('keeps common lines and marks removed and added ones in order', () => {
    assert.deepEqual(show(diff.lineDiff(['a', 'b', 'c', 'd'], ['a', 'x', 'c', 'd', 'e'])), [' a', '-b', '+x', ' c', ' d', '+e']);
    assert.deepEqual(show(diff.lineDiff([], ['a'])), ['+a']);
    assert.deepEqual(show(diff.lineDiff(['a'], [])), ['-a']);
  });

  it('does not count a trailing comma added after a field as a change of that field', () => {
    const before = diff.confLines('{"Serial":"s1","State":"unknown"}');
    const after = diff.confLines('{"Serial":"s1","State":"unknown","Profile":"core"}');
    assert.deepEqual(show(diff.lineDiff(before, after, diff.jsonLineKey)), [' {', '   "Serial": "s1",', '   "State": "unknown",', '+  "Profile": "core"', ' }']);
  });

  it('folds unchanged runs outside the context into one line', () => {
    const a = Array.from({ length: 12 }, (_, i) => `l${i}`);
    const b = a.map((l) => (l === 'l6' ? 'L6' : l));
    assert.deepEqual(show(diff.withContext(diff.lineDiff(a, b), 1)), ['…5 unchanged lines', ' l5', '-l6', '+L6', ' l7', '…4 unchanged lines']);
  });

  it('pretty-prints JSON the same way whatever its spacing; other text is split as is; null is empty', () => {
    assert.deepEqual(diff.confLines('{ "a":1 }'), ['{', '  "a": 1', '}']);
    assert.deepEqual(diff.confLines('not json\nx'), ['not json', 'x']);
    assert.deepEqual(diff.confLines(null), []);
  });
});
