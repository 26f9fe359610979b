import type { HostState } from './host.ts';

// The lifecycle: configured → installing → installed → running, reinstall back to configured,
// and unknown as the escape hatch from anywhere. Same-state changes are no-ops (retries).
const ALLOWED: Record<HostState, readonly HostState[]> = {
  unknown: ['installing'],
  configured: ['installing'],
  installing: ['installed'],
  installed: ['running', 'configured'],
  running: ['configured'],
};

export class IllegalTransitionError extends Error {
  constructor(readonly from: HostState, readonly to: HostState) {
    super(`illegal state transition from '${from}' to '${to}'`);
  }
}

export function canTransition(from: HostState, to: HostState): boolean {
  return from === to || to === 'unknown' || ALLOWED[from].includes(to);
}

export function assertTransition(from: HostState, to: HostState): void {
  if (!canTransition(from, to)) throw new IllegalTransitionError(from, to);
}
