import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { git } from './helpers/git.ts';
import { FIXTURES, hostData, macFor, reportAuth, runMayuctl, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';

// Stuck installs end to end, with a 1 s threshold: the real mayu flags an installing host and a
// host waiting for its reinstall (metric, one event per episode, GET /admin/stuck, mayuctl list
// --stuck), leaves a pre-staged configured host and a finished install alone, clears a flag when
// the state moves on, and after a restart knows since when from git history.

const AFTER_SECONDS = 1;

interface Collected { events: Record<string, unknown>[]; stop: () => void }

/** Reads /admin/events in the background, every data line parsed. */
async function collectEvents(url: string): Promise<Collected> {
  const ctrl = new AbortController();
  const res = await fetch(`${url}/admin/events`, { signal: ctrl.signal });
  const events: Record<string, unknown>[] = [];
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let subscribed!: () => void;
  const ready = new Promise<void>((r) => (subscribed = r));
  void (async () => {
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += value;
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          if (block.includes(': subscribed')) subscribed();
          for (const line of block.split('\n')) if (line.startsWith('data: ')) events.push(JSON.parse(line.slice(6)));
        }
      }
    } catch { /* aborted */ }
  })();
  await ready;
  return { events, stop: () => ctrl.abort() };
}

async function stuckMetric(m: MayuProcess): Promise<Record<string, number>> {
  const text = await (await fetch(`${m.url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const [, state, n] of text.matchAll(/^mayu_hosts_stuck\{state="(\w+)"\} (\d+)$/gm)) out[state!] = Number(n);
  return out;
}

async function until<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, ms = 8000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('stuck installs (threshold 1 s)', () => {
  let workDir: string;
  let config: string;
  let mayu: MayuProcess;
  let collected: Collected;

  const put = async (serial: string, route: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${mayu.url}/admin/host/${serial}/${route}`, { method: 'PUT', headers, body: body === undefined ? undefined : JSON.stringify(body) });
    assert.equal(res.status, 202, `${route} ${serial}: ${await res.text()}`);
  };
  const install = async (serial: string, i: number) => {
    assert.equal((await fetch(`${mayu.url}/first-stage-script/${serial}`)).status, 200);
    const res = await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData(serial, macFor(i))) });
    assert.equal(res.status, 200);
  };

  before(async () => {
    workDir = await tempDir('mayu-stuck-');
    config = path.join(workDir, 'config.yaml');
    await writeFile(config, `${await readFile(path.join(FIXTURES, 'config.yaml'), 'utf8')}\nstuck_installs:\n  after_seconds: ${AFTER_SECONDS}\n`);
    mayu = await startMayu({ workDir, config });
    collected = await collectEvents(mayu.url);
  });
  after(async () => {
    collected?.stop();
    await mayu?.stop();
  });

  it('flags an installing host and one waiting for its reinstall; not a pre-staged one nor a finished install', async () => {
    await install('st-inst', 1); // stays installing
    await install('st-re', 2); // installed, running, then a reinstall request
    await put('st-re', 'set_installed', undefined, await reportAuth(mayu, 'st-re'));
    await put('st-re', 'boot_complete', {}, await reportAuth(mayu, 'st-re'));
    const reinstall = await runMayuctl(mayu.port, ['set', 'st-re', 'state', 'configured']);
    assert.equal(reinstall.code, 0, reinstall.stderr);
    assert.equal((await fetch(`${mayu.url}/first-stage-script/st-pre`)).status, 200);
    await put('st-pre', 'set_state', { State: 'configured' }); // from unknown: pre-staged
    await install('st-done', 3);
    await put('st-done', 'set_installed', undefined, await reportAuth(mayu, 'st-done'));

    const metric = await until('mayu_hosts_stuck', () => stuckMetric(mayu), (m) => m.installing === 1 && m.configured === 1);
    assert.deepEqual(metric, { installing: 1, configured: 1 });

    const stuck = (await (await fetch(`${mayu.url}/admin/stuck`)).json()) as Record<string, unknown>[];
    assert.deepEqual(stuck.map((s) => [s.Serial, s.State, s.From]), [['st-inst', 'installing', 'unknown'], ['st-re', 'configured', 'running']]);
    for (const s of stuck) assert.ok((s.Seconds as number) >= AFTER_SECONDS && Date.parse(s.Since as string) <= Date.now() - AFTER_SECONDS * 1000);
  });

  it('sends one event per episode on /admin/events, with the stuck record and nothing written', async () => {
    const commits = git(mayu.clusterDir, 'rev-list', '--count', 'HEAD');
    await until('stuck events', async () => collected.events.filter((e) => e.stuck).length, (n) => n >= 2);
    await sleep(4 * AFTER_SECONDS * 1000 / 4 + 600); // several more checks
    const stuckEvents = collected.events.filter((e) => e.stuck);
    assert.deepEqual(stuckEvents.map((e) => e.serial).sort(), ['st-inst', 'st-re'], 'once each');
    const e = stuckEvents.find((x) => x.serial === 'st-inst')!;
    assert.equal(e.from, 'installing');
    assert.equal(e.to, 'installing');
    assert.equal(e.commit, undefined);
    assert.match((e.messages as string[])[0]!, /^stuck in installing for \d+s \(since \d{4}-\d\d-\d\dT[\d:.]+Z\)$/);
    assert.equal(git(mayu.clusterDir, 'rev-list', '--count', 'HEAD'), commits, 'a flag writes no commit');
    // mayuctl events prints it as any other line.
    assert.ok(mayu.logs.some((l) => l.msg === 'install stuck' && l.serial === 'st-inst'), 'one warning line in the log');
  });

  it('mayuctl list --stuck lists exactly the stuck hosts with SINCE and FOR; --json is the route\'s answer', async () => {
    const table = await runMayuctl(mayu.port, ['list', '--stuck', '--fields', 'serial,state']);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^SERIAL\s+STATE\s+SINCE\s+FOR$/);
    assert.deepEqual(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 2)), [['st-inst', '"installing"'], ['st-re', '"configured"']]);
    for (const l of lines.slice(1)) assert.match(l, /\d{4}-\d\d-\d\dT[\d:.]+Z\s+\d+s$/);
    const json = await runMayuctl(mayu.port, ['list', '--stuck', '--json']);
    assert.deepEqual((JSON.parse(json.stdout) as { Serial: string }[]).map((s) => s.Serial), ['st-inst', 'st-re']);
    const all = await runMayuctl(mayu.port, ['list', '--fields', 'serial']);
    assert.equal(all.stdout.trimEnd().split('\n').length, 5, 'plain list unchanged: legend + 4 hosts');
  });

  it('clears the flag when the state moves on; a new episode is announced again', async () => {
    await put('st-inst', 'set_installed', undefined, await reportAuth(mayu, 'st-inst'));
    assert.deepEqual((await stuckMetric(mayu)).installing, 0);
    const list = await runMayuctl(mayu.port, ['list', '--stuck', '--fields', 'serial', '--no-legend']);
    assert.equal(list.stdout.split(/\s+/)[0], 'st-re');
    // Back to configured from installed: a new episode, a new event.
    await put('st-inst', 'set_state', { State: 'configured' });
    await until('second episode event', async () => collected.events.filter((e) => e.stuck && e.serial === 'st-inst').length, (n) => n === 2);
  });

  it('after a restart knows since when from git history (commit time of the reinstall request) and where it came from', async () => {
    collected.stop();
    await mayu.stop();
    // The reinstall request's commit: the newest of st-re.
    const [time, subject] = git(mayu.clusterDir, 'log', '-1', '--format=%cI%n%s', '--', 'st-re/conf.json').trim().split('\n');
    assert.equal(subject, 'st-re: updated host state');
    mayu = await startMayu({ workDir, config });
    const stuck = await until('stuck after restart', async () => (await (await fetch(`${mayu.url}/admin/stuck`)).json()) as Record<string, unknown>[],
      (l) => l.length === 2);
    const re = stuck.find((s) => s.Serial === 'st-re')!;
    assert.equal(re.Since, new Date(time!).toISOString().replace('.000Z', 'Z'));
    assert.equal(re.From, 'running');
    assert.deepEqual(stuck.map((s) => s.Serial), ['st-inst', 'st-re'], 'st-pre (pre-staged) stays unflagged after the restart too');
    assert.deepEqual(await stuckMetric(mayu), { installing: 0, configured: 2 });
  });
});
