// Secrets compared and derived without I/O: the admin bearer token and the per-host report
// token that binds set_installed / boot_complete to the machine mayu rendered the script for.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The report token of one host: HMAC-SHA256(server key, serial + "\n" + MachineID), lowercase
 * hex. MachineID is random per host creation, so a re-created host gets a new token, and the
 * token never has to be stored (conf.json keeps 0.11's exact format).
 */
export function reportToken(key: Uint8Array, serial: string, machineId: string): string {
  return createHmac('sha256', key).update(`${serial}\n${machineId}`).digest('hex');
}

/** Constant-time equality; hashing first makes the time independent of the lengths as well. */
export function secretsEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** What an admin token must look like: header-safe, long enough not to be guessed. */
export const ADMIN_TOKEN_RULE = 'at least 16 characters of visible ASCII (no spaces)';

export function adminTokenProblem(token: string): string | undefined {
  if (token.length < 16) return `too short (${token.length} characters): use ${ADMIN_TOKEN_RULE}`;
  if (!/^[\x21-\x7e]+$/.test(token)) return `contains spaces, control or non-ASCII characters: use ${ADMIN_TOKEN_RULE}`;
  return undefined;
}
