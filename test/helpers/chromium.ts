import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { tempDir } from './mayu-process.ts';

// Debian's headless Chromium driven by playwright-core, for the dashboard tests (as
// test/dashboard-browser.test.ts does it): a fresh profile per launch, errors collected.

const CHROMIUM = '/usr/bin/chromium';
// This machine's network is closed: without the background-networking flags Chromium keeps
// trying Google's hosts.
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export async function launchChromium(): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  const dir = await tempDir('mayu-chromium-');
  const context = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 60_000 });
  return { context, close: async () => { await context.close().catch(() => {}); await rm(dir, { recursive: true, force: true }); } };
}

/** Page errors and console errors, to assert there are none. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  return errors;
}

export async function expectText(get: () => Promise<string | null>, expected: string | RegExp, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  let last: string | null = null;
  for (;;) {
    last = await get().catch(() => null);
    if (typeof expected === 'string' ? last === expected : last !== null && expected.test(last)) return;
    if (Date.now() > deadline) assert.fail(`${what}: expected ${expected}, got ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
