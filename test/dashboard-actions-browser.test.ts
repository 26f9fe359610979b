import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { expectText, launchChromium, watchErrors } from './helpers/chromium.ts';
import { gitCommitCount, gitSubjects } from './helpers/git.ts';
import { FIXTURES, hostData, macFor, reportAuth, runMayuctl, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';

// The dashboard's actions in Chromium against the real mayu with an admin token: each asks for a
// confirmation (Cancel writes nothing), then makes exactly the commits the matching mayuctl verb
// makes on a twin host (same subjects, same conf.json fields changed), errors shown in mayu's
// words. And a stuck install's badge, live.

const ADMIN = 'dashboard-actions-admin-token-0123';
const auth = { authorization: `Bearer ${ADMIN}` };

const row = (page: Page, serial: string) => page.locator(`tr[data-serial="${serial}"]`);
const dialog = (page: Page, id: string) => page.locator(`dialog[data-dialog="${id}"]`);

async function register(mayu: MayuProcess, serial: string, i: number) {
  assert.equal((await fetch(`${mayu.url}/first-stage-script/${serial}`)).status, 200);
  const res = await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData(serial, macFor(i))) });
  assert.equal(res.status, 200);
}

/** The host as mayu answers it; {} once deleted. */
async function hostOf(mayu: MayuProcess, serial: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${mayu.url}/admin/host/${serial}`, { headers: auth });
  if (res.status === 404) return {};
  assert.equal(res.status, 200);
  return (await res.json()) as Record<string, unknown>;
}

/** The conf.json fields a change set, with their new values. */
function changedFields(before: Record<string, unknown>, after: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (JSON.stringify(before[k]) !== JSON.stringify(after[k])) out[k] = after[k];
  }
  return out;
}

/** Commit subjects since `from` with the serial written as S. */
const subjectsSince = (dir: string, from: number, serial: string) => gitSubjects(dir).slice(from).map((s) => s.replace(`${serial}: `, 'S: '));

describe('dashboard actions (admin token)', () => {
  let mayu: MayuProcess;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;
  let errors: string[];

  const mayuctl = (...args: string[]) => runMayuctl(mayu.port, args, { MAYU_TOKEN: ADMIN });

  /** Opens the host page of `serial` and waits for its actions. */
  async function openHost(serial: string) {
    await page.evaluate((s) => (location.hash = `#/host/${encodeURIComponent(s)}`), serial);
    await page.locator(`[data-host-page="${serial}"] section.actions`).waitFor();
  }

  /**
   * Runs `ui` for the UI host and `cli` for its twin, and checks both made the same commits and
   * changed the same fields. Returns the subjects (serial as S).
   */
  async function sameAsCli(uiSerial: string, cliSerial: string, ui: () => Promise<void>, cliArgs: string[]): Promise<string[]> {
    const uiBefore = await hostOf(mayu, uiSerial);
    let from = gitCommitCount(mayu.clusterDir);
    await ui();
    const uiSubjects = subjectsSince(mayu.clusterDir, from, uiSerial);
    const uiChanged = changedFields(uiBefore, await hostOf(mayu, uiSerial));

    const cliBefore = await hostOf(mayu, cliSerial);
    from = gitCommitCount(mayu.clusterDir);
    const r = await mayuctl(...cliArgs);
    assert.equal(r.code, 0, r.stderr);
    const cliSubjects = subjectsSince(mayu.clusterDir, from, cliSerial);
    assert.deepEqual(uiSubjects, cliSubjects, 'same commits as the CLI verb');
    assert.deepEqual(uiChanged, changedFields(cliBefore, await hostOf(mayu, cliSerial)), 'same fields changed as by the CLI verb');
    assert.ok(uiSubjects.length > 0);
    return uiSubjects;
  }

  before(async () => {
    mayu = await startMayu({ env: { MAYU_ADMIN_TOKEN: ADMIN } });
    // core (quantity 3) fills first; every host after is `default`.
    let i = 0;
    for (const s of ['core-1', 'core-2', 'core-3', 'ui-p', 'cli-p', 'ui-r', 'cli-r', 'ui-m', 'cli-m', 'ui-d', 'cli-d']) await register(mayu, s, ++i);
    browser = await launchChromium();
    page = await browser.context.newPage();
    errors = watchErrors(page);
    await page.goto(`${mayu.url}/ui/`);
    await page.locator('#token').fill(ADMIN);
    await page.locator('form.token-form button[type="submit"]').click();
    await row(page, 'ui-p').waitFor();
    await page.locator('#live[data-live="on"]').waitFor();
  });
  after(async () => {
    await browser?.close();
    await mayu?.stop();
  });

  it('reinstall: a confirmation naming the mayuctl command; Cancel writes nothing; confirmed, the commits of `mayuctl set S state configured`', async () => {
    await openHost('ui-r');
    const before = gitCommitCount(mayu.clusterDir);
    await page.locator('[data-action="reinstall"]').click();
    assert.equal(await dialog(page, 'reinstall').locator('[data-command]').textContent(), 'mayuctl set ui-r state configured');
    assert.match((await dialog(page, 'reinstall').textContent())!, /Reinstall ui-r\?.*installer at its next netboot/);
    await dialog(page, 'reinstall').locator('[data-cancel]').click();
    await dialog(page, 'reinstall').waitFor({ state: 'detached' });
    assert.equal(gitCommitCount(mayu.clusterDir), before, 'Cancel wrote nothing');

    const subjects = await sameAsCli('ui-r', 'cli-r', async () => {
      await page.locator('[data-action="reinstall"]').click();
      await dialog(page, 'reinstall').locator('[data-confirm]').click();
      await dialog(page, 'reinstall').waitFor({ state: 'detached' });
      await expectText(() => page.locator('[data-action-result]').textContent(), 'Done: reinstall requested (state configured).', 'result line');
    }, ['set', 'cli-r', 'state', 'configured']);
    assert.deepEqual(subjects, ['S: updated host state']);
    await expectText(() => page.locator('[data-host-page="ui-r"] [data-field="state"]').textContent(), 'configured', 'host page state, live');
    assert.equal((await hostOf(mayu, 'ui-r')).KeepDiskData, true);
  });

  it('change profile: the full profile\'s 409 shown in the dialog, nothing written; "Move anyway (force)" makes the commits of `mayuctl set S profile core --force`', async () => {
    await openHost('ui-p');
    const subjects = await sameAsCli('ui-p', 'cli-p', async () => {
      await page.locator('#action-profile').fill('core');
      await page.locator('[data-action="profile"]').click();
      const d = dialog(page, 'profile');
      assert.equal(await d.locator('[data-command]').textContent(), 'mayuctl set ui-p profile core');
      const before = gitCommitCount(mayu.clusterDir);
      await d.locator('[data-confirm]').click();
      await expectText(() => d.locator('[data-action-error]').textContent(), 'mayu refused it (409: profile "core" is full: quantity 3, held by 3 hosts; force to exceed it)', '409 in the dialog');
      assert.equal(gitCommitCount(mayu.clusterDir), before, 'the refused change wrote nothing');
      assert.equal(await d.locator('[data-retry]').getAttribute('title'), 'Same as: mayuctl set ui-p profile core --force');
      await d.locator('[data-retry]').click();
      await d.waitFor({ state: 'detached' });
      await expectText(() => page.locator('[data-action-result]').textContent(), 'Done: profile set to core.', 'result line');
    }, ['set', 'cli-p', 'profile', 'core', '--force']);
    assert.deepEqual(subjects, ['S: updated host profile to core']);
    assert.equal((await hostOf(mayu, 'ui-p')).Profile, 'core');
  });

  it('change profile to an unknown one: mayu\'s 400 listing the profiles, nothing written', async () => {
    await openHost('ui-m');
    const before = gitCommitCount(mayu.clusterDir);
    await page.locator('#action-profile').fill('nosuch');
    await page.locator('[data-action="profile"]').click();
    const d = dialog(page, 'profile');
    await d.locator('[data-confirm]').click();
    await expectText(() => d.locator('[data-action-error]').textContent(), 'mayu refused it (400: unknown profile "nosuch" (known: core, default))', '400 in the dialog');
    assert.equal(await d.locator('[data-retry]').count(), 0, 'force is offered only for a full profile');
    await d.locator('[data-cancel]').click();
    assert.equal(gitCommitCount(mayu.clusterDir), before);
  });

  it('set metadata: invalid metadata refused with mayu\'s message; valid, the commits of `mayuctl set S metadata ...`', async () => {
    await openHost('ui-m');
    const before = gitCommitCount(mayu.clusterDir);
    await page.locator('#action-metadata').fill('not-a-pair');
    await page.locator('[data-action="metadata"]').click();
    const d = dialog(page, 'metadata');
    await d.locator('[data-confirm]').click();
    await expectText(() => d.locator('[data-action-error]').textContent(), /^mayu refused it \(400: invalid metadata "not-a-pair": expected key=value\)$/, '400 in the dialog');
    await d.locator('[data-cancel]').click();
    assert.equal(gitCommitCount(mayu.clusterDir), before);

    const subjects = await sameAsCli('ui-m', 'cli-m', async () => {
      await page.locator('#action-metadata').fill('role=storage,rack=r7');
      await page.locator('[data-action="metadata"]').click();
      assert.equal(await d.locator('[data-command]').textContent(), 'mayuctl set ui-m metadata role=storage,rack=r7');
      await d.locator('[data-confirm]').click();
      await d.waitFor({ state: 'detached' });
      await expectText(() => page.locator('[data-action-result]').textContent(), 'Done: metadata set.', 'result line');
    }, ['set', 'cli-m', 'metadata', 'role=storage,rack=r7']);
    assert.deepEqual(subjects, ['S: updated host metadata']);
    assert.deepEqual((await hostOf(mayu, 'ui-m')).FleetMetadata, ['role=storage', 'rack=r7']);
  });

  it('delete: confirmed only once the serial is typed; the commit of `mayuctl delete S`; back on the list without the row', async () => {
    await openHost('ui-d');
    const subjects = await sameAsCli('ui-d', 'cli-d', async () => {
      await page.locator('[data-action="delete"]').click();
      const d = dialog(page, 'delete');
      assert.equal(await d.locator('[data-command]').textContent(), 'mayuctl delete ui-d');
      assert.equal(await d.locator('[data-confirm]').isDisabled(), true, 'not before the serial is typed');
      await d.locator('#confirm-typed').fill('ui-');
      assert.equal(await d.locator('[data-confirm]').isDisabled(), true);
      await d.locator('#confirm-typed').fill('ui-d');
      await d.locator('[data-confirm]').click();
      await d.waitFor({ state: 'detached' });
      await page.waitForURL(/#\/$/);
      await expectText(async () => String(await row(page, 'ui-d').count()), '0', 'row gone');
    }, ['delete', 'cli-d']);
    assert.deepEqual(subjects, ['S: host deleted']);
    assert.equal((await fetch(`${mayu.url}/admin/host/ui-d`, { headers: auth })).status, 404);
    // The browser logs each 4xx this test provoked (the token prompt's 401, the 409 and the 400s); nothing else.
    assert.deepEqual(errors.filter((e) => !/^console: Failed to load resource: the server responded with a status of (400|401|409) /.test(e)), []);
  });
});

