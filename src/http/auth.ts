// Who may call which /admin route (README "Security"). Machine routes carry no credentials:
// iPXE and the installer cannot hold one before mayu renders it for them.
import type { RouterMiddleware } from '@koa/router';
import { secretsEqual } from '../core/tokens.ts';
import { HttpError } from './errors.ts';

export interface AccessPolicy {
  /** undefined: open mode, as in 0.11 (every /admin route answers anyone). */
  adminToken?: string;
  /** Accept set_installed / boot_complete without a report token (0.11 machines). */
  insecureReports: boolean;
  /** The report token of a known host; undefined for an unknown one. May throw for an invalid serial (400). */
  reportTokenOf(rawSerial: string): string | undefined;
  /** false on the plain-HTTP port when the admin API has a TLS port of its own. */
  adminApiHere: boolean;
  /** That TLS port, named in the refusal on the plain port. */
  adminApiPort?: number;
}

const CHALLENGE = 'Bearer realm="mayu"';

/** The token of an `Authorization: Bearer <token>` header; undefined when absent, null when malformed. */
export function bearerToken(header: string | undefined): string | undefined | null {
  if (header === undefined || header === '') return undefined;
  const m = /^Bearer +([\x21-\x7e]+) *$/i.exec(header);
  return m ? m[1]! : null;
}

/** Every /admin route but the two machine reports: admin token (when configured), admin port only. */
export function requireAdmin(policy: AccessPolicy): RouterMiddleware {
  return async (ctx, next) => {
    if (!policy.adminApiHere) {
      throw new HttpError(403, `the admin API is served over TLS only (port ${policy.adminApiPort}); this plain-HTTP port serves machines`);
    }
    if (policy.adminToken !== undefined) {
      const token = bearerToken(ctx.get('authorization'));
      if (token === undefined) throw new HttpError(401, 'admin API: authentication required: send "Authorization: Bearer <admin token>"', { 'WWW-Authenticate': CHALLENGE });
      if (token === null) throw new HttpError(401, 'admin API: malformed Authorization header: expected "Bearer <admin token>"', { 'WWW-Authenticate': `${CHALLENGE}, error="invalid_request"` });
      if (!secretsEqual(token, policy.adminToken)) throw new HttpError(401, 'admin API: wrong admin token', { 'WWW-Authenticate': `${CHALLENGE}, error="invalid_token"` });
    }
    await next();
  };
}

/**
 * set_installed and boot_complete: the host's report token or the admin token, also in open mode
 * (no admin token): a report is the one change a machine makes about itself, and a wrong token
 * means a machine reporting for another host. --insecure-reports takes a missing token (0.11
 * machines) but still refuses a wrong one.
 */
export function requireReporter(policy: AccessPolicy, route: string): RouterMiddleware {
  return async (ctx, next) => {
    const token = bearerToken(ctx.get('authorization'));
    if (token === undefined && policy.insecureReports) return next();
    if (token === undefined || token === null) {
      throw new HttpError(403, `${route}: send "Authorization: Bearer <report token>" (REPORT_TOKEN of this host's first-stage script or /etc/mayu-env)${policy.adminToken === undefined ? '' : ' or the admin token'}; mayu --insecure-reports accepts 0.11 machines without one`);
    }
    if (policy.adminToken !== undefined && secretsEqual(token, policy.adminToken)) return next();
    const expected = policy.reportTokenOf(ctx.params['serial'] ?? '');
    // Compared even for an unknown host, so the answer does not tell which serials exist.
    if (!secretsEqual(token, expected ?? '') || expected === undefined) {
      throw new HttpError(403, `${route}: the report token does not belong to host ${JSON.stringify((ctx.params['serial'] ?? '').slice(0, 140))} (a re-created host has a new one: netboot it again)`);
    }
    return next();
  };
}
