import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { expectText, launchChromium, watchErrors } from './helpers/chromium.ts';
import { hostData, macFor, reportAuth, startMayu, type MayuProcess } from './helpers/mayu-process.ts';

// The dashboard (GET /ui/) in Debian's headless Chromium, driven by playwright-core, against the
// real mayu: existing hosts and counts, a host registering and changing state while the page is
// open (no reload), the host page's audit trail with conf.json diffs, and the admin token prompt.

/** A machine's first contact (GET /first-stage-script) and, with `final`, its final config POST. */
async function register(mayu: MayuProcess, serial: string, i: number, final = true) {
  const first = await fetch(`${mayu.url}/first-stage-script/${serial}`);
  assert.equal(first.status, 200, await first.text());
  if (!final) return;
  const res = await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData(serial, macFor(i))) });
  assert.equal(res.status, 200, await res.text());
}

const row = (page: Page, serial: string) => page.locator(`tr[data-serial="${serial}"]`);
const stateCount = (page: Page, state: string) => page.locator(`[data-state-count="${state}"]`);
const profileCount = (page: Page, profile: string) => page.locator(`[data-profile-count="${profile}"]`);

describe('dashboard in a real browser (open admin API)', () => {
  let mayu: MayuProcess | undefined;
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
  let page: Page;
  let errors: string[];

  before(async () => {
    mayu = await startMayu();
    await register(mayu, 'dash-a', 1);
    await register(mayu, 'dash-b', 2, false);
    browser = await launchChromium();
    page = await browser.context.newPage();
    errors = watchErrors(page);
  });
  after(async () => {
    await browser?.close();
    await mayu?.stop();
  });

  it('lists the machines ordered by serial, with counts per state and profile as bars', async () => {
    const res = await page.goto(`${mayu!.url}/ui/`);
    assert.equal(res?.status(), 200);
    await row(page, 'dash-b').waitFor();
    assert.deepEqual(await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-serial'))), ['dash-a', 'dash-b']);
    const a = row(page, 'dash-a');
    assert.equal(await a.locator('[data-field="state"]').textContent(), 'installing');
    assert.equal(await a.locator('[data-field="macs"]').textContent(), macFor(1));
    assert.match((await a.locator('[data-field="ip"]').textContent())!, /^10\.0\.3\.\d+$/);
    assert.equal(await a.locator('[data-field="profile"]').textContent(), 'core');
    assert.equal(await a.locator('[data-field="lastboot"]').textContent(), 'never');
    assert.equal(await row(page, 'dash-b').locator('[data-field="state"]').textContent(), 'unknown');
    assert.equal(await stateCount(page, 'installing').textContent(), '1');
    assert.equal(await stateCount(page, 'unknown').textContent(), '1');
    assert.equal(await stateCount(page, 'running').textContent(), '0');
    assert.equal(await profileCount(page, 'core').textContent(), '2');
    // The picture: one bar per state, the non-zero ones drawn with a width.
    assert.equal(await page.locator('#by-state svg rect.bar').count(), 5);
    assert.ok(Number(await page.locator('#by-state svg rect.state-installing').getAttribute('width')) > 0);
    assert.equal(await page.locator('#by-state svg rect.state-running').getAttribute('width'), '0');
    await page.locator('#live[data-live="on"]').waitFor();
  });

  it('shows a host that registers while the page is open, and its state changes, without a reload', async () => {
    // Marks the document: a reload would lose it.
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
    await register(mayu!, 'dash-0c', 3, false);
    await expectText(() => row(page, 'dash-0c').locator('[data-field="state"]').textContent(), 'unknown', 'new host row');
    // Ordered by serial: dash-0c sorts before dash-a.
    assert.deepEqual(await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-serial'))), ['dash-0c', 'dash-a', 'dash-b']);
    await expectText(() => stateCount(page, 'unknown').textContent(), '2', 'unknown count');

    const posted = await fetch(`${mayu!.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData('dash-0c', macFor(3))) });
    assert.equal(posted.status, 200);
    await expectText(() => row(page, 'dash-0c').locator('[data-field="macs"]').textContent(), macFor(3), 'MACs after the final config');
    const installed = await fetch(`${mayu!.url}/admin/host/dash-a/set_installed`, { method: 'PUT', headers: await reportAuth(mayu!, 'dash-a') });
    assert.equal(installed.status, 202);
    await expectText(() => row(page, 'dash-a').locator('[data-field="state"]').textContent(), 'installed', 'dash-a state');
    await expectText(() => stateCount(page, 'installed').textContent(), '1', 'installed count');
    await expectText(() => stateCount(page, 'installing').textContent(), '1', 'installing count (dash-0c)');
    await expectText(() => stateCount(page, 'unknown').textContent(), '1', 'unknown count (dash-b)');
    assert.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 42, 'the page was not reloaded');
  });

  it('sorts by a column when its header is clicked', async () => {
    await page.locator('button[data-sort="state"]').click();
    assert.deepEqual(await page.locator('tbody tr [data-field="state"]').allTextContents(), ['unknown', 'installing', 'installed']);
    await page.locator('button[data-sort="state"]').click();
    assert.deepEqual(await page.locator('tbody tr [data-field="state"]').allTextContents(), ['installed', 'installing', 'unknown']);
    await page.locator('button[data-sort="serial"]').click();
  });

  it('opens the host page with its audit trail from git and the conf.json diff of each commit', async () => {
    await row(page, 'dash-a').locator('a').click();
    assert.match(page.url(), /#\/host\/dash-a$/);
    const items = page.locator('ol.history > li');
    await items.first().waitFor();
    const history = (await (await fetch(`${mayu!.url}/admin/host/dash-a/history`)).json()) as { commit: string; message: string }[];
    assert.equal(await items.count(), history.length);
    assert.deepEqual(await page.locator('ol.history .message').allTextContents(), history.map((c) => c.message));
    // Newest: set_installed, whose diff is the State line, old and new.
    const newest = page.locator(`li[data-commit="${history[0]!.commit}"]`);
    assert.equal(await newest.locator('.message').textContent(), 'dash-a: updated state to installed');
    assert.deepEqual(await newest.locator('.d-del').allTextContents(), ['-   "State": "installing",']);
    assert.deepEqual(await newest.locator('.d-add').allTextContents(), ['+   "State": "installed",']);
    assert.ok((await newest.locator('time').getAttribute('datetime'))!.startsWith(new Date().toISOString().slice(0, 4)));
    // The MAC collection commit adds the MAC.
    const macs = page.locator('li', { has: page.locator('.message', { hasText: 'collected host mac addresses' }) });
    assert.ok((await macs.locator('.d-add').allTextContents()).some((l) => l.includes(macFor(1))));

    // A change while the host page is open shows up in its trail.
    const boot = await fetch(`${mayu!.url}/admin/host/dash-a/boot_complete`, { method: 'PUT', headers: await reportAuth(mayu!, 'dash-a'), body: '{}' });
    assert.equal(boot.status, 202);
    await expectText(() => page.locator('ol.history .message').first().textContent(), 'dash-a: updated state to running', 'newest commit after boot_complete');
    await expectText(() => page.locator('[data-host-page] [data-field="state"]').textContent(), 'running', 'host page state');

    if (process.env.MAYU_DASHBOARD_SCREENSHOTS) await page.screenshot({ path: `${process.env.MAYU_DASHBOARD_SCREENSHOTS}/host.png`, fullPage: true });
    await page.locator('a[href="#/"]').first().click();
    await expectText(() => row(page, 'dash-a').locator('[data-field="state"]').textContent(), 'running', 'back on the table');
    assert.notEqual(await row(page, 'dash-a').locator('[data-field="lastboot"]').textContent(), 'never');
    if (process.env.MAYU_DASHBOARD_SCREENSHOTS) await page.screenshot({ path: `${process.env.MAYU_DASHBOARD_SCREENSHOTS}/overview.png`, fullPage: true });
    assert.deepEqual(errors, []);
  });

  it('drops a deleted host (event with deleted: true) from table and counts without a reload; an open host page says so', async () => {
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 43));
    await register(mayu!, 'dash-d', 4, false);
    await expectText(() => row(page, 'dash-d').locator('[data-field="state"]').textContent(), 'unknown', 'dash-d row');
    await expectText(() => stateCount(page, 'unknown').textContent(), '2', 'unknown count (dash-b, dash-d)');

    assert.equal((await fetch(`${mayu!.url}/admin/host/dash-b`, { method: 'DELETE' })).status, 204);
    await expectText(async () => String(await row(page, 'dash-b').count()), '0', 'dash-b row gone');
    await expectText(() => stateCount(page, 'unknown').textContent(), '1', 'unknown count after the deletion');
    assert.deepEqual(await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-serial'))), ['dash-0c', 'dash-a', 'dash-d']);

    await row(page, 'dash-d').locator('a').click();
    await page.locator('[data-host-page="dash-d"] ol.history > li').first().waitFor();
    assert.equal((await fetch(`${mayu!.url}/admin/host/dash-d`, { method: 'DELETE' })).status, 204);
    await page.locator('[data-deleted="dash-d"]').waitFor();
    await page.locator('a[href="#/"]').first().click();
    await expectText(() => stateCount(page, 'unknown').textContent(), '0', 'unknown count after both deletions');
    assert.equal(await row(page, 'dash-d').count(), 0);
    assert.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 43, 'the page was not reloaded');
    assert.deepEqual(errors, []);
  });

  it('marks a host whose installer reported a failure, live; the host page shows it; a state change clears it', async () => {
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 44));
    await register(mayu!, 'dash-f', 5);
    await expectText(() => row(page, 'dash-f').locator('[data-field="state"]').textContent(), 'installing', 'dash-f row');
    const auth = await reportAuth(mayu!, 'dash-f');
    const failed = await fetch(`${mayu!.url}/admin/host/dash-f/install_failed`, {
      method: 'PUT', headers: auth, body: JSON.stringify({ Stage: 'disk', Reason: 'no disk of at least 2 GB', Details: 'lsblk: sr0' }),
    });
    assert.equal(failed.status, 202);
    const badge = row(page, 'dash-f').locator('[data-install-failure]');
    await expectText(() => badge.textContent(), 'install failed: disk', 'badge on the row');
    assert.match((await badge.getAttribute('title'))!, /no disk of at least 2 GB/);
    assert.equal(await row(page, 'dash-0c').locator('[data-install-failure]').count(), 0, 'other rows have none');

    await row(page, 'dash-f').locator('a').click();
    const line = page.locator('[data-host-page="dash-f"] [data-field="install-failure"]');
    await expectText(() => line.textContent(), /install failed: disk.*\(state installing\): no disk of at least 2 GB.*lsblk: sr0/, 'host page line');
    await expectText(() => page.locator('ol.history .message').first().textContent(), 'dash-f: install failed (disk): no disk of at least 2 GB', 'the report in the trail');

    assert.equal((await fetch(`${mayu!.url}/admin/host/dash-f/set_installed`, { method: 'PUT', headers: auth })).status, 202);
    await expectText(() => line.textContent(), /no disk of at least 2 GB \(cleared by: updated state to installed\)/, 'cleared on the host page');
    await page.locator('a[href="#/"]').first().click();
    await expectText(() => row(page, 'dash-f').locator('[data-field="state"]').textContent(), 'installed', 'dash-f installed');
    assert.equal(await row(page, 'dash-f').locator('[data-install-failure]').count(), 0, 'badge gone');
    assert.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 44, 'the page was not reloaded');
    assert.deepEqual(errors, []);
  });
});

describe('dashboard with an admin token', () => {
  const ADMIN = 'dashboard-admin-token-0123456789';
  let mayu: MayuProcess | undefined;
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
  let page: Page;

  before(async () => {
    mayu = await startMayu({ env: { MAYU_ADMIN_TOKEN: ADMIN } });
    await register(mayu, 'tok-1', 1);
    browser = await launchChromium();
    page = await browser.context.newPage();
  });
  after(async () => {
    await browser?.close();
    await mayu?.stop();
  });

  it('serves the page itself without the token, and the page asks for it', async () => {
    const res = await page.goto(`${mayu!.url}/ui/`);
    assert.equal(res?.status(), 200);
    await page.locator('form.token-form').waitFor();
    assert.match((await page.locator('#token-message').textContent())!, /admin token/);
    assert.equal(await row(page, 'tok-1').count(), 0);
  });

  it('refuses a wrong token, then works with the right one, live stream included', async () => {
    await page.locator('#token').fill('not-the-admin-token-at-all');
    await page.locator('form.token-form button[type="submit"]').click();
    await expectText(() => page.locator('#token-message').textContent(), 'That admin token was refused.', 'wrong token message');

    await page.locator('#token').fill(ADMIN);
    await page.locator('form.token-form button[type="submit"]').click();
    await expectText(() => row(page, 'tok-1').locator('[data-field="state"]').textContent(), 'installing', 'row with the token');
    // The event stream needs the token too (fetch streaming sends it as a header).
    await page.locator('#live[data-live="on"]').waitFor();
    await register(mayu!, 'tok-2', 2, false);
    await expectText(() => row(page, 'tok-2').locator('[data-field="state"]').textContent(), 'unknown', 'live row with the token');
    // Kept for this tab only: sessionStorage, not localStorage or a cookie.
    assert.equal(await page.evaluate(() => sessionStorage.getItem('mayu.adminToken')), ADMIN);
    assert.equal(await page.evaluate(() => localStorage.length + document.cookie.length), 0);
  });

  it('asks again after "forget token"', async () => {
    await page.locator('#forget').click();
    await page.locator('form.token-form').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('mayu.adminToken')), null);
  });
});
