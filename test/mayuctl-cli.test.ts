// Runs the real mayuctl entry as a child process against a small node:http server that
// answers like mayu 0.11 and records every request.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));

const HOSTS = [
  {
    Enabled: true,
    Serial: 'node-b',
    MacAddresses: ['00:16:3e:a0:b7:df'],
    InternalAddr: '10.0.3.32',
    Hostname: '00006811af601fe8',
    MachineID: '00006811af601fe8e1d3f37902021ae0',
    ConnectedNIC: 'ens3',
    FleetMetadata: ['role-core=true'],
    LastBoot: '2015-10-08T19:14:36.227056826+02:00',
    Profile: 'core',
    EtcdClusterToken: 'e94768ef0f948b0c2e53536d9c5eeb8f',
    State: 'running',
    CoreOSVersion: '1010.5.0',
    MayuVersion: '0.11.1',
  },
  { Enabled: true, Serial: 'node-a', InternalAddr: '10.0.3.31', ConnectedNIC: '', LastBoot: '0001-01-01T00:00:00Z', Profile: 'default', State: 'unknown' },
];

const HISTORY = [
  { commit: '1111111122222222333333334444444455555555', time: '2024-03-01T12:00:05.123456789+01:00', message: 'node-a: updated state to running' },
  { commit: 'abcdef0123456789abcdef0123456789abcdef01', time: '2024-03-01T10:00:00Z', message: 'node-a: host created' },
];

interface Recorded {
  method: string;
  url: string;
  contentType: string | undefined;
  body: string;
}

