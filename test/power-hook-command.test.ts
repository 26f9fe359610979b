import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { compileShellCommand, ShellCommandError } from '../src/render/shell-command.ts';

const KEYS = ['serial', 'ipmi_address'];

describe('power hook command template', () => {
  it('renders each value as one literal word for /bin/sh, whatever it holds', () => {
    const cmd = compileShellCommand('t', "printf '%s\\n' '{{ipmi_address}}' 'x-{{serial}}-y'", KEYS);
    const hostile = "a'; touch /tmp/pwned; echo '$(id) `id` \"\n$HOME";
    const out = execFileSync('/bin/sh', ['-c', cmd.render({ serial: hostile, ipmi_address: '10.0.0.1' })], { encoding: 'utf8' });
    assert.equal(out, `10.0.0.1\nx-${hostile}-y\n`);
    assert.deepEqual([...cmd.keys].sort(), ['ipmi_address', 'serial']);
  });

  it('refuses tags outside single quotes, unknown keys, sections, unescaped tags and open quotes, naming the tag', () => {
    const cases: [string, RegExp][] = [
      ['ipmitool -H {{ipmi_address}}', /t: \{\{ipmi_address\}\} must be inside single quotes/],
      ['ipmitool -H "{{ipmi_address}}"', /must be inside single quotes/],
      ["echo 'a' {{serial}}", /must be inside single quotes/],
      ["echo '{{nope}}'", /\{\{nope\}\}: unknown key \(known: serial, ipmi_address\)/],
      ["echo '{{#serial}}x{{/serial}}'", /only plain \{\{key\}\} tags/],
      ["echo '{{{serial}}}'", /only plain \{\{key\}\} tags/],
      ["echo 'x", /unbalanced single quote/],
      ["echo '{{serial}'", /mustache syntax error/],
    ];
    for (const [template, message] of cases) {
      assert.throws(() => compileShellCommand('t', template, KEYS), (err: Error) => err instanceof ShellCommandError && message.test(err.message), template);
    }
  });

  it('accepts escaped quotes outside single quotes and several tags in one word', () => {
    const cmd = compileShellCommand('t', "echo \\' \"it's\" '{{serial}}:{{ipmi_address}}'", KEYS);
    assert.equal(execFileSync('/bin/sh', ['-c', cmd.render({ serial: 's', ipmi_address: '1.2.3.4' })], { encoding: 'utf8' }), "' it's s:1.2.3.4\n");
  });
});
