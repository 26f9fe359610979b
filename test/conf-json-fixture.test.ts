import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { startServer } from '../src/server.ts';
import { git } from './helpers/git.ts';
import { FIXTURES, hostData, reportTokenIn, ROOT, tempDir } from './helpers/mayu-process.ts';

// In-process server with fixed randomness and clock, so conf.json can be compared byte for byte.

describe('conf.json after the full protocol walk', () => {
  it('is byte-exact against the fixture, in git and in the working tree', async () => {
    const dir = await tempDir();
    let counter = 0;
    const server = await startServer({
      configFile: path.join(FIXTURES, 'config.yaml'),
      clusterDir: path.join(dir, 'clusters'),
      templatesDir: path.join(ROOT, 'templates'),
      snippetsDir: path.join(ROOT, 'template_snippets'),
      imagesDir: path.join(dir, 'images'),
      tftpRoot: path.join(dir, 'tftproot'),
      httpPort: 0,
      httpBindAddress: '127.0.0.1',
      useGit: true,
      version: '0.12.0',
      logger: pino({ level: 'silent' }),
      security: { reportKeyFile: path.join(dir, 'report-key') },
      randomBytes: (n) => Uint8Array.from({ length: n }, () => (counter++ * 37) & 255),
      now: () => new Date('2026-11-21T10:20:30.456Z'),
    });
    try {
      const serial = '004B27ED-692E-B32E-1F68-D89AFF66C71B';
      await fetch(`${server.url}/first-stage-script/${serial}`);
      await fetch(`${server.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify({ ...hostData(serial, '00:16:3E:A0:B7:DF'), IPMIAddress: '10.0.9.5' }) });
      const token = reportTokenIn(await (await fetch(`${server.url}/first-stage-script/${serial}`)).text());
      const headers = { authorization: `Bearer ${token}` };
      assert.equal((await fetch(`${server.url}/admin/host/${serial}/set_installed`, { method: 'PUT', headers })).status, 202);
      assert.equal((await fetch(`${server.url}/admin/host/${serial}/boot_complete`, { method: 'PUT', headers, body: '{"CoreOSVersion":"1010.5.0","MayuVersion":"0.11.1","State":"unknown"}' })).status, 202);
      const lower = serial.toLowerCase();
      const expected = await readFile(path.join(FIXTURES, 'walk-conf.json'), 'utf8');
      assert.equal(git(path.join(dir, 'clusters'), 'show', `HEAD:${lower}/conf.json`), expected);
      assert.equal(await readFile(path.join(dir, 'clusters', lower, 'conf.json'), 'utf8'), expected);
      assert.equal(git(path.join(dir, 'clusters'), 'show', 'HEAD:cluster.json'), await readFile(path.join(FIXTURES, 'walk-cluster.json'), 'utf8'));
    } finally {
      await server.close();
    }
  });
});