describe('dashboard: a stuck install (threshold 1 s)', () => {
  let mayu: MayuProcess;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;

  before(async () => {
    const workDir = await tempDir('mayu-dash-stuck-');
    const config = path.join(workDir, 'config.yaml');
    await writeFile(config, `${await readFile(path.join(FIXTURES, 'config.yaml'), 'utf8')}\nstuck_installs:\n  after_seconds: 1\n`);
    mayu = await startMayu({ workDir, config });
    await register(mayu, 'calm-1', 1);
    await fetch(`${mayu.url}/admin/host/calm-1/set_installed`, { method: 'PUT', headers: await reportAuth(mayu, 'calm-1') });
    browser = await launchChromium();
    page = await browser.context.newPage();
    await page.goto(`${mayu.url}/ui/`);
    await row(page, 'calm-1').waitFor();
    await page.locator('#live[data-live="on"]').waitFor();
  });
  after(async () => {
    await browser?.close();
    await mayu?.stop();
  });

  it('gets a badge live when its host is stuck, is found by "stuck only", and loses it when the install moves on', async () => {
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 7));
    await register(mayu, 'slow-1', 2);
    const badge = row(page, 'slow-1').locator('[data-stuck]');
    await expectText(() => badge.textContent(), /^stuck \d+s$/, 'stuck badge on the row');
    assert.equal(await badge.getAttribute('data-stuck'), 'installing');
    assert.match((await badge.getAttribute('title'))!, /^in installing since \d{4}-.* UTC \(from unknown\)$/);
    assert.equal(await row(page, 'calm-1').locator('[data-stuck]').count(), 0);

    await page.locator('#filter-stuck').check();
    assert.deepEqual(await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-serial'))), ['slow-1']);
    assert.equal(await page.locator('label[for="filter-stuck"]').textContent(), 'stuck only (1)');
    await page.locator('#filter-stuck').uncheck();

    await row(page, 'slow-1').locator('a').click();
    await expectText(() => page.locator('[data-host-page="slow-1"] [data-field="stuck"]').textContent(), /^stuck \d+s in installing since /, 'host page');
    await page.locator('a[href="#/"]').first().click();

    assert.equal((await fetch(`${mayu.url}/admin/host/slow-1/set_installed`, { method: 'PUT', headers: await reportAuth(mayu, 'slow-1') })).status, 202);
    await expectText(async () => String(await row(page, 'slow-1').locator('[data-stuck]').count()), '0', 'badge gone');
    await expectText(() => page.locator('label[for="filter-stuck"]').textContent(), 'stuck only (0)', 'count');
    assert.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 7, 'no reload');
  });
});
