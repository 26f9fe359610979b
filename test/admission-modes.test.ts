import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { git, gitCommitCount, gitFsck, gitSubjects } from './helpers/git.ts';
import { FIXTURES, hostData, runMayuctl, startMayu, tempDir, writeText, type MayuProcess } from './helpers/mayu-process.ts';

// Admission control (issue 17) against the real server: `approve` and `known` modes, the
// inventory, bad input, the audit commits (read with native git) and a restart.

async function configWith(extra: string): Promise<{ dir: string; config: string }> {
  const dir = await tempDir('mayu-admission-');
  const base = await readFile(path.join(FIXTURES, 'config.yaml'), 'utf8');
  return { dir, config: await writeText(path.join(dir, 'config.yaml'), `${base}${extra}`) };
}

const put = (m: MayuProcess, route: string, body = '') => fetch(`${m.url}${route}`, { method: 'PUT', body });
const hostSerials = async (m: MayuProcess) => ((await (await fetch(`${m.url}/admin/hosts`)).json()) as { Serial: string }[]).map((h) => h.Serial);
const pending = async (m: MayuProcess) => ((await (await fetch(`${m.url}/admin/pending`)).json()) as { Mode: string; Machines: { Serial: string; Status: string; MacAddresses: string[] }[] });
const atHead = (m: MayuProcess, file: string) => git(m.clusterDir, 'show', `HEAD:${file}`);
const filesAtHead = (m: MayuProcess) => git(m.clusterDir, 'ls-tree', '-r', '--name-only', 'HEAD').split('\n').filter(Boolean);

