import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { adminTokenProblem, reportToken, secretsEqual } from '../src/core/tokens.ts';

describe('report tokens', () => {
  const key = Buffer.alloc(32, 7);
  it('are 64 lowercase hex characters, stable, and change with the serial, the MachineID and the key', () => {
    const t = reportToken(key, 'abc', '00006811af601fe8e1d3f37902021ae0');
    assert.match(t, /^[0-9a-f]{64}$/);
    assert.equal(reportToken(key, 'abc', '00006811af601fe8e1d3f37902021ae0'), t);
    assert.notEqual(reportToken(key, 'abd', '00006811af601fe8e1d3f37902021ae0'), t);
    assert.notEqual(reportToken(key, 'abc', '00006811af601fe8e1d3f37902021ae1'), t, 'a re-created host (new MachineID) gets a new token');
    assert.notEqual(reportToken(Buffer.alloc(32, 8), 'abc', '00006811af601fe8e1d3f37902021ae0'), t);
    // The separator keeps ("a", "bc") and ("ab", "c") apart.
    assert.notEqual(reportToken(key, 'a', 'bc'), reportToken(key, 'ab', 'c'));
  });
});

describe('secretsEqual', () => {
  it('is string equality, whatever the lengths', () => {
    fc.assert(fc.property(fc.string(), fc.string(), (a, b) => secretsEqual(a, b) === (a === b)));
    assert.equal(secretsEqual('x'.repeat(100), 'x'.repeat(100)), true);
  });
});

describe('admin token rules', () => {
  it('wants 16+ visible ASCII characters', () => {
    assert.equal(adminTokenProblem('0123456789abcdef'), undefined);
    assert.match(adminTokenProblem('0123456789abcde')!, /too short \(15 characters\)/);
    assert.match(adminTokenProblem('0123456789 abcdef')!, /spaces/);
    assert.match(adminTokenProblem('0123456789abcdeé')!, /non-ASCII/);
  });
});
