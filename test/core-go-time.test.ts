// LastBoot as 0.11 (Go) wrote it and as its mayuctl printed it. The printed forms are the real
// 0.11.1 mayuctl's output (test/fixtures/mayu-0.11/README.md says how they were recorded).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { localZone } from '../src/cli/local-zone.ts';
import { formatRfc3339Nano, goLocalTimestamp, goTimeString } from '../src/core/go-time.ts';
import { parsePosixTz, parseTzif, UTC_ZONE } from '../src/core/tzif.ts';
import { FIXTURES } from './helpers/mayu-process.ts';

const recorded = JSON.parse(readFileSync(path.join(FIXTURES, 'mayu-0.11/mayuctl-lastboot.json'), 'utf8')) as { TZ: string; LastBoot: string; printed: string }[];

describe('Go time formats', () => {
  it('prints LastBoot as the real 0.11 mayuctl does, for every recorded TZ and value', () => {
    assert.ok(recorded.length > 100);
    for (const r of recorded) assert.equal(goTimeString(r.LastBoot, localZone(r.TZ)), r.printed, `TZ=${JSON.stringify(r.TZ)} ${r.LastBoot}`);
  });

  it('writes RFC3339Nano: fraction trimmed, Z for a zero offset, the offset otherwise', () => {
    const base = 1_796_153_830n * 1_000_000_000n; // 2026-12-01T19:37:10Z
    const table: [bigint, number, string][] = [
      [base + 123_456_789n, 3600, '2026-12-01T20:37:10.123456789+01:00'],
      [base + 120_000_000n, 3600, '2026-12-01T20:37:10.12+01:00'],
      [base + 1n, 0, '2026-12-01T19:37:10.000000001Z'],
      [base, 0, '2026-12-01T19:37:10Z'],
      [base + 500_000_000n, -5 * 3600, '2026-12-01T14:37:10.5-05:00'],
      [base, 5 * 3600 + 1800, '2026-12-02T01:07:10+05:30'],
      [base, -(3 * 3600 + 1800), '2026-12-01T16:07:10-03:30'],
      [0n, 0, '1970-01-01T00:00:00Z'],
      [-1n, 0, '1969-12-31T23:59:59.999999999Z'],
    ];
    for (const [ns, off, text] of table) assert.equal(formatRfc3339Nano(ns, off), text, `${ns} ${off}`);
  });

  it('takes the local zone\'s offset at that instant (TZ respected, summer time included)', () => {
    const winter = 1_796_153_830_123_456_789n; // 2026-12-01T19:37:10.123456789Z
    const summer = 1_782_934_630_000_000_000n; // 2026-07-01T19:37:10Z
    assert.equal(goLocalTimestamp(winter, localZone('Europe/Berlin')), '2026-12-01T20:37:10.123456789+01:00');
    assert.equal(goLocalTimestamp(summer, localZone('Europe/Berlin')), '2026-07-01T21:37:10+02:00');
    assert.equal(goLocalTimestamp(winter, localZone('America/New_York')), '2026-12-01T14:37:10.123456789-05:00');
    assert.equal(goLocalTimestamp(winter, localZone('Asia/Kolkata')), '2026-12-02T01:07:10.123456789+05:30');
    assert.equal(goLocalTimestamp(winter, localZone('UTC')), '2026-12-01T19:37:10.123456789Z');
    assert.equal(goLocalTimestamp(winter, localZone('No/Such_Zone')), '2026-12-01T19:37:10.123456789Z');
    assert.equal(goLocalTimestamp(winter, UTC_ZONE), '2026-12-01T19:37:10.123456789Z');
    // What the server writes, mayuctl prints back with the zone's name.
    assert.equal(goTimeString(goLocalTimestamp(winter, localZone('Europe/Berlin')), localZone('Europe/Berlin')), '2026-12-01 20:37:10.123456789 +0100 CET');
  });

  it('evaluates a TZif footer rule past the last transition, as Go\'s tzset', () => {
    const berlin = parsePosixTz('CET-1CEST,M3.5.0,M10.5.0/3')!;
    const at = (iso: string) => berlin(Date.parse(iso) / 1000);
    assert.deepEqual(at('2050-03-27T00:59:59Z'), { offsetSeconds: 3600, abbrev: 'CET' });
    assert.deepEqual(at('2050-03-27T01:00:00Z'), { offsetSeconds: 7200, abbrev: 'CEST' });
    assert.deepEqual(at('2050-10-30T00:59:59Z'), { offsetSeconds: 7200, abbrev: 'CEST' });
    assert.deepEqual(at('2050-10-30T01:00:00Z'), { offsetSeconds: 3600, abbrev: 'CET' });
    const sydney = parsePosixTz('AEST-10AEDT,M10.1.0,M4.1.0/3')!; // southern hemisphere: DST across new year
    assert.deepEqual(sydney(Date.parse('2050-01-15T00:00:00Z') / 1000), { offsetSeconds: 39600, abbrev: 'AEDT' });
    assert.deepEqual(sydney(Date.parse('2050-07-15T00:00:00Z') / 1000), { offsetSeconds: 36000, abbrev: 'AEST' });
    assert.deepEqual(parsePosixTz('<+03>-3')!(0), { offsetSeconds: 10800, abbrev: '+03' });
    assert.equal(parsePosixTz('not a rule'), undefined);
  });

  it('refuses what is not a TZif file', () => {
    assert.throws(() => parseTzif(Buffer.from('hello world, not a zone file at all, no no no')), /not a TZif file/);
  });
});
