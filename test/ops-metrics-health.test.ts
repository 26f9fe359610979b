import assert from 'node:assert/strict';
import { chmod, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gitCommitCount } from './helpers/git.ts';
import { hostData, reportAuth, startMayu, tempDir, writeText, type MayuProcess } from './helpers/mayu-process.ts';

// GET /metrics, /healthz, /readyz against the real server process.

/** The value of one series line `name{labels} value` of a Prometheus text answer; undefined if absent. */
function series(text: string, nameAndLabels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${nameAndLabels} `));
  return line === undefined ? undefined : Number(line.slice(nameAndLabels.length + 1));
}

async function until(check: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('metrics after a protocol walk (open admin API)', () => {
  let mayu: MayuProcess;
  before(async () => {
    mayu = await startMayu();
  });
  after(() => mayu.stop());

  it('counts hosts per state and profile, requests per route pattern, commits and batches', async () => {
    const serial = 'metrics-1';
    assert.equal((await fetch(`${mayu.url}/first-stage-script/${serial}`)).status, 200);
    assert.equal((await fetch(`${mayu.url}/first-stage-script/metrics-2`)).status, 200);
    assert.equal((await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData(serial, '52:54:00:ab:00:01')) })).status, 200);
    const put = async (route: string) => fetch(`${mayu.url}/admin/host/${serial}/${route}`, { method: 'PUT', headers: await reportAuth(mayu, serial), body: '{}' });
    assert.equal((await put('set_installed')).status, 202);
    assert.equal((await put('boot_complete')).status, 202);
    assert.equal((await fetch(`${mayu.url}/no/such/path`)).status, 404);

    const res = await fetch(`${mayu.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    assert.equal(series(text, 'mayu_hosts{state="running"}'), 1);
    assert.equal(series(text, 'mayu_hosts{state="unknown"}'), 1);
    assert.equal(series(text, 'mayu_hosts{state="installing"}'), 0);
    assert.equal(series(text, 'mayu_hosts_by_profile{profile="core"}'), 2);
    assert.equal(series(text, 'mayu_hosts_by_profile{profile="default"}'), 0);
    assert.equal(series(text, 'mayu_http_requests_total{method="GET",route="/first-stage-script/:serial",status="200"}'), 2);
    assert.equal(series(text, 'mayu_http_requests_total{method="POST",route="/final-cloud-config.yaml",status="200"}'), 1);
    assert.equal(series(text, 'mayu_http_requests_total{method="PUT",route="/admin/host/:serial/set_installed",status="202"}'), 1);
    assert.equal(series(text, 'mayu_http_requests_total{method="GET",route="(unmatched)",status="404"}'), 1);
    assert.ok(!text.includes('metrics-1'), 'no raw URL (serial) becomes a label');
    // Changes: two creations, final config, set_installed, boot_complete.
    assert.equal(series(text, 'mayu_commit_duration_seconds_count'), 5);
    assert.ok(series(text, 'mayu_commit_duration_seconds_sum')! > 0);
    // Every commit of the repo went through a batch (including the initial cluster.json one).
    assert.equal(series(text, 'mayu_commit_batch_size_sum'), gitCommitCount(mayu.clusterDir));
    assert.equal(series(text, 'mayu_write_queue_depth'), 0);
    assert.equal(series(text, 'mayu_event_subscribers'), 0);
    assert.equal(series(text, 'mayu_dnsmasq_restarts_total'), undefined, 'no dnsmasq series without dnsmasq');
    assert.ok(series(text, 'process_resident_memory_bytes')! > 0, 'default process metrics are there');
  });

  it('a deleted host leaves the host gauges at once; its removal is a timed commit in a batch', async () => {
    const before = await (await fetch(`${mayu.url}/metrics`)).text();
    assert.equal((await fetch(`${mayu.url}/admin/host/metrics-2`, { method: 'DELETE' })).status, 204);
    const text = await (await fetch(`${mayu.url}/metrics`)).text();
    assert.equal(series(text, 'mayu_hosts{state="unknown"}'), 0, 'metrics-2 was the unknown one');
    assert.equal(series(text, 'mayu_hosts{state="running"}'), 1);
    assert.equal(series(text, 'mayu_hosts_by_profile{profile="core"}'), 1);
    assert.equal(series(text, 'mayu_commit_duration_seconds_count'), series(before, 'mayu_commit_duration_seconds_count')! + 1);
    assert.equal(series(text, 'mayu_commit_batch_size_sum'), gitCommitCount(mayu.clusterDir));
    assert.equal(series(text, 'mayu_http_requests_total{method="DELETE",route="/admin/host/:serial",status="204"}'), 1);
    assert.equal(series(text, 'mayu_write_queue_depth'), 0);
  });

  it('healthz answers 200 and readyz 200 with no reasons (nor warnings, nor audit push) when mayu runs no dnsmasq', async () => {
    const health = await fetch(`${mayu.url}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), 'ok');
    const ready = await fetch(`${mayu.url}/readyz`);
    assert.equal(ready.status, 200);
    const { storage, ...rest } = (await ready.json()) as { storage: { freeBytes: number; minFreeBytes: number; writesFailing: boolean } };
    assert.deepEqual(rest, { ready: true, reasons: [], warnings: [] });
    // The cluster directory's disk (README "Full or failing disk"): figures, nothing failing.
    assert.equal(storage.writesFailing, false);
    assert.ok(storage.freeBytes > 0 && storage.minFreeBytes >= 64 * 1024 * 1024, JSON.stringify(storage));
    assert.ok(!(await (await fetch(`${mayu.url}/metrics`)).text()).includes('mayu_audit_push'), 'no audit push series without audit_push');
  });
});

describe('metrics with an admin token', () => {
  let mayu: MayuProcess;
  const token = 'metrics-admin-token-0123456789';
  before(async () => {
    mayu = await startMayu({ env: { MAYU_ADMIN_TOKEN: token } });
  });
  after(() => mayu.stop());

  it('/metrics needs the admin token; /healthz and /readyz stay open', async () => {
    const refused = await fetch(`${mayu.url}/metrics`);
    assert.equal(refused.status, 401);
    assert.match(await refused.text(), /authentication required/);
    const ok = await fetch(`${mayu.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /^mayu_hosts\{state="unknown"\} 0$/m);
    assert.equal((await fetch(`${mayu.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${mayu.url}/readyz`)).status, 200);
  });
});