describe('admission mode approve', () => {
  let mayu: MayuProcess;
  let workDir: string;
  let config: string;
  before(async () => {
    ({ dir: workDir, config } = await configWith('admission:\n  mode: approve\n  retry_seconds: 20\n'));
    mayu = await startMayu({ workDir, config });
  });
  after(() => mayu.stop());

  it('records a new machine once as pending (no host, no address, no slot) and answers scripts that wait and ask again', async () => {
    const start = gitCommitCount(mayu.clusterDir);
    const first = await fetch(`${mayu.url}/first-stage-script/new-1`);
    assert.equal(first.status, 200);
    const script = await first.text();
    assert.match(script, /new-1 waits for an operator to approve it/);
    assert.match(script, /WAIT=20/);
    assert.match(script, /exec sh \/tmp\/first-stage.sh/);
    assert.doesNotMatch(script, /REPORT_TOKEN/, 'no installer script before approval');
    for (let i = 0; i < 3; i++) assert.equal((await fetch(`${mayu.url}/first-stage-script/new-1`)).status, 200);
    // iPXE: sleep, then the same request again; the booting MAC is recorded.
    const ipxe = await (await fetch(`${mayu.url}/ipxebootscript?serial=NEW-2&mac=52-54-00-aa-00-02&uuid=x`)).text();
    assert.match(ipxe, /^#!ipxe\n/);
    assert.match(ipxe, /\nsleep 20\n/);
    assert.match(ipxe, /\nchain http:\/\/127\.0\.0\.1:\d+\/ipxebootscript\?serial=\$\{serial:uristring\}&mac=\$\{mac:hexhyp\}&uuid=\$\{uuid\}\n/);
    // The installer's POST without an approval: 403, recorded once too.
    const post = await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData('new-3', '52:54:00:aa:00:03')) });
    assert.equal(post.status, 403);
    assert.match(await post.text(), /new-3 is not admitted \(pending\)/);

    assert.deepEqual(gitSubjects(mayu.clusterDir).slice(start), [
      'new-1: pending approval (approve mode)', 'new-2: pending approval (approve mode)', 'new-3: pending approval (approve mode)',
    ]);
    assert.deepEqual(await hostSerials(mayu), []);
    assert.equal((await fetch(`${mayu.url}/admin/host/new-1`)).status, 404);
    const record = JSON.parse(atHead(mayu, '_admission/new-2.json')) as Record<string, unknown>;
    assert.equal(record.Status, 'pending');
    assert.deepEqual(record.MacAddresses, ['52:54:00:aa:00:02']);
    assert.ok(!filesAtHead(mayu).some((f) => f.endsWith('conf.json')), 'no host folder for a pending machine');
    const list = await pending(mayu);
    assert.equal(list.Mode, 'approve');
    assert.deepEqual(list.Machines.map((m) => [m.Serial, m.Status]), [['new-1', 'pending'], ['new-2', 'pending'], ['new-3', 'pending']]);
  });

  it('approves: one approval commit, then the host\'s creation; the machine then gets its installer', async () => {
    const start = gitCommitCount(mayu.clusterDir);
    const res = await put(mayu, '/admin/host/new-1/approve');
    assert.equal(res.status, 200);
    const host = (await res.json()) as Record<string, unknown>;
    assert.equal(host.Profile, 'core');
    assert.equal(host.InternalAddr, '10.0.3.31');
    assert.deepEqual(gitSubjects(mayu.clusterDir).slice(start), [
      'new-1: approved (profile core)', 'new-1: host created', 'new-1: updated with predefined settings', 'new-1: updated host InternalAddr',
      'new-1: updated host profile and metadata', 'new-1: set default etcd discovery token',
    ]);
    assert.ok(!filesAtHead(mayu).includes('_admission/new-1.json'), 'the record is gone with the approval');
    assert.ok(JSON.parse(atHead(mayu, 'new-1/conf.json')).Serial === 'new-1');
    assert.match(await (await fetch(`${mayu.url}/first-stage-script/new-1`)).text(), /^REPORT_TOKEN='[0-9a-f]{64}'$/m);

    // mayuctl approve with a profile.
    const ctl = await runMayuctl(mayu.port, ['approve', 'new-2', '--profile', 'default']);
    assert.equal(ctl.code, 0, ctl.stderr);
    assert.match(ctl.stdout, /new-2: approved, profile default, address 10\.0\.3\.32/);
    assert.equal(gitSubjects(mayu.clusterDir).at(-6), 'new-2: approved (profile default)');
  });

  it('refuses unknown, already approved, path-tricked and oversized serials and unknown or full profiles with a 4xx; nothing written', async () => {
    const start = gitCommitCount(mayu.clusterDir);
    const cases: [string, string, number, RegExp][] = [
      ['/admin/host/never-seen/approve', '', 404, /no machine never-seen is waiting for admission/],
      ['/admin/host/new-1/approve', '', 409, /new-1 is approved already: it is a host/],
      ['/admin/host/..%2F..%2Fetc/approve', '', 400, /invalid serial/],
      [`/admin/host/${'a'.repeat(200)}/approve`, '', 400, /invalid serial/],
      ['/admin/host/new-3/approve', '{"Profile":"nope"}', 400, /unknown profile "nope" \(known: core, default\)/],
      ['/admin/host/new-3/approve', '{"Profile":', 400, /unable to parse json data in approve request/],
      ['/admin/host/new-3/approve', '{"Profile":"core","Force":true}', 400, /unknown field "Force"/],
      ['/admin/host/never-seen/reject', '', 404, /no machine never-seen is waiting/],
      ['/admin/host/new-1/reject', '', 409, /new-1 is a host already/],
      ['/admin/host/_admission/reject', '', 400, /invalid serial/],
    ];
    for (const [route, body, status, message] of cases) {
      const res = await put(mayu, route, body);
      assert.equal(res.status, status, route);
      assert.match(await res.text(), message, route);
    }
    // core (quantity 3) holds new-1; two more fill it, then an approval into core is a 409.
    for (const s of ['new-4', 'new-5', 'new-6']) await fetch(`${mayu.url}/first-stage-script/${s}`);
    for (const s of ['new-4', 'new-5']) assert.equal((await put(mayu, `/admin/host/${s}/approve`, '{"Profile":"core"}')).status, 200);
    const afterFill = gitCommitCount(mayu.clusterDir);
    const full = await put(mayu, '/admin/host/new-6/approve', '{"Profile":"core"}');
    assert.equal(full.status, 409);
    assert.match(await full.text(), /profile "core" is full: quantity 3, held by 3 hosts/);
    assert.equal(gitCommitCount(mayu.clusterDir), afterFill);
    assert.equal(afterFill - start, 3 + 2 * 6, 'only the three new records and two approvals were written');
  });

  it('rejects: one commit; the installer is told to stop, iPXE waits longer; a second reject is a 409; an approval still admits it', async () => {
    const start = gitCommitCount(mayu.clusterDir);
    const ctl = await runMayuctl(mayu.port, ['reject', 'new-3']);
    assert.equal(ctl.code, 0, ctl.stderr);
    assert.deepEqual(gitSubjects(mayu.clusterDir).slice(start), ['new-3: rejected']);
    assert.equal(JSON.parse(atHead(mayu, '_admission/new-3.json')).Status, 'rejected');
    const script = await (await fetch(`${mayu.url}/first-stage-script/new-3`)).text();
    assert.match(script, /ERROR: new-3 was rejected by an operator/);
    assert.match(script, /\nexit 1\n/);
    assert.match(await (await fetch(`${mayu.url}/ipxebootscript?serial=new-3&mac=52-54-00-aa-00-03&uuid=x`)).text(), /\nsleep 200\n/);
    const again = await runMayuctl(mayu.port, ['reject', 'new-3']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /new-3 is rejected already/);
    assert.equal(gitCommitCount(mayu.clusterDir), start + 1);
    const listed = await runMayuctl(mayu.port, ['pending']);
    assert.match(listed.stdout, /^Serial\s+Status/);
    assert.match(listed.stdout, /new-3\s+rejected/);
    assert.match(listed.stdout, /new-6\s+pending/);
    assert.equal((await put(mayu, '/admin/host/new-3/approve')).status, 200);
    assert.equal(gitSubjects(mayu.clusterDir)[start + 1], 'new-3: approved (profile default)');
  });

  it('keeps pending machines, rejections and hosts across a restart; git fsck is clean', async () => {
    await fetch(`${mayu.url}/first-stage-script/new-7`);
    await put(mayu, '/admin/host/new-7/reject');
    const hostsBefore = await hostSerials(mayu);
    const pendingBefore = (await pending(mayu)).Machines.map((m) => [m.Serial, m.Status]);
    await mayu.stop();
    mayu = await startMayu({ workDir, config });
    assert.deepEqual(await hostSerials(mayu), hostsBefore);
    assert.deepEqual((await pending(mayu)).Machines.map((m) => [m.Serial, m.Status]), pendingBefore);
    assert.deepEqual(pendingBefore, [['new-6', 'pending'], ['new-7', 'rejected']]);
    const start = gitCommitCount(mayu.clusterDir);
    assert.match(await (await fetch(`${mayu.url}/first-stage-script/new-6`)).text(), /waits for an operator/);
    assert.equal(gitCommitCount(mayu.clusterDir), start, 'a machine recorded before the restart is not recorded again');
    gitFsck(mayu.clusterDir);
  });
});

