import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import * as yaml from 'js-yaml';
import { ESCAPES, EscapeError, escapeDnsmasq, escapeIpxe, escapeShell, toDataUrl } from '../src/render/escape.ts';
import { renderStrict } from '../src/render/strict-mustache.ts';
import { HOSTILE_VALUES } from './fixtures/render/sample.ts';

// Each format: put the escaped value where template authors put tags, parse the result the way
// the consumer would, and get the value back byte for byte.
const roundTrips: { format: keyof typeof ESCAPES; template: string; read: (out: string) => string }[] = [
  { format: 'json', template: '{"k": "{{v}}", "after": 1}', read: (out) => (JSON.parse(out) as { k: string }).k },
  { format: 'yaml', template: 'k: "{{v}}"\nafter: 1\n', read: (out) => (yaml.load(out) as { k: string }).k },
  {
    format: 'shell',
    template: "v='{{v}}'\nprintf '%s' \"$v\"\n",
    read: (out) => execFileSync('sh', ['-c', out], { encoding: 'utf8' }),
  },
  { format: 'ipxe', template: 'kernel http://h/x?a={{v}} b=1\n', read: (out) => decodeURIComponent(/a=(\S*) b=1\n$/.exec(out)![1]!) },
];

describe('escaping round-trips hostile values', () => {
  for (const { format, template, read } of roundTrips) {
    for (const value of HOSTILE_VALUES) {
      it(`${format}: ${JSON.stringify(value)}`, () => {
        const out = renderStrict(`t.${format}`, template, { v: value }, { escape: ESCAPES[format] });
        assert.equal(read(out), value);
        if (format === 'json') assert.deepEqual(Object.keys(JSON.parse(out) as object), ['k', 'after']);
        if (format === 'yaml') assert.deepEqual(Object.keys(yaml.load(out) as object), ['k', 'after']);
      });
    }
  }
});

describe('format-specific rules', () => {
  it('shell: the script still parses (sh -n) and runs nothing from the value', () => {
    for (const value of HOSTILE_VALUES) {
      const script = renderStrict('t.sh', "echo '{{v}}' >/dev/null\nexit 7\n", { v: value }, { escape: escapeShell });
      execFileSync('sh', ['-n'], { input: script });
      assert.throws(() => execFileSync('sh', ['-c', script], { stdio: 'pipe' }), (err: { status: number }) => err.status === 7);
    }
  });
  it('shell: NUL is refused', () => {
    assert.throws(() => escapeShell('a\0b'), EscapeError);
  });
  it('ipxe: output stays inside the safe charset', () => {
    for (const value of HOSTILE_VALUES) assert.match(escapeIpxe(value), /^[A-Za-z0-9._:/?=&%+-]*$/);
    assert.equal(escapeIpxe('http://10.0.3.251:4080/a?b=c&d'), 'http://10.0.3.251:4080/a?b=c&d');
  });
  it('dnsmasq: safe values pass unchanged, anything else is refused', () => {
    for (const ok of ['00:16:3e:a0:b7:df', '10.0.3.251', 'br0', '/var/lib/mayu/tftp', 'eth0.100', '']) assert.equal(escapeDnsmasq(ok), ok);
    for (const value of [...HOSTILE_VALUES, 'a,b', 'a b', 'x=y']) assert.throws(() => escapeDnsmasq(value), EscapeError, value);
  });
  it('plain is the identity', () => {
    for (const value of HOSTILE_VALUES) assert.equal(ESCAPES.plain(value), value);
  });
  it('data URLs decode to the content and are inert in JSON', () => {
    for (const value of HOSTILE_VALUES) {
      const url = toDataUrl(value);
      assert.match(url, /^data:,[A-Za-z0-9%\-_.~]*$/);
      assert.equal(decodeURIComponent(url.slice('data:,'.length)), value);
    }
  });
});