describe('readyz and dnsmasq metrics follow the supervised dnsmasq', () => {
  let mayu: MayuProcess;
  before(async () => {
    // A stand-in for dnsmasq: prints the line dnsmasq prints after reading the hostsfile (at
    // start and on SIGHUP), writes its pid file, runs until killed. No root, no network.
    const dir = await tempDir('mayu-ops-fake-dnsmasq-');
    const fake = await writeText(path.join(dir, 'dnsmasq'), `#!/bin/sh
for a in "$@"; do
  case "$a" in --dhcp-hostsfile=*) hosts="\${a#--dhcp-hostsfile=}";; --pid-file=*) pidfile="\${a#--pid-file=}";; esac
done
echo $$ > "$pidfile"
trap 'echo "dnsmasq-dhcp: read $hosts" >&2' HUP
trap 'exit 0' TERM
echo "dnsmasq-dhcp: read $hosts" >&2
while :; do sleep 1 & wait $!; done
`);
    await chmod(fake, 0o755);
    mayu = await startMayu({ dnsmasq: fake });
  });
  after(() => mayu.stop());

  const scrape = async () => (await fetch(`${mayu.url}/metrics`)).text();

  it('is ready with dnsmasq up; a dead dnsmasq makes it 503 with the reason, and the restart is counted', async () => {
    const ready = await fetch(`${mayu.url}/readyz`);
    assert.equal(ready.status, 200);
    let text = await scrape();
    assert.equal(series(text, 'mayu_dnsmasq_up'), 1);
    assert.equal(series(text, 'mayu_dnsmasq_restarts_total'), 0);

    const pid = Number((await readFile(path.join(mayu.runDir, 'dnsmasq.pid'), 'utf8')).trim());
    process.kill(pid, 'SIGKILL');
    // The supervisor waits 250 ms before restarting: readiness drops meanwhile.
    await until(async () => (await fetch(`${mayu.url}/readyz`)).status === 503, 'readyz 503');
    const down = await fetch(`${mayu.url}/readyz`);
    const body = (await down.json()) as { ready: boolean; reasons: string[] };
    assert.equal(body.ready, false);
    assert.match(body.reasons.join(), /dnsmasq is not running/);

    await until(async () => (await fetch(`${mayu.url}/readyz`)).status === 200, 'readyz 200 again');
    text = await scrape();
    assert.equal(series(text, 'mayu_dnsmasq_restarts_total'), 1);
    assert.equal(series(text, 'mayu_dnsmasq_up'), 1);
  });
});