describe('admission mode known', () => {
  let mayu: MayuProcess;
  let workDir: string;
  let config: string;
  before(async () => {
    ({ dir: workDir, config } = await configWith('admission:\n  mode: known\n'));
    mayu = await startMayu({ workDir, config });
  });
  after(() => mayu.stop());

  it('admits inventory machines with the profile named there; others are discovered once and wait', async () => {
    const start = gitCommitCount(mayu.clusterDir);
    const add = await runMayuctl(mayu.port, ['inventory', 'add', 'K-1', '--profile', 'default']);
    assert.equal(add.code, 0, add.stderr);
    assert.equal((await runMayuctl(mayu.port, ['inventory', 'add', 'k-2'])).code, 0);
    assert.deepEqual(gitSubjects(mayu.clusterDir).slice(start), ['k-1: added to inventory (profile default)', 'k-2: added to inventory']);
    assert.match(atHead(mayu, '_config/inventory.yaml'), /machines:\n {2}- serial: k-1\n {4}profile: default\n {2}- serial: k-2\n/);

    assert.match(await (await fetch(`${mayu.url}/first-stage-script/k-1`)).text(), /^REPORT_TOKEN=/m);
    assert.match(await (await fetch(`${mayu.url}/first-stage-script/k-2`)).text(), /^REPORT_TOKEN=/m);
    const hosts = (await (await fetch(`${mayu.url}/admin/hosts`)).json()) as { Serial: string; Profile: string }[];
    assert.deepEqual(hosts.map((h) => [h.Serial, h.Profile]), [['k-1', 'default'], ['k-2', 'core']], 'k-1 gets its inventory profile though core has room');

    const beforeUnknown = gitCommitCount(mayu.clusterDir);
    for (let i = 0; i < 3; i++) assert.match(await (await fetch(`${mayu.url}/first-stage-script/stray-1`)).text(), /stray-1 is not in the inventory/);
    assert.deepEqual(gitSubjects(mayu.clusterDir).slice(beforeUnknown), ['stray-1: discovered (known mode)']);
    assert.deepEqual((await pending(mayu)).Machines.map((m) => [m.Serial, m.Status]), [['stray-1', 'discovered']]);
  });

  it('approving a discovered machine adds it to the inventory in the approval commit and creates its host', async () => {
    const start = gitCommitCount(mayu.clusterDir);
    const ctl = await runMayuctl(mayu.port, ['approve', 'stray-1']);
    assert.equal(ctl.code, 0, ctl.stderr);
    assert.equal(gitSubjects(mayu.clusterDir)[start], 'stray-1: approved (profile core)');
    const approval = git(mayu.clusterDir, 'log', '--format=%H', '--grep', '^stray-1: approved').trim();
    const changed = git(mayu.clusterDir, 'show', '--name-only', '--format=', approval).split('\n').filter(Boolean).sort();
    assert.deepEqual(changed, ['_admission/stray-1.json', '_config/inventory.yaml']);
    assert.match(atHead(mayu, '_config/inventory.yaml'), /- serial: stray-1\n/);
    const inv = await runMayuctl(mayu.port, ['inventory', 'list']);
    assert.match(inv.stdout, /k-1\s+default\s+unknown/);
    assert.match(inv.stdout, /stray-1\s+-\s+unknown/);
  });

  it('inventory: adding a serial with a full profile or an unknown one is refused; remove writes one commit; unknown is 404', async () => {
    // core (quantity 3) holds k-2 and stray-1: one slot left, which k-3 reserves.
    assert.equal((await put(mayu, '/admin/inventory/k-3', '{"Profile":"core"}')).status, 201);
    const start = gitCommitCount(mayu.clusterDir);
    const full = await put(mayu, '/admin/inventory/k-5', '{"Profile":"core"}');
    assert.equal(full.status, 409);
    assert.match(await full.text(), /profile "core" is full: quantity 3, held by 2 hosts and 1 inventory entry not yet registered/);
    const unknown = await put(mayu, '/admin/inventory/k-5', '{"Profile":"nope"}');
    assert.equal(unknown.status, 400);
    const same = await put(mayu, '/admin/inventory/k-3', '{"Profile":"core"}');
    assert.equal(same.status, 200, 'unchanged entry: nothing to commit');
    assert.equal((await fetch(`${mayu.url}/admin/inventory/nope-1`, { method: 'DELETE' })).status, 404);
    assert.equal(gitCommitCount(mayu.clusterDir), start);
    const rm = await runMayuctl(mayu.port, ['inventory', 'remove', 'k-3']);
    assert.equal(rm.code, 0, rm.stderr);
    assert.deepEqual(gitSubjects(mayu.clusterDir).slice(start), ['k-3: removed from inventory']);
    assert.match(await (await fetch(`${mayu.url}/first-stage-script/k-3`)).text(), /k-3 is not in the inventory/);
    gitFsck(mayu.clusterDir);
  });
});

