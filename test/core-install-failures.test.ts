import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newHost, type Host } from '../src/core/host.ts';
import {
  clearFailureOnStateChange, currentFailure, decodeFailureLog, INSTALL_FAILURES_FILE, installFailureSteps, KEPT_FAILURES,
  parseFailureReport,
} from '../src/core/install-failures.ts';

// The pure rules of install failures: what a report may hold, the bounded log, and which change
// clears a standing failure (the same commit as the state change, so no extra commit).

const at = (s: number) => new Date(Date.UTC(2025, 0, 1, 0, 0, s, 345));
const host = (state: Host['State']): Host => ({ ...newHost('h1'), State: state });

describe('install failure reports', () => {
  it('takes the three fields, trims the reason and drops empty details', () => {
    assert.deepEqual(parseFailureReport({ Stage: 'driver', Reason: ' no driver for 8086:1572 ', Details: '' }), { Stage: 'driver', Reason: 'no driver for 8086:1572' });
    assert.deepEqual(parseFailureReport({ Stage: 'other', Reason: 'x', Details: 'a\n\tb' }), { Stage: 'other', Reason: 'x', Details: 'a\n\tb' });
  });

  it('refuses what is not a report, naming the field', () => {
    const refuse = (raw: unknown, message: RegExp) => assert.throws(() => parseFailureReport(raw), message);
    refuse(null, /must be a JSON object/);
    refuse('disk', /must be a JSON object/);
    refuse({ Stage: 'DISK', Reason: 'x' }, /Stage must be one of/);
    refuse({ Stage: 'disk', Reason: 'a\u2028b' }, /Reason must be one line/);
    refuse({ Stage: 'disk', Reason: 'a\x85b' }, /Reason must be one line/);
    refuse({ Stage: 'disk', Reason: 'x', Details: 'a\rb' }, /Details: no control characters/);
    refuse({ Stage: 'disk', Reason: 'x', Extra: 1, More: 2 }, /unknown fields "Extra", "More"/);
    refuse({ Stage: 'disk', Reason: 'x'.repeat(201) }, /Reason: at most 200/);
  });
});

describe('the failure log', () => {
  it('keeps the newest KEPT_FAILURES, newest first, with whole-second times and the host state', () => {
    let text: string | undefined;
    for (let i = 0; i < KEPT_FAILURES + 3; i++) {
      const { steps, failure } = installFailureSteps(host('installing'), text, { Stage: 'disk', Reason: `r${i}` }, at(i));
      assert.equal(steps.length, 1);
      assert.equal(steps[0]!.message, `install failed (disk): r${i}`);
      assert.equal(failure.Time, `2025-01-01T00:00:${String(i).padStart(2, '0')}Z`);
      text = steps[0]!.files![INSTALL_FAILURES_FILE];
    }
    const log = decodeFailureLog(text);
    assert.equal(log.Failures.length, KEPT_FAILURES);
    assert.equal(log.Failures[0]!.Reason, `r${KEPT_FAILURES + 2}`);
    assert.equal(log.Failures[0]!.State, 'installing');
  });

  it('a damaged file reads as an empty log (never stops mayu)', () => {
    assert.deepEqual(decodeFailureLog('{not json'), { Failures: [] });
    assert.deepEqual(decodeFailureLog('{"Failures": [{"Stage": "nope"}]}'), { Failures: [] });
    assert.deepEqual(decodeFailureLog(undefined), { Failures: [] });
  });

  it('a state change clears the standing failure in that step; a return to the same state does not reopen it', () => {
    const failed = installFailureSteps(host('installing'), undefined, { Stage: 'disk', Reason: 'no disk' }, at(1)).steps[0]!.files![INSTALL_FAILURES_FILE];
    assert.ok(currentFailure(decodeFailureLog(failed), host('installing')));

    // No state change (metadata, a retried POST): untouched.
    const same = [{ message: 'updated host metadata', host: host('installing') }];
    assert.equal(clearFailureOnStateChange(same, host('installing'), failed, at(2)), same);

    // installing -> unknown (operator), cleared in that step.
    const steps = clearFailureOnStateChange([{ message: 'updated host state', host: host('unknown') }], host('installing'), failed, at(3));
    const cleared = decodeFailureLog(steps[0]!.files![INSTALL_FAILURES_FILE]);
    assert.equal(cleared.ClearedBy, 'updated host state');
    assert.equal(cleared.ClearedAt, '2025-01-01T00:00:03Z');
    assert.equal(cleared.Failures.length, 1, 'the log keeps it');
    // Back to installing by the next final-config POST: still cleared.
    assert.equal(currentFailure(cleared, host('installing')), undefined);
    // A new report opens it again.
    const again = installFailureSteps(host('installing'), steps[0]!.files![INSTALL_FAILURES_FILE], { Stage: 'image', Reason: 'x' }, at(4)).steps[0]!.files![INSTALL_FAILURES_FILE];
    assert.equal(currentFailure(decodeFailureLog(again), host('installing'))?.Stage, 'image');
  });

  it('only the first state-changing step of a change carries the clearing', () => {
    const failed = installFailureSteps(host('unknown'), undefined, { Stage: 'network', Reason: 'x' }, at(1)).steps[0]!.files![INSTALL_FAILURES_FILE];
    const steps = clearFailureOnStateChange([
      { message: 'collected host mac addresses', host: host('unknown') },
      { message: 'updated host state to installing', host: host('installing') },
    ], host('unknown'), failed, at(2));
    assert.equal(steps[0]!.files, undefined);
    assert.equal(decodeFailureLog(steps[1]!.files![INSTALL_FAILURES_FILE]).ClearedBy, 'updated host state to installing');
  });
});
