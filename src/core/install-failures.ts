// Install failures an installer reports (PUT /admin/host/<serial>/install_failed). They are kept
// in `<serial>/install-failures.json` beside conf.json, never in it: conf.json stays 0.11's exact
// format. Each report is its own commit; a later state change of the host clears the failure (in
// the same commit as the state change), so views show only a failure that still stands while the
// file keeps the newest few for the record. Pure: the caller passes the clock and the host.
import { z } from 'zod';
import type { Host, HostState } from './host.ts';
import type { Step } from './host-changes.ts';

export const INSTALL_FAILURES_FILE = 'install-failures.json';
export const FAILURE_STAGES = ['driver', 'network', 'disk', 'image', 'config', 'report', 'other'] as const;
export type FailureStage = (typeof FAILURE_STAGES)[number];
/** Reports kept per host, newest first; older ones stay in git history. */
export const KEPT_FAILURES = 10;
export const REASON_LIMIT = 200;
export const DETAILS_LIMIT = 4096;
/** Request body limit of the report route: the fields' limits in JSON with escapes, with room. */
export const REPORT_BODY_LIMIT = 16 * 1024;

/** What the installer sends. */
export interface InstallFailureReport {
  Stage: FailureStage;
  Reason: string;
  Details?: string;
}

/** One stored failure: the report, when mayu recorded it and the host's state then. */
export interface InstallFailure extends InstallFailureReport {
  Time: string;
  State: HostState;
}

/** The file's content. `Cleared*` are set once a state change superseded the newest failure. */
export interface InstallFailureLog {
  Failures: InstallFailure[];
  ClearedAt?: string;
  /** The commit message (without serial) of the change that cleared it. */
  ClearedBy?: string;
}

/** A report the route refuses (400), nothing written. */
export class InstallFailureReportError extends Error {}

// C0, DEL, C1 and the Unicode line separators: the reason becomes a commit message subject.
const NOT_ONE_LINE = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/;
// Details may be several lines (lspci output): tabs and newlines pass, other controls do not.
const NOT_TEXT = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]/;

const reportSchema = z.strictObject({
  Stage: z.enum(FAILURE_STAGES, { error: `Stage must be one of ${FAILURE_STAGES.join(', ')}` }),
  Reason: z.string({ error: 'Reason must be a string' })
    .refine((s) => s.trim() !== '', 'Reason must not be empty')
    .refine((s) => s.length <= REASON_LIMIT, `Reason: at most ${REASON_LIMIT} characters`)
    .refine((s) => !NOT_ONE_LINE.test(s), 'Reason must be one line without control characters'),
  Details: z.string({ error: 'Details must be a string' })
    .refine((s) => s.length <= DETAILS_LIMIT, `Details: at most ${DETAILS_LIMIT} characters`)
    .refine((s) => !NOT_TEXT.test(s), 'Details: no control characters but newline and tab')
    .optional(),
}, { error: (issue) => (issue.code === 'unrecognized_keys' ? `unknown field${issue.keys.length === 1 ? '' : 's'} ${issue.keys.map((k) => JSON.stringify(k.slice(0, 40))).join(', ')} (known: Stage, Reason, Details)` : undefined) });

/** Checks a parsed JSON body; throws InstallFailureReportError naming the first problem. */
export function parseFailureReport(raw: unknown): InstallFailureReport {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new InstallFailureReportError('install failure report must be a JSON object {"Stage", "Reason", "Details"}');
  }
  const parsed = reportSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.length > 0 && !issue.message.startsWith(String(issue.path[0])) ? `${String(issue.path[0])}: ` : '';
    throw new InstallFailureReportError(`invalid install failure report: ${field}${issue.message}`);
  }
  const { Stage, Reason, Details } = parsed.data;
  return { Stage, Reason: Reason.trim(), ...(Details ? { Details } : {}) };
}

const storedSchema = z.object({
  Failures: z.array(z.object({
    Time: z.string(), Stage: z.enum(FAILURE_STAGES), Reason: z.string(), Details: z.string().optional(),
    State: z.enum(['unknown', 'configured', 'installing', 'installed', 'running']),
  })),
  ClearedAt: z.string().optional(),
  ClearedBy: z.string().optional(),
});

/**
 * The stored file's content; a missing or unreadable file is an empty log, so a damaged file
 * never stops mayu (the next report writes a good one; git has the damaged one).
 */
export function decodeFailureLog(text: string | undefined): InstallFailureLog {
  if (text === undefined) return { Failures: [] };
  try {
    const parsed = storedSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : { Failures: [] };
  } catch {
    return { Failures: [] };
  }
}

/** Stable key order, 2-space indent, no trailing newline (as conf.json). */
export function encodeFailureLog(log: InstallFailureLog): string {
  const failures = log.Failures.map((f) => ({
    Time: f.Time, Stage: f.Stage, Reason: f.Reason, ...(f.Details ? { Details: f.Details } : {}), State: f.State,
  }));
  return JSON.stringify({
    Failures: failures,
    ...(log.ClearedAt === undefined ? {} : { ClearedAt: log.ClearedAt, ClearedBy: log.ClearedBy ?? '' }),
  }, null, 2);
}

/** RFC 3339 in UTC to the second, as git's commit times. */
function wholeSeconds(now: Date): string {
  return new Date(Math.floor(now.getTime() / 1000) * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

/** Commit message (without the serial) of a report. */
export function failureMessage(report: InstallFailureReport): string {
  return `install failed (${report.Stage}): ${report.Reason}`;
}

/**
 * The report as one commit: the host is unchanged (conf.json keeps its bytes, its state
 * stays), only install-failures.json changes. A new report opens the log again.
 */
export function installFailureSteps(host: Host, logText: string | undefined, report: InstallFailureReport, now: Date): { steps: Step[]; failure: InstallFailure } {
  const failure: InstallFailure = { Time: wholeSeconds(now), ...report, State: host.State };
  const log = decodeFailureLog(logText);
  const next: InstallFailureLog = { Failures: [failure, ...log.Failures].slice(0, KEPT_FAILURES) };
  return { steps: [{ message: failureMessage(report), host, files: { [INSTALL_FAILURES_FILE]: encodeFailureLog(next) } }], failure };
}

/**
 * The failure that still stands: the newest, unless a state change cleared it. The state check
 * covers a store without atomic multi-file commits (--no-git) that a crash cut in half.
 */
export function currentFailure(log: InstallFailureLog, host: Readonly<Host>): InstallFailure | undefined {
  const newest = log.Failures[0];
  return newest && log.ClearedAt === undefined && newest.State === host.State ? newest : undefined;
}

/**
 * Steps of any other change: the first one that changes the host's state also clears a
 * standing failure, in the same commit (no extra commit, same message). Unchanged otherwise.
 */
export function clearFailureOnStateChange(steps: Step[], before: Readonly<Host> | undefined, logText: string | undefined, now: Date): Step[] {
  if (!before || logText === undefined) return steps;
  const log = decodeFailureLog(logText);
  if (!currentFailure(log, before)) return steps;
  let state = before.State;
  const at = steps.findIndex((s) => {
    const changed = s.host.State !== state;
    state = s.host.State;
    return changed;
  });
  if (at < 0) return steps;
  const step = steps[at]!;
  const cleared = encodeFailureLog({ ...log, ClearedAt: wholeSeconds(now), ClearedBy: step.message });
  return steps.map((s, i) => (i === at ? { ...s, files: { ...s.files, [INSTALL_FAILURES_FILE]: cleared } } : s));
}
