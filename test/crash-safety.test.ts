import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runCrashLoop } from './helpers/crash-loop.ts';

// kill -9 during a boot storm, restart on the same cluster directory, machines retry until done.
// Guarantees checked with the native git after every kill and at the end: every acknowledged
// change is in HEAD's conf.json and has its commit, git fsck --full is clean, the server starts
// every time without repair, no address is given twice, no profile exceeds its quantity.
// Full size (1000 machines, 20 kills): npm run bench:crash.

describe('crash safety', () => {
  it('loses no acknowledged change across 5 kill -9 during a 40-machine storm', { timeout: 60_000 }, async () => {
    // Machines power on over 2 s and pause a little between steps: answers arrive spread out
    // rather than as one burst of 40 (the store answers a burst in a few milliseconds), so all
    // 5 kills find a moment during the storm.
    const pace = { rampMs: 2000, afterMs: { 'ipxebootscript': 100, 'first-stage-script': 100, 'final-cloud-config': 100, 'install-image-head': 100, 'set_installed': 100 } };
    const result = await runCrashLoop({ machines: 40, kills: 5, concurrency: 16, pace, timeoutMs: 55_000 });
    assert.deepEqual(result.violations, [], `work dir kept for inspection: ${result.workDir}`);
    assert.equal(result.kills.length, 5, 'every kill happened during the storm');
    assert.equal(result.starts, 6, 'the server started after every kill');
    assert.equal(result.storm.failures.size, 0);
  });

  it('keeps every operator commit and hand edit, and survives git maintenance, across 5 kill -9 during a storm', { timeout: 90_000 }, async () => {
    // Slower machines than above: the operator's hand edits need finished hosts during the storm.
    const pace = { rampMs: 3000, afterMs: { 'ipxebootscript': 150, 'first-stage-script': 150, 'final-cloud-config': 150, 'install-image-head': 150, 'set_installed': 150 } };
    const result = await runCrashLoop({ machines: 40, kills: 5, concurrency: 16, pace, timeoutMs: 85_000, operator: { everyMs: 150, maintenance: true } });
    assert.deepEqual(result.violations, [], `work dir kept for inspection: ${result.workDir}`);
    assert.equal(result.kills.length, 5);
    assert.ok(result.operator!.commits >= 3, `operator commits: ${JSON.stringify(result.operator)}`);
    assert.ok(result.operator!.handEdits >= 3, `hand edits: ${JSON.stringify(result.operator)}`);
    assert.ok(result.operator!.maintenanceRuns >= 3, `maintenance runs: ${JSON.stringify(result.operator)}`);
  });
});
