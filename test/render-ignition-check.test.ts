import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ignitionProblems } from '../src/render/ignition-check.ts';

const valid = {
  ignition: { version: '3.3.0' },
  passwd: { users: [{ name: 'core', sshAuthorizedKeys: ['ssh-ed25519 AAAA'] }] },
  storage: {
    files: [{ path: '/etc/hostname', mode: 420, overwrite: true, contents: { source: 'data:,h%0A' } }],
    directories: [{ path: '/opt/x', mode: 493 }],
    links: [{ path: '/etc/localtime', target: '/usr/share/zoneinfo/UTC' }],
  },
  systemd: { units: [{ name: 'a.service', enabled: true, contents: '[Service]\nExecStart=/bin/true\n', dropins: [{ name: '10-x.conf', contents: '' }] }] },
};

/** Applies a change to a copy of the valid config. */
function variant(change: (doc: any) => void): unknown {
  const doc = structuredClone(valid);
  change(doc);
  return doc;
}

describe('ignition-check', () => {
  it('accepts a valid 3.3.0 config', () => {
    assert.deepEqual(ignitionProblems(valid), []);
  });

  const invalid: { title: string; doc: unknown; path: string }[] = [
    { title: 'version 3.2.0', doc: variant((d) => (d.ignition.version = '3.2.0')), path: '$.ignition.version' },
    { title: 'version 2.x', doc: variant((d) => (d.ignition.version = '2.2.0')), path: '$.ignition.version' },
    { title: 'unknown top-level key', doc: variant((d) => (d.networkd = {})), path: '$: Unrecognized key' },
    { title: 'unknown key in a file', doc: variant((d) => (d.storage.files[0].contentz = {})), path: '$.storage.files[0]: Unrecognized key' },
    { title: 'relative path', doc: variant((d) => (d.storage.files[0].path = 'etc/hostname')), path: '$.storage.files[0].path' },
    { title: 'unclean path', doc: variant((d) => (d.storage.directories[0].path = '/opt//x')), path: '$.storage.directories[0].path' },
    { title: 'mode as a string', doc: variant((d) => (d.storage.files[0].mode = '0644')), path: '$.storage.files[0].mode' },
    { title: 'mode out of range', doc: variant((d) => (d.storage.files[0].mode = 9999)), path: '$.storage.files[0].mode' },
    { title: 'overwrite not a bool', doc: variant((d) => (d.storage.files[0].overwrite = 'yes')), path: '$.storage.files[0].overwrite' },
    { title: 'bad source scheme', doc: variant((d) => (d.storage.files[0].contents.source = 'file:///etc/passwd')), path: '$.storage.files[0].contents.source' },
    { title: 'bad percent-escape', doc: variant((d) => (d.storage.files[0].contents.source = 'data:,%zz')), path: '$.storage.files[0].contents.source' },
    { title: 'duplicate path', doc: variant((d) => (d.storage.links[0].path = '/etc/hostname')), path: '$.storage.links[0].path' },
    { title: 'link without target', doc: variant((d) => delete d.storage.links[0].target), path: '$.storage.links[0].target' },
    { title: 'user without name', doc: variant((d) => delete d.passwd.users[0].name), path: '$.passwd.users[0].name' },
    { title: 'ssh key not a string', doc: variant((d) => (d.passwd.users[0].sshAuthorizedKeys = [1])), path: '$.passwd.users[0].sshAuthorizedKeys[0]' },
    { title: 'unit without a unit suffix', doc: variant((d) => (d.systemd.units[0].name = '10-static.network')), path: '$.systemd.units[0].name' },
    { title: 'unit enabled not a bool', doc: variant((d) => (d.systemd.units[0].enabled = 1)), path: '$.systemd.units[0].enabled' },
    { title: 'dropin without .conf', doc: variant((d) => (d.systemd.units[0].dropins[0].name = 'x')), path: '$.systemd.units[0].dropins[0].name' },
    { title: 'duplicate unit', doc: variant((d) => d.systemd.units.push({ name: 'a.service' })), path: '$.systemd.units[1]' },
  ];
  for (const c of invalid) {
    it(`rejects ${c.title} at ${c.path}`, () => {
      const problems = ignitionProblems(c.doc);
      assert.ok(problems.some((p) => p.startsWith(c.path)), problems.join('\n'));
    });
  }
});
