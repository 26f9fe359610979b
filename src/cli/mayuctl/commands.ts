// The mayuctl commands, independent of argument parsing: each one talks to mayu through a
// MayuClient, writes through the given Output and throws on failure (errorText() renders it).

import { readFile } from 'node:fs/promises';
import type { TimeZone } from '../../core/tzif.ts';
import { decodeHost, HostDecodeError, type Host } from '../../core/host.ts';
import { BadAnswerError, HttpStatusError, type MayuClient } from './client.ts';
import { parseEnvFile } from './env-file.ts';
import { formatHistory, formatList, formatPowerHook, formatStatus, parseFields, type HistoryEntry, type StatusFailure } from './format.ts';
import { bootCompleteRequest, overrideRequest, setRequest } from './request-body.ts';
import { printStuck } from './stuck-list.ts';
import { packageVersion } from './version.ts';

export interface Output {
  /** Writes text plus a newline to stdout. */
  out(text: string): void;
  /** Writes text plus a newline to stderr. */
  err(text: string): void;
  /** Clears the terminal before a reprint (list --watch); absent when stdout is not a terminal. */
  clear?(): void;
  /** Writes text to stdout as it is (no newline added); absent: out() is used. */
  raw?(text: string): void;
}

export interface CommandContext extends Output {
  client: MayuClient;
  /** time.Local as 0.11's mayuctl (Go) had it: LastBoot is printed with its zone names. */
  zone: TimeZone;
}

/** A failure whose message is the whole story (no status line to add). */
export class CliError extends Error {}

const pretty = (value: unknown): string => JSON.stringify(value, null, 2);

export function decodeHosts(raw: readonly unknown[]): Host[] {
  return raw.map((item, i) => {
    try {
      return decodeHost(item);
    } catch (err) {
      if (err instanceof HostDecodeError) throw new BadAnswerError(`host #${i} in /admin/hosts: ${err.message}`);
      throw err;
    }
  });
}

export interface ListArgs {
  fields: string;
  legend: boolean;
  json: boolean;
  /** Reprint after every host change (until the stream ends or is interrupted). */
  watch?: boolean;
  /** Only hosts stuck in installing / configured, with since when and for how long (stuck-list.ts). */
  stuck?: boolean;
}

export async function listCommand(ctx: CommandContext, args: ListArgs): Promise<void> {
  // Fields are checked before any request, as 0.11 did.
  const fields = args.json ? [] : parseFields(args.fields);
  const print = async () => {
    if (args.stuck) return printStuck(ctx, { fields, legend: args.legend, json: args.json });
    const raw = await ctx.client.listHosts();
    if (args.json) {
      ctx.out(pretty(raw));
      return;
    }
    const table = formatList(decodeHosts(raw), { fields, legend: args.legend });
    // 0.11 printed an empty line for an empty table; nothing is kinder to `| wc -l`.
    if (table !== '') ctx.out(table);
  };
  if (!args.watch) return print();
  // Subscribe first, then print: a change between the two still causes a reprint.
  let reprints = Promise.resolve();
  let failed: unknown;
  const reprint = () => {
    reprints = reprints.then(async () => {
      if (ctx.clear) ctx.clear();
      else ctx.out('');
      await print();
    }).catch((err) => {
      failed ??= err;
    });
  };
  const stream = ctx.client.streamEvents(() => reprint());
  await print();
  await stream;
  await reprints;
  if (failed) throw failed;
}

/**
 * One line per event: `serial: from -> to [commit] message; message` (`new` for a created host,
 * `deleted` as the target of a deletion).
 */
export function formatEvent(data: string): string {
  const e = JSON.parse(data) as { serial?: unknown; from?: unknown; to?: unknown; commit?: unknown; messages?: unknown; deleted?: unknown };
  const commit = typeof e.commit === 'string' ? ` [${e.commit.slice(0, 12)}]` : '';
  const messages = Array.isArray(e.messages) ? e.messages.join('; ') : '';
  const to = e.deleted === true || e.to === null ? 'deleted' : String(e.to);
  return `${String(e.serial)}: ${e.from === null || e.from === undefined ? 'new' : String(e.from)} -> ${to}${commit} ${messages}`;
}

/** Prints every host change as it becomes durable, until the stream ends or mayuctl is interrupted. */
export async function eventsCommand(ctx: CommandContext, json: boolean): Promise<void> {
  await ctx.client.streamEvents((data) => {
    try {
      ctx.out(json ? data : formatEvent(data));
    } catch {
      ctx.err(`mayuctl: not an event: ${data.slice(0, 200)}`);
    }
  });
}

export const RENDER_KINDS = ['ignition', 'cloud-config', 'first-stage', 'ipxe'] as const;

/** Prints exactly what mayu would serve the host (or, with a profile, a host not registered yet). */
export async function renderCommand(ctx: CommandContext, serial: string, kind: string, profile?: string): Promise<void> {
  let text: string;
  try {
    text = await ctx.client.render(serial, kind, profile);
  } catch (err) {
    if (err instanceof HttpStatusError && err.body !== '') throw new CliError(`${err.message}: ${err.body}`);
    throw err;
  }
  // Byte for byte when possible: the document may or may not end in a newline.
  if (ctx.raw) ctx.raw(text);
  else ctx.out(text.endsWith('\n') ? text.slice(0, -1) : text);
}

