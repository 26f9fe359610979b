import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allocateAddress, RangeExhaustedError } from '../src/core/addresses.ts';
import { HostIndex } from '../src/core/host-index.ts';
import type { Host } from '../src/core/host.ts';
import { countByProfile } from '../src/core/profiles.ts';

// The index must answer exactly what the scans it replaces answer, whatever order hosts come,
// change and go in.

const host = (addr: string | undefined, profile: string, macs: string[] = []): Host =>
  ({ ConnectedNIC: '', LastBoot: '', State: 'unknown', InternalAddr: addr, Profile: profile, MacAddresses: macs }) as Host;

test('free address (lowest, and from a replica\'s offset), profile counts and MACs equal a scan of the hosts after random changes', () => {
  const range = { start: '10.0.0.10', end: '10.0.0.60' };
  const index = new HostIndex();
  const hosts = new Map<string, Host>();
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
  for (let step = 0; step < 3000; step++) {
    const serial = `s${rnd(60)}`;
    const before = hosts.get(serial);
    let after: Host | undefined;
    const op = rnd(4);
    if (op === 0) after = undefined;
    else if (op === 1) {
      try {
        after = host(index.lowestFreeAddress(range), ['a', 'b', 'default'][rnd(3)]!, [`52:54:00:00:00:${rnd(90).toString(16).padStart(2, '0')}`]);
      } catch (err) {
        assert.ok(err instanceof RangeExhaustedError);
        after = before;
      }
    } else if (op === 2) after = before && { ...before, Profile: ['a', 'b'][rnd(2)]! };
    else after = host(`10.0.0.${10 + rnd(55)}`, 'a', []); // an override or hand edit: any address, duplicates too
    index.update(serial, before, after);
    if (after) hosts.set(serial, after);
    else hosts.delete(serial);

    let expected: string;
    try {
      expected = allocateAddress(range, [...hosts.values()].map((h) => h.InternalAddr));
    } catch {
      expected = 'exhausted';
    }
    let got: string;
    try {
      got = index.lowestFreeAddress(range);
    } catch {
      got = 'exhausted';
    }
    assert.equal(got, expected, `step ${step}`);
    // A replica's search from an offset (etcd store) wraps round the range as the scan does.
    const from = 17 + step;
    const attempt = (f: () => string) => { try { return f(); } catch { return 'exhausted'; } };
    assert.equal(
      attempt(() => index.lowestFreeAddress(range, from)),
      attempt(() => allocateAddress(range, [...hosts.values()].map((h) => h.InternalAddr), from)),
      `step ${step}, from ${from}`,
    );
    assert.deepEqual(new Map([...index.profileCounts()].sort()), new Map([...countByProfile(hosts.values())].sort()));
    for (const [serial, h] of hosts) for (const mac of h.MacAddresses ?? []) assert.ok(index.serialByMac(mac) !== undefined, `${serial} ${mac}`);
  }
});

test('a MAC no host has anymore is not found', () => {
  const index = new HostIndex();
  const a = host('10.0.0.1', 'x', ['52:54:00:00:00:01']);
  index.update('a', undefined, a);
  assert.equal(index.serialByMac('52:54:00:00:00:01'), 'a');
  index.update('a', a, { ...a, MacAddresses: ['52:54:00:00:00:02'] });
  assert.equal(index.serialByMac('52:54:00:00:00:01'), undefined);
  assert.equal(index.serialByMac('52:54:00:00:00:02'), 'a');
  index.update('a', { ...a, MacAddresses: ['52:54:00:00:00:02'] }, undefined);
  assert.equal(index.serialByMac('52:54:00:00:00:02'), undefined);
});
