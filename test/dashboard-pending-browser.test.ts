import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { gitCommitCount, gitSubjects } from './helpers/git.ts';
import { FIXTURES, startMayu, tempDir, writeText, type MayuProcess } from './helpers/mayu-process.ts';

// The dashboard's list of machines waiting for admission (issue 17) in Debian's headless
// Chromium against the real mayu in `approve` mode: approve and reject, each after a
// confirmation, producing the same commits as mayuctl's verbs; a cancelled one writes nothing.

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

async function launch(): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  const dir = await tempDir('mayu-chromium-');
  const context = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 60_000 });
  return { context, close: async () => { await context.close().catch(() => {}); await rm(dir, { recursive: true, force: true }); } };
}

async function until(check: () => Promise<boolean> | boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('dashboard: machines waiting for admission', () => {
  let mayu: MayuProcess;
  let browser: Awaited<ReturnType<typeof launch>> | undefined;
  let page: Page;
  const errors: string[] = [];

  before(async () => {
    const dir = await tempDir('mayu-dash-pending-');
    const base = await readFile(path.join(FIXTURES, 'config.yaml'), 'utf8');
    mayu = await startMayu({ workDir: dir, config: await writeText(path.join(dir, 'config.yaml'), `${base}admission:\n  mode: approve\n`) });
    for (const s of ['wait-a', 'wait-b']) assert.equal((await fetch(`${mayu.url}/first-stage-script/${s}`)).status, 200);
    browser = await launch();
    page = await browser.context.newPage();
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  });
  after(async () => {
    await browser?.close();
    await mayu.stop();
  });

  const pendingRow = (serial: string) => page.locator(`tr[data-pending="${serial}"]`);

  it('lists them; approve asks first, then commits as mayuctl approve does and the host appears', async () => {
    await page.goto(`${mayu.url}/ui/`);
    await pendingRow('wait-b').waitFor();
    assert.equal(await pendingRow('wait-a').locator('[data-field="status"]').textContent(), 'pending');
    const start = gitCommitCount(mayu.clusterDir);
    await pendingRow('wait-a').locator('[data-action="approve"]').click();
    assert.match((await pendingRow('wait-a').locator('.confirm').textContent()) ?? '', /Approve wait-a\?/);
    assert.equal(gitCommitCount(mayu.clusterDir), start, 'nothing before the confirmation');
    await pendingRow('wait-a').locator('[data-confirm="approve"]').click();
    await pendingRow('wait-a').waitFor({ state: 'detached' });
    await page.locator('tr[data-serial="wait-a"]').waitFor();
    assert.deepEqual(gitSubjects(mayu.clusterDir).slice(start, start + 2), ['wait-a: approved (profile core)', 'wait-a: host created']);
  });

  it('reject asks first; cancel writes nothing, confirm writes one commit and shows it rejected', async () => {
    const start = gitCommitCount(mayu.clusterDir);
    await pendingRow('wait-b').locator('[data-action="reject"]').click();
    await pendingRow('wait-b').locator('[data-cancel]').click();
    await pendingRow('wait-b').locator('[data-action="reject"]').waitFor();
    assert.equal(gitCommitCount(mayu.clusterDir), start);
    await pendingRow('wait-b').locator('[data-action="reject"]').click();
    await pendingRow('wait-b').locator('[data-confirm="reject"]').click();
    await until(async () => (await pendingRow('wait-b').locator('[data-field="status"]').textContent().catch(() => '')) === 'rejected', 'wait-b rejected');
    assert.deepEqual(gitSubjects(mayu.clusterDir).slice(start), ['wait-b: rejected']);
    assert.equal(await pendingRow('wait-b').locator('[data-action="reject"]').count(), 0, 'no reject button for a rejected machine');
  });

  it('shows a machine that asks while the page is open, and the server\'s refusal of an action', async () => {
    assert.equal((await fetch(`${mayu.url}/first-stage-script/wait-c`)).status, 200);
    await pendingRow('wait-c').waitFor({ timeout: 10_000 });
    // Another operator rejects it meanwhile (it stays listed, the confirmation stays open): the page's rejection is refused with mayu's message.
    await pendingRow('wait-c').locator('[data-action="reject"]').click();
    assert.equal((await fetch(`${mayu.url}/admin/host/wait-c/reject`, { method: 'PUT' })).status, 202);
    const start = gitCommitCount(mayu.clusterDir);
    await pendingRow('wait-c').locator('[data-confirm="reject"]').click();
    await until(async () => /wait-c is rejected already/.test((await page.locator('#pending [role="alert"]').textContent().catch(() => '')) ?? ''), 'the refusal');
    assert.equal(gitCommitCount(mayu.clusterDir), start);
    assert.deepEqual(errors, []);
  });
});