/** Answers like mayu: 202 for setters on known hosts, 400 "host doesn't exist" otherwise. */
function fakeMayu(requests: Recorded[]): Server {
  const known = new Set(HOSTS.map((h) => h.Serial));
  return createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = req.url ?? '';
      requests.push({ method: req.method ?? '', url, contentType: req.headers['content-type'], body: Buffer.concat(chunks).toString() });
      const reply = (status: number, body = '', type = 'text/plain') => {
        res.writeHead(status, { 'content-type': type });
        res.end(body);
      };
      if (req.method === 'GET' && url === '/admin/hosts') return reply(200, JSON.stringify(HOSTS), 'application/json');
      const m = /^\/admin\/host\/([^/]+)\/([a-z_]+)$/.exec(url);
      if (!m) return reply(404, '404 page not found');
      const serial = decodeURIComponent(m[1] ?? '').toLowerCase();
      if (!known.has(serial)) return reply(m[2] === 'history' ? 404 : 400, "host doesn't exist\n");
      if (req.method === 'GET' && m[2] === 'history') return reply(200, JSON.stringify(HISTORY), 'application/json');
      if (req.method === 'PUT') return reply(202);
      return reply(404, '404 page not found');
    });
  });
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function mayuctl(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/mayuctl.ts', ...args], { cwd: repo, timeout: 30_000, env: { ...process.env, TZ: 'UTC' } }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('mayuctl against a fake mayu', () => {
  const requests: Recorded[] = [];
  const server = fakeMayu(requests);
  let port = 0;
  let tmp = '';
  const ctl = (...args: string[]) => mayuctl(['--host', '127.0.0.1', '--port', String(port), ...args]);

  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    tmp = await mkdtemp(join(tmpdir(), 'mayuctl-test-'));
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(tmp, { recursive: true, force: true });
  });
  beforeEach(() => {
    requests.length = 0;
  });

  it('list: default fields, sorted rows, header', async () => {
    const r = await ctl('list');
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    assert.equal(
      r.stdout,
      [
        'IP         SERIAL  PROFILE  IPMIADDR  PROVIDERID  ETCDTOKEN                         METADATA        COREOS    STATE      LASTBOOT',
        '10.0.3.31  node-a  default  -         -           -                                 -               -         "unknown"  0001-01-01 00:00:00',
        '10.0.3.32  node-b  core     -         -           e94768ef0f948b0c2e53536d9c5eeb8f  role-core=true  1010.5.0  "running"  2015-10-08 19:14:36',
        '',
      ].join('\n'),
    );
    assert.deepEqual(requests.map((q) => `${q.method} ${q.url}`), ['GET /admin/hosts']);
  });

  it('list --no-legend --fields, and --no-tls is accepted', async () => {
    const r = await ctl('--no-tls', 'list', '--no-legend', '--fields=serial,state,mayu');
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'node-a  "unknown"  -\nnode-b  "running"  0.11.1\n');
  });

  it('list with an invalid field fails before any request', async () => {
    const r = await ctl('list', '--fields=ip,bogus');
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, 'Invalid field: "bogus".\n');
    assert.equal(requests.length, 0);
  });

  it('list --json prints the hosts', async () => {
    const r = await ctl('list', '--json');
    assert.equal(r.code, 0);
    assert.deepEqual(JSON.parse(r.stdout), HOSTS);
    assert.match(r.stdout, /^\[\n {2}\{\n {4}"Enabled": true,/);
  });

  it('status finds the host case-insensitively', async () => {
    const r = await ctl('status', 'NODE-B');
    assert.equal(r.code, 0);
    const lines = r.stdout.split('\n');
    assert.equal(lines[0], 'Serial:              node-b');
    assert.equal(lines[2], 'IPMI:                <nil>');
    assert.equal(lines[12], 'State:               "running"');
    assert.equal(lines[13], 'EtcdToken:           e94768ef0f948b0c2e53536d9c5eeb8f');
    assert.equal(lines[23], 'LastBoot:            2015-10-08 19:14:36.227056826 +0200 +0200');
    assert.equal(lines[24], 'Enabled:             true');
    assert.equal(lines.length, 26);
  });

  it('status --json prints the host', async () => {
    const r = await ctl('status', 'node-a', '--json');
    assert.equal(r.code, 0);
    assert.deepEqual(JSON.parse(r.stdout), HOSTS[1]);
  });

  it('status of an unknown host', async () => {
    const r = await ctl('status', 'nope');
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'host nope not found.\n');
  });

  const zero = '"ConnectedNIC":"","LastBoot":"0001-01-01T00:00:00Z"';
  const setCases: { args: string[]; url: string; body: string }[] = [
    {
      args: ['metadata', 'a=b'],
      url: '/admin/host/node-a/set_metadata',
      body: '{"ConnectedNIC":"","FleetMetadata":["a=b"],"LastBoot":"0001-01-01T00:00:00Z","State":"unknown"}',
    },
    { args: ['providerid', 'rack-7'], url: '/admin/host/node-a/set_provider_id', body: `{"ProviderId":"rack-7",${zero},"State":"unknown"}` },
    { args: ['ipmiaddr', '10.0.9.1'], url: '/admin/host/node-a/set_ipmi_addr', body: `{"IPMIAddr":"10.0.9.1",${zero},"State":"unknown"}` },
    { args: ['cabinet', '101'], url: '/admin/host/node-a/set_cabinet', body: `{"Cabinet":101,${zero},"State":"unknown"}` },
    { args: ['state', 'configured'], url: '/admin/host/node-a/set_state', body: `{${zero},"State":"configured"}` },
    { args: ['etcdtoken', '0123'], url: '/admin/host/node-a/set_etcd_cluster_token', body: `{${zero},"EtcdClusterToken":"0123","State":"unknown"}` },
  ];
  for (const c of setCases) {
    it(`set node-a ${c.args.join(' ')} sends the whole Host object`, async () => {
      const r = await ctl('set', 'node-a', ...c.args);
      assert.deepEqual(r, { code: 0, stdout: '', stderr: '' });
      assert.deepEqual(requests, [{ method: 'PUT', url: c.url, contentType: 'application/json', body: c.body }]);
    });
  }

  it('set on an unknown host reports the status and the server text', async () => {
    const r = await ctl('set', 'ghost', 'state', 'configured');
    assert.equal(r.code, 1);
    assert.equal(r.stderr, "invalid status code '400'\nhost doesn't exist\n");
  });

  it('set with an unsupported key fails before any request', async () => {
    const r = await ctl('set', 'node-a', 'color', 'red');
    assert.equal(r.code, 2);
    assert.equal(r.stderr, "setting key with name 'color' is not supported\n");
    assert.equal(requests.length, 0);
  });

  it('set with a bad state fails before any request', async () => {
    const r = await ctl('set', 'node-a', 'state', 'broken');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^invalid state 'broken'/);
    assert.equal(requests.length, 0);
  });

  it('override', async () => {
    const r = await ctl('override', 'node-a', 'docker_version', '1.12.0');
    assert.equal(r.code, 0);
    assert.deepEqual(requests, [
      { method: 'PUT', url: '/admin/host/node-a/override', contentType: 'application/json', body: `{${zero},"Overrides":{"docker_version":"1.12.0"},"State":"unknown"}` },
    ]);
  });

  it('boot-complete, plain and --update-versions', async () => {
    const envFile = join(tmp, 'mayu-env');
    const osRelease = join(tmp, 'os-release');
    await writeFile(envFile, 'SERIAL=node-b\nMAYU_VERSION=0.12.0\n');
    await writeFile(osRelease, 'NAME="Container Linux by CoreOS"\nID=coreos\nVERSION=1010.5.0\nVERSION_ID=1010.5.0\n');
    const plain = await ctl('boot-complete', '--env-file', envFile, '--os-release', osRelease);
    assert.equal(plain.code, 0);
    const full = await ctl('boot-complete', '--update-versions', '--env-file', envFile, '--os-release', osRelease);
    assert.equal(full.code, 0);
    assert.deepEqual(
      requests.map((q) => [q.method, q.url, q.body]),
      [
        ['PUT', '/admin/host/node-b/boot_complete', `{${zero},"State":"unknown"}`],
        ['PUT', '/admin/host/node-b/boot_complete', `{${zero},"State":"unknown","CoreOSVersion":"1010.5.0","MayuVersion":"0.12.0"}`],
      ],
    );
  });

  it('boot-complete without SERIAL', async () => {
    const envFile = join(tmp, 'empty-env');
    await writeFile(envFile, 'MAYU_VERSION=0.12.0\n');
    const r = await ctl('boot-complete', '--env-file', envFile);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `Can't find serial in host environment (${envFile})\n`);
    assert.equal(requests.length, 0);
  });

  it('history prints one line per commit, newest first', async () => {
    const r = await ctl('history', 'node-a');
    assert.equal(r.code, 0);
    assert.equal(
      r.stdout,
      '2024-03-01 11:00:05  11111111  node-a: updated state to running\n2024-03-01 10:00:00  abcdef01  node-a: host created\n',
    );
    assert.deepEqual(requests.map((q) => `${q.method} ${q.url}`), ['GET /admin/host/node-a/history']);
  });

  it('history --json and history of an unknown host', async () => {
    const json = await ctl('history', 'node-a', '--json');
    assert.deepEqual(JSON.parse(json.stdout), HISTORY);
    const r = await ctl('history', 'ghost');
    assert.equal(r.code, 1);
    assert.equal(r.stderr, "host doesn't exist\n");
  });

  it('version prints the package version', async () => {
    const pkg = JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as { version: string };
    const r = await mayuctl(['version']);
    assert.deepEqual(r, { code: 0, stdout: `mayuctl version ${pkg.version}\n`, stderr: '' });
  });

  it('no command and unknown command are usage errors', async () => {
    assert.equal((await mayuctl([])).code, 2);
    const r = await mayuctl(['frobnicate']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Unknown argument: frobnicate/);
  });

  it('a refused connection names the URL', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const r = await mayuctl(['--host', '127.0.0.1', '--port', String(deadPort), 'list']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `cannot reach mayu at http://127.0.0.1:${deadPort}/admin/hosts: connect ECONNREFUSED 127.0.0.1:${deadPort}\n`);
  });
});
