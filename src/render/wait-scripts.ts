import type { AdmissionStatus } from '../core/admission.ts';
import { escapeIpxe, escapeShell } from './escape.ts';

// What a machine that is not admitted (issue 17) is answered: not an error page, a script that
// waits and asks again, so a booting machine loops until an operator admits it. Serials are
// already normalized (a safe alphabet); values are escaped all the same.

/** A rejected machine asks again this many times less often (an operator may still approve it). */
const REJECTED_FACTOR = 10;

function reason(status: AdmissionStatus): string {
  if (status === 'rejected') return 'was rejected by an operator';
  if (status === 'discovered') return 'is not in the inventory (listed as discovered: mayuctl pending)';
  return 'waits for an operator to approve it (mayuctl pending)';
}

/** `/ipxebootscript?serial=...`: sleep, then the same request again. */
export function ipxeWaitScript(mayuUrl: string, serial: string, status: AdmissionStatus, retrySeconds: number): string {
  const seconds = status === 'rejected' ? retrySeconds * REJECTED_FACTOR : retrySeconds;
  return [
    '#!ipxe',
    `echo mayu: ${escapeIpxe(serial)} ${reason(status)}, asking again in ${seconds} s`,
    `sleep ${seconds}`,
    `chain ${escapeIpxe(mayuUrl)}/ipxebootscript?serial=\${serial:uristring}&mac=\${mac:hexhyp}&uuid=\${uuid}`,
    '',
  ].join('\n');
}

/**
 * `/first-stage-script/<serial>`: sleeps (with jitter), fetches the first-stage script again
 * and runs it in its place (exec: no nesting), until the answer is the real installer script.
 * A rejected machine stops with one ERROR line: the installer powers off.
 */
export function firstStageWaitScript(mayuUrl: string, serial: string, status: AdmissionStatus, retrySeconds: number): string {
  if (status === 'rejected') {
    return [
      '#!/bin/sh',
      `echo 'mayu-installer: ERROR: ${escapeShell(serial)} ${escapeShell(reason(status))}; not installing'`,
      'exit 1',
      '',
    ].join('\n');
  }
  return [
    '#!/bin/sh',
    '# mayu: this machine is not admitted yet; wait, then ask again for the first-stage script.',
    `URL='${escapeShell(mayuUrl)}/first-stage-script/${escapeShell(serial)}'`,
    `WAIT=${retrySeconds}`,
    `echo 'mayu-installer: ${escapeShell(serial)} ${escapeShell(reason(status))}'`,
    'while :; do',
    '  pause=$((WAIT + $(od -An -N1 -tu1 /dev/urandom 2>/dev/null || echo 0) % (WAIT / 2 + 1)))',
    '  echo "mayu-installer: asking mayu again in ${pause} s"',
    '  sleep "$pause"',
    '  if timeout 15 wget -q -O /tmp/first-stage.next "$URL" && [ -s /tmp/first-stage.next ]; then',
    '    mv /tmp/first-stage.next /tmp/first-stage.sh',
    '    exec sh /tmp/first-stage.sh',
    '  fi',
    'done',
    '',
  ].join('\n');
}
