import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { seedRepo } from '../bench/seed-repo.ts';
import { HOST_STATES } from '../src/core/host.ts';
import { expectText, launchChromium, watchErrors } from './helpers/chromium.ts';
import { FIXTURES, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';

// The dashboard with 10 000 hosts in Chromium: one page of 100 rows at a time, paging, search by
// serial, filters by state and profile, a live host found by the search; the render times are
// measured in the page and printed as test diagnostics (README "Dashboard").

const HOSTS = 10_000;
const PROFILES = ['rack-a', 'rack-b', 'default'];
const serialOf = (i: number) => `node-${String(i).padStart(5, '0')}`;
const stateOf = (i: number) => HOST_STATES[i % 5]!;
const profileOf = (i: number) => PROFILES[i % 3]!;

const serials = (page: Page) => page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-serial')));

/** Runs `act` in the page and returns how long the table's synchronous redraw took (ms). */
async function drawMs(page: Page): Promise<number> {
  return Number(await page.locator('.host-table').getAttribute('data-draw-ms'));
}

describe(`dashboard with ${HOSTS} hosts`, () => {
  let mayu: MayuProcess;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;
  let errors: string[];

  before(async () => {
    const workDir = await tempDir('mayu-dash-10k-');
    const fixture = await readFile(path.join(FIXTURES, 'config.yaml'), 'utf8');
    const config = path.join(workDir, 'config.yaml');
    // A /16 so 10 000 hosts fit; two profiles of 5000 and default.
    await writeFile(config, fixture
      .replace(/subnet_size: \d+\n/, '')
      .replace(/ip_range: .*\n/, 'ip_range: {start: 10.0.8.1, end: 10.0.255.254}\n  subnet_size: 16\n')
      .replace(/profiles:[\s\S]*?(?=templates_env:)/, 'profiles:\n  - name: rack-a\n    quantity: 5000\n  - name: rack-b\n    quantity: 5000\n  - name: default\n'));
    await seedRepo(path.join(workDir, 'clusters'), HOSTS, {
      ipRange: { start: '10.0.8.1', end: '10.0.255.254' },
      serial: serialOf,
      edit: (h, i) => ((h.State = stateOf(i)), (h.Profile = profileOf(i))),
    });
    mayu = await startMayu({ workDir, config });
    browser = await launchChromium();
    page = await browser.context.newPage();
    errors = watchErrors(page);
  });
  after(async () => {
    await browser?.close();
    await mayu?.stop();
  });

  it('shows the first 100 rows of 10 000, with the counts of all, and pages through them', async (t) => {
    await page.goto(`${mayu.url}/ui/`);
    await page.locator('tbody tr[data-serial]').first().waitFor({ timeout: 60_000 });
    // From navigation start (the page's time origin) to the first page of rows on screen.
    const loadMs = await page.evaluate(() => performance.now());
    const list = await page.evaluate(() => {
      const e = performance.getEntriesByType('resource').find((r) => r.name.endsWith('/admin/hosts')) as PerformanceResourceTiming | undefined;
      return e && { ms: Math.round(e.duration), bytes: e.encodedBodySize, start: Math.round(e.startTime) };
    });
    t.diagnostic(`load: navigation to the first 100 rows of ${HOSTS} hosts: ${Math.round(loadMs)} ms (GET /admin/hosts from ${list?.start} ms: ${list?.ms} ms, ${list?.bytes} bytes); table draw ${await drawMs(page)} ms`);
    assert.equal(await page.locator('tbody tr').count(), 100);
    assert.deepEqual((await serials(page)).slice(0, 3), ['node-00000', 'node-00001', 'node-00002']);
    assert.equal(await page.locator('#table-summary').textContent(), `1–100 of ${HOSTS}`);
    assert.equal(await page.locator('#page-label').textContent(), 'page 1 of 100');
    assert.equal(await page.locator('[data-state-count="installing"]').textContent(), '2000');
    assert.equal(await page.locator('[data-profile-count="rack-b"]').textContent(), '3333');
    assert.equal(await page.locator('#page-prev').isDisabled(), true);

    await page.locator('#page-next').click();
    assert.deepEqual((await serials(page)).slice(0, 1), ['node-00100']);
    assert.equal(await page.locator('#table-summary').textContent(), `101–200 of ${HOSTS}`);
    await page.locator('#page-last').click();
    const last = await serials(page);
    assert.deepEqual([last[0], last.at(-1), last.length], ['node-09900', 'node-09999', 100]);
    assert.equal(await page.locator('#page-next').isDisabled(), true);
    // Sorting sorts all 10 000, not the page: descending by serial starts at the last host.
    await page.locator('#page-first').click();
    await page.locator('button[data-sort="serial"]').click();
    assert.deepEqual((await serials(page)).slice(0, 2), ['node-09999', 'node-09998']);
    t.diagnostic(`sort ${HOSTS} hosts by serial and draw a page: ${await drawMs(page)} ms`);
    await page.locator('button[data-sort="serial"]').click();
  });

  it('searches by serial and filters by state and profile over all 10 000 hosts', async (t) => {
    await page.locator('#host-search').fill('node-0123');
    assert.deepEqual(await serials(page), Array.from({ length: 10 }, (_, k) => serialOf(1230 + k)));
    assert.equal(await page.locator('#table-summary').textContent(), `1–10 of 10 (filtered from ${HOSTS})`);
    assert.equal(await page.locator('.pager').isHidden(), true, 'one page: no pager');
    t.diagnostic(`search over ${HOSTS} hosts: ${await drawMs(page)} ms`);
    await page.locator('#host-search').fill('NODE-0999'); // case does not matter
    assert.equal((await serials(page)).length, 10);
    await page.locator('#host-search').fill('');

    await page.locator('#filter-state').selectOption('installing');
    assert.equal(await page.locator('#table-summary').textContent(), `1–100 of 2000 (filtered from ${HOSTS})`);
    await page.locator('#filter-profile').selectOption('rack-b');
    // installing (i % 5 == 2) and rack-b (i % 3 == 1): i % 15 == 7.
    const want = Array.from({ length: HOSTS }, (_, i) => i).filter((i) => i % 15 === 7);
    assert.equal(await page.locator('#table-summary').textContent(), `1–100 of ${want.length} (filtered from ${HOSTS})`);
    assert.deepEqual((await serials(page)).slice(0, 3), want.slice(0, 3).map(serialOf));
    for (const s of await page.locator('tbody [data-field="state"]').allTextContents()) assert.equal(s, 'installing');
    for (const p of await page.locator('tbody [data-field="profile"]').allTextContents()) assert.equal(p, 'rack-b');
    await page.locator('#page-last').click();
    assert.equal((await serials(page)).at(-1), serialOf(want.at(-1)!));
    t.diagnostic(`filter by state and profile: ${await drawMs(page)} ms`);

    await page.locator('#host-search').fill('zzz');
    assert.equal(await page.locator('tbody td.muted').textContent(), 'No machine matches the search and filters.');
    await page.locator('#host-search').fill('');
    await page.locator('#filter-state').selectOption('');
    await page.locator('#filter-profile').selectOption('');
    assert.equal(await page.locator('#table-summary').textContent(), `1–100 of ${HOSTS}`);
  });

  it('keeps the search while live changes arrive: a new machine that matches appears without a reload', async (t) => {
    await page.locator('#live[data-live="on"]').waitFor();
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 3));
    await page.locator('#host-search').fill('late-');
    assert.equal(await page.locator('tbody tr[data-serial]').count(), 0);
    const started = Date.now();
    assert.equal((await fetch(`${mayu.url}/first-stage-script/late-1`)).status, 200);
    await expectText(() => page.locator('tr[data-serial="late-1"] [data-field="state"]').textContent(), 'unknown', 'live row under the search');
    t.diagnostic(`registration to its row on screen, ${HOSTS + 1} hosts: ${Date.now() - started} ms`);
    assert.equal(await page.locator('#host-search').inputValue(), 'late-', 'the search box kept its text');
    assert.equal(await page.locator('#table-summary').textContent(), `1–1 of 1 (filtered from ${HOSTS + 1})`);
    assert.equal(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 3, 'no reload');
    assert.deepEqual(errors, []);
  });
});
