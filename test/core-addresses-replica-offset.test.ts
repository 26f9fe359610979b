import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allocateAddress, RangeExhaustedError, replicaSearchOffset } from '../src/core/addresses.ts';
import { creationSteps } from '../src/core/host-changes.ts';

// Replicas of the etcd store each start their search for a free InternalAddr at their own place
// in ip_range (from their replica id), so two registering at once seldom take the same address
// (one of them would lose the transaction: 503, retried). One mayu keeps taking the lowest.

describe('address allocation from a replica\'s offset', () => {
  const range = { start: '10.0.3.31', end: '10.0.3.35' };

  it('starts at the offset, skips taken ones and wraps round to the start', () => {
    assert.equal(allocateAddress(range, [], 2), '10.0.3.33');
    assert.equal(allocateAddress(range, ['10.0.3.33', '10.0.3.34'], 2), '10.0.3.35');
    assert.equal(allocateAddress(range, ['10.0.3.33', '10.0.3.34', '10.0.3.35'], 2), '10.0.3.31');
    // An offset past the range's size wraps too (same as offset % size).
    assert.equal(allocateAddress(range, [], 7), '10.0.3.33');
  });

  it('still refuses a full range with the clear error', () => {
    assert.throws(() => allocateAddress(range, ['10.0.3.31', '10.0.3.32', '10.0.3.33', '10.0.3.34', '10.0.3.35'], 3), RangeExhaustedError);
  });

  it('offset 0 and no offset are the lowest free address (single-node behaviour unchanged)', () => {
    assert.equal(allocateAddress(range, ['10.0.3.31']), '10.0.3.32');
    assert.equal(allocateAddress(range, ['10.0.3.31'], 0), '10.0.3.32');
  });

  it('a replica\'s offset is the same every time, inside the range, and differs between replicas', () => {
    const big = { start: '10.10.0.1', end: '10.10.39.116' };
    const offsets = ['r0', 'r1', 'r2', 'r3', 'rack-a', 'rack-b'].map((id) => replicaSearchOffset(id, big));
    assert.deepEqual(offsets, ['r0', 'r1', 'r2', 'r3', 'rack-a', 'rack-b'].map((id) => replicaSearchOffset(id, big)));
    for (const o of offsets) assert.ok(o >= 0 && o < 10_100, `${o} inside the range`);
    assert.equal(new Set(offsets).size, offsets.length);
  });

  it('creationSteps hands out the address at the offset; without one, the lowest free', () => {
    const ctx = { hosts: [], profiles: [], ipRange: range, defaultEtcdToken: 't', randomBytes: new Uint8Array(16) };
    const addr = (steps: ReturnType<typeof creationSteps>) => steps.at(-1)!.host.InternalAddr;
    assert.equal(addr(creationSteps('abc', { ...ctx, addressSearchFrom: 3 })), '10.0.3.34');
    assert.equal(addr(creationSteps('abc', ctx)), '10.0.3.31');
  });
});
