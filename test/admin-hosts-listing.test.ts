import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FIXTURES, NO_OVERLOAD_GATES_YAML, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';

describe('GET /admin/hosts (streamed a hundred hosts at a time)', () => {
  let mayu: MayuProcess;
  before(async () => {
    // Registrations 25 at a time: the overload gates would answer some 503 on a busy machine.
    const workDir = await tempDir();
    const config = path.join(workDir, 'config.yaml');
    await writeFile(config, `${await readFile(path.join(FIXTURES, 'config.yaml'), 'utf8')}${NO_OVERLOAD_GATES_YAML}`);
    mayu = await startMayu({ workDir, config });
  });
  after(async () => {
    await mayu?.stop();
  });

  it('answers [] for an empty cluster', async () => {
    const res = await fetch(`${mayu.url}/admin/hosts`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(await res.text(), '[]\n'); // 0.11's json.Encoder ends with a newline
  });

  it('lists 250 hosts as one compact JSON array, sorted by serial, across several chunks', async () => {
    const serials = Array.from({ length: 250 }, (_, i) => `list-${String(i).padStart(3, '0')}`);
    for (let i = 0; i < serials.length; i += 25) {
      await Promise.all(serials.slice(i, i + 25).map(async (s) => assert.equal((await fetch(`${mayu.url}/first-stage-script/${s}`)).status, 200)));
    }
    const text = await (await fetch(`${mayu.url}/admin/hosts`)).text();
    const hosts = JSON.parse(text) as { Serial: string; InternalAddr: string }[];
    assert.equal(text, `${JSON.stringify(hosts)}\n`, 'the bytes of the whole list, then a newline as 0.11');
    assert.deepEqual(hosts.map((h) => h.Serial), serials);
    assert.equal(new Set(hosts.map((h) => h.InternalAddr)).size, 250);
  });
});