describe('admission mode open (the default)', () => {
  let mayu: MayuProcess;
  before(async () => {
    mayu = await startMayu();
  });
  after(() => mayu.stop());

  it('admits every machine as 0.11 did; an inventory entry names the profile outright', async () => {
    assert.equal((await pending(mayu)).Mode, 'open');
    assert.equal((await put(mayu, '/admin/inventory/o-2', '{"Profile":"default"}')).status, 201);
    for (const s of ['o-1', 'o-2', 'o-3']) assert.equal((await fetch(`${mayu.url}/first-stage-script/${s}`)).status, 200);
    const hosts = (await (await fetch(`${mayu.url}/admin/hosts`)).json()) as { Serial: string; Profile: string }[];
    assert.deepEqual(hosts.map((h) => [h.Serial, h.Profile]), [['o-1', 'core'], ['o-2', 'default'], ['o-3', 'core']]);
    assert.ok(!filesAtHead(mayu).some((f) => f.startsWith('_admission/')), 'open mode records nobody');
  });

  it("an inventory entry's profile slot is held until its machine comes: others cannot take the last one", async () => {
    const hostsNow = async () => (await (await fetch(`${mayu.url}/admin/hosts`)).json()) as { Serial: string; Profile: string }[];
    // Fill core (quantity 3) up to its last slot, then hold that slot for r-1.
    const core = (await hostsNow()).filter((h) => h.Profile === 'core').length;
    for (let i = core; i < 2; i++) assert.equal((await fetch(`${mayu.url}/first-stage-script/fill-${i}`)).status, 200);
    assert.equal((await put(mayu, '/admin/inventory/r-1', '{"Profile":"core"}')).status, 201);
    assert.equal((await fetch(`${mayu.url}/first-stage-script/o-4`)).status, 200);
    assert.equal((await fetch(`${mayu.url}/first-stage-script/r-1`)).status, 200);
    const hosts = await hostsNow();
    const profileOf = new Map(hosts.map((h) => [h.Serial, h.Profile]));
    assert.equal(profileOf.get('o-4'), 'default', 'o-4 must not take the slot held for r-1');
    assert.equal(profileOf.get('r-1'), 'core');
    assert.equal(hosts.filter((h) => h.Profile === 'core').length, 3, 'core stays within its quantity');
  });
});

describe('admission with --no-git', () => {
  it('keeps the records as plain files across a restart; approval creates the host', async () => {
    const { dir, config } = await configWith('admission:\n  mode: approve\n');
    let mayu = await startMayu({ workDir: dir, config, args: ['--no-git'] });
    try {
      assert.match(await (await fetch(`${mayu.url}/first-stage-script/ng-1`)).text(), /waits for an operator/);
      assert.equal(JSON.parse(await readFile(path.join(mayu.clusterDir, '_admission/ng-1.json'), 'utf8')).Status, 'pending');
      await mayu.stop();
      mayu = await startMayu({ workDir: dir, config, args: ['--no-git'] });
      assert.deepEqual((await pending(mayu)).Machines.map((m) => m.Serial), ['ng-1']);
      assert.equal((await put(mayu, '/admin/host/ng-1/approve')).status, 200);
      assert.deepEqual(await hostSerials(mayu), ['ng-1']);
      await assert.rejects(readFile(path.join(mayu.clusterDir, '_admission/ng-1.json')), { code: 'ENOENT' });
    } finally {
      await mayu.stop();
    }
  });
});