export async function statusCommand(ctx: CommandContext, serial: string, json: boolean): Promise<void> {
  const raw = await ctx.client.listHosts();
  const hosts = decodeHosts(raw);
  // The server stores serials lower-cased; accept the serial as printed on the machine.
  const wanted = serial.toLowerCase();
  const index = hosts.findIndex((h) => (h.Serial ?? '').toLowerCase() === wanted);
  const host = hosts[index];
  if (!host) throw new CliError(`host ${serial} not found.`);
  // --json stays the Host object 0.11 printed; the failures have their own route.
  if (json) ctx.out(pretty(raw[index]));
  else ctx.out(formatStatus(host, ctx.zone, await newestFailure(ctx, host.Serial ?? serial)));
}

/**
 * The host's newest install failure, for `status`; undefined when it has none or mayu has no
 * such route (0.11, an older mayu: 404), so status still works against them.
 */
async function newestFailure(ctx: CommandContext, serial: string): Promise<StatusFailure | undefined> {
  let data: unknown;
  try {
    data = await ctx.client.installFailures(serial);
  } catch (err) {
    if (err instanceof HttpStatusError) return undefined;
    throw err;
  }
  const o = data as { Failures?: unknown; ClearedBy?: unknown } | null;
  const newest = Array.isArray(o?.Failures) ? (o.Failures[0] as Record<string, unknown> | undefined) : undefined;
  if (!newest || typeof newest['Time'] !== 'string' || typeof newest['Stage'] !== 'string' || typeof newest['Reason'] !== 'string') return undefined;
  return {
    Time: newest['Time'], Stage: newest['Stage'], Reason: newest['Reason'], State: String(newest['State'] ?? ''),
    ...(typeof o!.ClearedBy === 'string' ? { ClearedBy: o!.ClearedBy } : {}),
  };
}

export async function setCommand(ctx: CommandContext, serial: string, key: string, value: string, force = false): Promise<void> {
  const { route, body } = setRequest(key, value, { force });
  await ctx.client.putHost(serial, route, body);
}

export async function powerHookCommand(ctx: CommandContext, serial: string, json: boolean): Promise<void> {
  let data: Record<string, unknown>;
  try {
    data = (await ctx.client.powerHook(serial)) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof HttpStatusError && err.body !== '') throw new CliError(err.body);
    throw err;
  }
  if (typeof data !== 'object' || data === null || typeof data['serial'] !== 'string') throw new BadAnswerError('power-hook: expected a JSON object with a serial');
  if (json) {
    ctx.out(pretty(data));
    return;
  }
  ctx.out(formatPowerHook(data));
}

export async function deleteCommand(ctx: CommandContext, serial: string): Promise<void> {
  await ctx.client.deleteHost(serial);
}

export async function overrideCommand(ctx: CommandContext, serial: string, property: string, value: string): Promise<void> {
  const { route, body } = overrideRequest(property, value);
  await ctx.client.putHost(serial, route, body);
}

export interface BootCompleteArgs {
  updateVersions: boolean;
  envFile: string;
  osRelease: string;
  /** --token: wins over REPORT_TOKEN of the env file. */
  token?: string;
  /** MAYU_TOKEN: used when neither --token nor REPORT_TOKEN is there. */
  fallbackToken?: string;
}

async function readEnv(path: string, required: boolean): Promise<Record<string, string>> {
  try {
    return parseEnvFile(await readFile(path, 'utf8'));
  } catch (err) {
    if (!required && (err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`);
  }
}

export async function bootCompleteCommand(ctx: CommandContext, args: BootCompleteArgs): Promise<void> {
  const mayuEnv = await readEnv(args.envFile, true);
  const serial = mayuEnv['SERIAL'];
  if (!serial) throw new CliError(`Can't find serial in host environment (${args.envFile})`);
  // os-release only matters for the CoreOS version; a missing one must not block the report.
  const osRelease = args.updateVersions ? await readEnv(args.osRelease, false) : {};
  const { route, body } = bootCompleteRequest(mayuEnv, osRelease, args.updateVersions);
  const token = args.token ?? (mayuEnv['REPORT_TOKEN'] || undefined) ?? args.fallbackToken;
  await ctx.client.putHost(serial, route, body, token);
}

export function versionCommand(output: Output, json = false): void {
  output.out(json ? pretty({ version: packageVersion() }) : `mayuctl version ${packageVersion()}`);
}

function parseHistory(data: unknown): HistoryEntry[] {
  const ok = (e: unknown): e is HistoryEntry => {
    const o = e as Record<string, unknown> | null;
    return typeof o === 'object' && o !== null && typeof o['commit'] === 'string' && typeof o['time'] === 'string' && typeof o['message'] === 'string';
  };
  if (!Array.isArray(data) || !data.every(ok)) throw new BadAnswerError('history: expected a JSON array of {commit, time, message}');
  return data;
}

export async function historyCommand(ctx: CommandContext, serial: string, json: boolean): Promise<void> {
  let data: unknown;
  try {
    data = await ctx.client.history(serial);
  } catch (err) {
    // The server's text ("host doesn't exist", ...) says it better than a status code.
    if (err instanceof HttpStatusError && err.body !== '') throw new CliError(err.body);
    throw err;
  }
  const entries = parseHistory(data);
  if (json) ctx.out(pretty(entries));
  else if (entries.length > 0) ctx.out(formatHistory(entries));
}

/** What to print on stderr for a failed command. */
export function errorText(err: unknown, debug = false): string {
  if (err instanceof HttpStatusError) return err.body === '' ? err.message : `${err.message}\n${err.body}`;
  if (err instanceof Error) return debug && err.stack && !(err instanceof CliError) ? err.stack : err.message;
  return String(err);
}
