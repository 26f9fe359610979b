import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import * as yaml from 'js-yaml';
import { loadTemplates, type Renderer } from '../src/render/renderer.ts';
import { buildView } from '../src/render/view.ts';
import { HOSTILE_VALUES, sampleConfig, sampleHost, TEMPLATE_DIRS, VIEW_OPTS } from './fixtures/render/sample.ts';

// Property tests over the shipped templates: whatever a serial, an override or a report token
// holds (the view is built directly, past every input check), it comes back byte for byte and
// the structure around it does not change: no new shell line, no new JSON or YAML key.

let renderer: Renderer;
before(async () => {
  renderer = await loadTemplates(TEMPLATE_DIRS);
});

/** Text made mostly of the characters that end quotes, lines and expansions. */
const hostile = fc.oneof(
  fc.constantFrom(...HOSTILE_VALUES),
  fc.string({ unit: fc.constantFrom("'", '"', '\\', '\n', '\r', '$', '`', '(', ')', '{', '}', '#', ':', ',', ' ', '\t', 'a', '\u2028', '\u0085', '\x1b', '%', ';', '&', '|'), maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
);
const noNul = hostile.filter((s) => !s.includes('\0'));

const VALUES_BLOCK = /# --- values rendered by mayu ---\n([\s\S]*?)# --- end of values ---\n/;

function view(fields: { serial: string; disk?: string; token: string; hostname?: string; key?: string }) {
  const host = sampleHost({ Serial: fields.serial, Hostname: fields.hostname ?? '00006811af601fe8', Overrides: fields.disk === undefined ? {} : { install_disk: fields.disk } });
  const env = fields.key === undefined ? {} : { ssh_authorized_keys: ['k1', fields.key] };
  return buildView(host, sampleConfig({ templates_env: env }), { ...VIEW_OPTS, reportTokenOf: () => fields.token });
}

describe('first-stage script', () => {
  it('hostile serial, install disk and report token: same script outside the values block, values read back exactly', () => {
    const plain = renderer.firstStageScript(view({ serial: 's', disk: '/dev/sda', token: 't' }));
    const reference = plain.replace(VALUES_BLOCK, '');
    const assignments = (block: string) => block.split('\n').filter((l) => /^[A-Z_]+='/.test(l)).length;
    const expectedAssignments = assignments(VALUES_BLOCK.exec(plain)![1]!);
    fc.assert(
      fc.property(noNul, noNul, noNul, (serial, disk, token) => {
        const script = renderer.firstStageScript(view({ serial, disk: `/dev/${disk}`, token }));
        const block = VALUES_BLOCK.exec(script)![1]!;
        assert.equal(script.replace(VALUES_BLOCK, ''), reference, 'no line outside the values block changed');
        assert.equal(assignments(block), expectedAssignments, 'still one assignment per value');
        const out = execFileSync('sh', ['-c', `${block}printf '%s\\0%s\\0%s' "$SERIAL" "$INSTALL_DISK" "$REPORT_TOKEN"`]);
        assert.deepEqual(out, Buffer.from(`${serial}\0/dev/${disk}\0${token}`));
      }),
      { numRuns: 150 },
    );
  });
});

interface IgnitionDoc {
  passwd: { users: { name: string; sshAuthorizedKeys: string[] }[] };
  storage: { files: { path: string; contents: { source: string } }[] };
}

describe('Ignition', () => {
  it('hostile serial, hostname, ssh key and report token: same keys and files, values read back exactly', () => {
    const reference = JSON.parse(renderer.ignition(view({ serial: 's', token: 't', key: 'k' }))) as IgnitionDoc & Record<string, unknown>;
    fc.assert(
      fc.property(hostile, hostile, hostile, hostile, (serial, hostname, key, token) => {
        const doc = JSON.parse(renderer.ignition(view({ serial, hostname, key, token }))) as IgnitionDoc & Record<string, unknown>;
        assert.deepEqual(Object.keys(doc), Object.keys(reference));
        assert.deepEqual(doc.storage.files.map((f) => Object.keys(f)), reference.storage.files.map((f) => Object.keys(f)));
        assert.deepEqual(doc.storage.files.map((f) => f.path), reference.storage.files.map((f) => f.path));
        assert.deepEqual(doc.passwd.users[0]!.sshAuthorizedKeys, ['k1', key]);
        const env = doc.storage.files.find((f) => f.path === '/etc/mayu-env')!.contents.source;
        assert.equal(decodeURIComponent(env.slice('data:,'.length)), `SERIAL=${serial}\nMAYU_VERSION=0.12.0\nMAYU_URL=${VIEW_OPTS.mayuUrl}\nREPORT_TOKEN=${token}\n`);
      }),
      { numRuns: 300 },
    );
  });
});

describe('cloud-config', () => {
  it('hostile serial, hostname, ssh key and report token: same keys, values read back exactly', () => {
    const reference = yaml.load(renderer.cloudConfig(view({ serial: 's', token: 't', key: 'k' }))) as Record<string, unknown>;
    fc.assert(
      fc.property(hostile, hostile, hostile, hostile, (serial, hostname, key, token) => {
        const doc = yaml.load(renderer.cloudConfig(view({ serial, hostname, key, token }))) as Record<string, unknown> & { hostname: string; ssh_authorized_keys: string[]; write_files: { content: string }[] };
        assert.deepEqual(Object.keys(doc), Object.keys(reference));
        assert.equal(doc.hostname, hostname);
        assert.deepEqual(doc.ssh_authorized_keys, ['k1', key]);
        assert.equal(doc.write_files.length, (reference as { write_files: unknown[] }).write_files.length);
        // The last line names the etcd discovery URL of the host's token (0.11's templates named it too).
        const env = doc.write_files[0]!.content;
        assert.match(env, /\nETCD_DISCOVERY=http:\/\/[^\n]+\/etcd\/[^\n]*\n$/);
        assert.equal(env.replace(/ETCD_DISCOVERY=[^\n]*\n$/, ''), `SERIAL=${serial}\nMAYU_VERSION=0.12.0\nMAYU_URL=${VIEW_OPTS.mayuUrl}\nREPORT_TOKEN=${token}\n`);
      }),
      { numRuns: 300 },
    );
  });
});
