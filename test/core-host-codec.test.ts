import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { decodeHost, encodeHost, HostDecodeError, newHost } from '../src/core/host.ts';

const fixture = readFileSync(new URL('./fixtures/protocol-example-conf.json', import.meta.url), 'utf8');

describe('Host JSON codec (conf.json as Go wrote it)', () => {
  it('re-encodes the protocol example byte for byte (key order, 2-space indent, no trailing newline)', () => {
    assert.equal(encodeHost(decodeHost(JSON.parse(fixture))), fixture);
  });

  it('always writes ConnectedNIC, LastBoot and State, and omits empty fields', () => {
    assert.equal(
      encodeHost(newHost('abc')),
      '{\n  "Enabled": true,\n  "Serial": "abc",\n  "ConnectedNIC": "",\n  "LastBoot": "0001-01-01T00:00:00Z",\n  "State": "unknown"\n}',
    );
  });

  it('escapes like Go (HTML-safe) and sorts override keys', () => {
    const text = encodeHost({ ...newHost('x'), Overrides: { z: 'a<b>&"c"', a: 1 } });
    assert.match(text, /"Overrides": \{\n    "a": 1,\n    "z": "a\\u003cb\\u003e\\u0026\\"c\\""\n  \}/);
  });

  const bad: [string, unknown][] = [
    ['not an object', []],
    ['Cabinet negative', { Cabinet: -1 }],
    ['State unknown word', { State: 'booting' }],
    ['MacAddresses not strings', { MacAddresses: [1] }],
    ['LastBoot not RFC 3339', { LastBoot: 'yesterday' }],
  ];
  for (const [name, raw] of bad) {
    it(`rejects ${name}`, () => assert.throws(() => decodeHost(raw), HostDecodeError));
  }

  it('ignores unknown keys (mayuctl and newer clients send more)', () => {
    assert.equal(decodeHost({ Serial: 's', Whatever: 1 }).Serial, 's');
  });

  it('keeps a stored LastBoot byte for byte (0.11\'s nanoseconds and offsets, our older UTC milliseconds)', () => {
    for (const t of ['2015-10-08T19:14:36.227056826+02:00', '2026-12-01T20:37:10.1+01:00', '2026-01-02T03:04:05.12Z', '2026-01-02T03:04:05Z', '2026-12-01T14:37:10.000000001-05:00']) {
      const text = encodeHost({ ...newHost('abc'), LastBoot: t });
      assert.equal(encodeHost(decodeHost(JSON.parse(text))), text);
      assert.ok(text.includes(`"LastBoot": "${t}"`));
    }
  });
});
