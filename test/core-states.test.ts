import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HOST_STATES, type HostState } from '../src/core/host.ts';
import { assertTransition, canTransition, IllegalTransitionError } from '../src/core/states.ts';

// Every pair, against the lifecycle of the issue: configured → installing → installed → running,
// installed/running → configured, unknown → installing, any → unknown, same state = no-op.
const allowed = new Set([
  'unknown>installing', 'configured>installing', 'installing>installed', 'installed>running',
  'installed>configured', 'running>configured',
]);

describe('state machine', () => {
  for (const from of HOST_STATES) {
    for (const to of HOST_STATES) {
      const expected = from === to || to === 'unknown' || allowed.has(`${from}>${to}`);
      it(`${from} → ${to} is ${expected ? 'allowed' : 'rejected'}`, () => {
        assert.equal(canTransition(from as HostState, to as HostState), expected);
      });
    }
  }

  it('names both states when it rejects', () => {
    assert.throws(() => assertTransition('running', 'installing'), (err: unknown) =>
      err instanceof IllegalTransitionError && err.message === "illegal state transition from 'running' to 'installing'");
  });
});
