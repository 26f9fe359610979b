// Argument parsing for mayuctl (yargs). Runs one command line and returns the exit code; the
// entry (src/cli/mayuctl.ts) owns process.argv and process.exit.

import { readFileSync } from 'node:fs';
import yargs, { type Argv } from 'yargs';
import { approveCommand, inventoryCommand, pendingCommand, rejectCommand } from './admission-commands.ts';
import { MayuClient } from './client.ts';
import {
  bootCompleteCommand, deleteCommand, errorText, eventsCommand, historyCommand, listCommand, overrideCommand, powerHookCommand, RENDER_KINDS,
  renderCommand, setCommand, statusCommand, versionCommand,
  type CommandContext, type Output,
} from './commands.ts';
import { DEFAULT_LIST_FIELDS, InvalidFieldError, LIST_FIELD_NAMES } from './format.ts';
import { InvalidSetError, SET_KEYS } from './request-body.ts';
import { localZone } from '../local-zone.ts';

const EPILOGUE = `Exit codes: 0 success; 1 mayu said no or could not be reached (unknown host, HTTP status
above 399, connection failure, a bad answer); 2 usage (unknown command or option, missing argument,
invalid field, set key or value), found before any request.

Shell completion: mayuctl completion >> ~/.bashrc (bash; zsh with bashcompinit).

Compatibility with 0.11's mayuctl: 0.11 used https unless --no-tls was given. This mayu serves
plain HTTP, so mayuctl uses http by default; --no-tls is still accepted (and changes nothing),
--tls selects https; --ca-file trusts the given CA (and implies --tls).

Authentication: --token or the environment variable MAYU_TOKEN sends "Authorization: Bearer
<token>" (mayu's admin token). boot-complete sends, in this order, --token, REPORT_TOKEN from the
env file, MAYU_TOKEN.`;

interface GlobalArgs {
  host: string;
  port: number;
  tls: boolean;
  token?: string;
  caFile?: string;
  debug: boolean;
}

/** Exit code of a command line mayuctl refuses before sending anything. */
export const USAGE_EXIT_CODE = 2;

/** Errors are red when stderr is a terminal and NO_COLOR is unset (https://no-color.org). */
const red = (text: string) => `\x1b[31m${text}\x1b[0m`;

/**
 * `env` is the process environment (MAYU_TOKEN is read); `color`: stderr is a terminal that
 * takes colour (the entry decides, with NO_COLOR).
 */
export async function runMayuctl(
  argv: readonly string[], output: Output, env: Readonly<Record<string, string | undefined>> = {}, color = false,
): Promise<number> {
  let exitCode = 0;
  const paint = (text: string) => (color ? red(text) : text);

  /** Wraps a command handler: builds the client, turns a thrown error into stderr + exit 1. */
  const run =
    <A extends GlobalArgs>(command: (ctx: CommandContext, args: A) => Promise<void> | void) =>
    async (args: A): Promise<void> => {
      try {
        const client = new MayuClient({
          host: args.host,
          port: args.port,
          tls: args.tls || args.caFile !== undefined,
          token: args.token ?? env['MAYU_TOKEN'],
          ca: args.caFile === undefined ? undefined : readCa(args.caFile),
          debug: args.debug ? (line) => output.err(line) : undefined,
        });
        await command({ ...output, client, zone: localZone(env['TZ']) }, args);
      } catch (err) {
        output.err(paint(errorText(err, args.debug)));
        exitCode = err instanceof InvalidSetError || err instanceof InvalidFieldError ? USAGE_EXIT_CODE : 1;
      }
    };

  const serialArg = (y: Argv<GlobalArgs>) => y.positional('serial', { type: 'string', demandOption: true, describe: 'machine serial' });
  const jsonOpt = { type: 'boolean', default: false, describe: 'print the JSON answer instead of text' } as const;

  const parser = yargs([...argv])
    .scriptName('mayuctl')
    .usage('$0 <command> [options]\n\nManage a mayu cluster.')
    .option('host', { type: 'string', default: 'localhost', describe: 'host name of the mayu service' })
    .option('port', { type: 'number', default: 4080, describe: 'port of the mayu service' })
    .option('tls', {
      type: 'boolean',
      default: false,
      describe: 'use https (default plain http; --no-tls, 0.11\'s flag, is accepted)',
    })
    .option('token', { type: 'string', describe: 'bearer token for mayu (default: env MAYU_TOKEN)' })
    .option('ca-file', { type: 'string', describe: 'PEM CA to trust for https (implies --tls)' })
    .option('debug', { alias: 'd', type: 'boolean', default: false, describe: 'print requests and answers on stderr' })
    .check((args) => {
      if (!Number.isInteger(args.port) || args.port < 1 || args.port > 65535) throw new Error(`invalid port: ${args.port}`);
      return true;
    })
    .command(
      'list',
      'List machines.',
      (y) =>
        y
          .option('fields', {
            type: 'string',
            default: DEFAULT_LIST_FIELDS.join(','),
            describe: `columns to print; valid fields: ${LIST_FIELD_NAMES.join(',')}`,
          })
          .option('legend', { type: 'boolean', default: true, describe: 'print the column headers (--no-legend omits them)' })
          .option('json', { ...jsonOpt, describe: 'print the hosts as JSON (ignores --fields)' })
          .option('watch', { alias: 'w', type: 'boolean', default: false, describe: 'reprint the list after every host change, deletions included (Ctrl-C ends)' })
          .option('stuck', { type: 'boolean', default: false, describe: 'only hosts stuck in installing, or configured after a reinstall request (config stuck_installs), with SINCE and FOR' }),
      run((ctx, a) => listCommand(ctx, { fields: a.fields, legend: a.legend, json: a.json, watch: a.watch, stuck: a.stuck })),
    )
    .command(
      'events',
      'Print every host change as it becomes durable, one line each (Ctrl-C ends).',
      (y) => y.option('json', { ...jsonOpt, describe: 'print each event as one JSON line {serial, from, to, messages, commit[, deleted]}' }),
      run((ctx, a) => eventsCommand(ctx, a.json)),
    )
    .command(
      'render <serial> <kind>',
      'Print exactly what mayu would serve a host, without changing anything.',
      (y) =>
        serialArg(y)
          .positional('kind', { type: 'string', choices: RENDER_KINDS, demandOption: true, describe: RENDER_KINDS.join(' | ') })
          .option('profile', { type: 'string', describe: 'for a serial not registered yet: preview it as its creation would make it, in this profile' }),
      run((ctx, a) => renderCommand(ctx, a.serial, a.kind, a.profile)),
    )
    .command(
      'status <serial>',
      'Status of a host.',
      (y) => serialArg(y).option('json', jsonOpt),
      run((ctx, a) => statusCommand(ctx, a.serial, a.json)),
    )
    .command(
      'set <serial> <key> <value>',
      `Set metadata of machines (${SET_KEYS.join(', ')}).`,
      (y) =>
        serialArg(y)
          .positional('key', { type: 'string', demandOption: true, describe: SET_KEYS.join(' | ') })
          .positional('value', { type: 'string', demandOption: true, describe: 'metadata: comma list k=v,...; cabinet: number; state: unknown | configured | installing | installed | running; profile: a profile name' })
          .option('force', { type: 'boolean', default: false, describe: 'profile: exceed the profile\'s quantity' }),
      run((ctx, a) => setCommand(ctx, a.serial, a.key, a.value, a.force)),
    )
    .command(
      'delete <serial>',
      'Delete (decommission) a host: one commit removing <serial>/; its address and profile slot are free again, its history stays in git.',
      (y) => serialArg(y),
      run((ctx, a) => deleteCommand(ctx, a.serial)),
    )
    .command(
      'override <serial> <property> <value>',
      'Override a globally defined template property for one host.',
      (y) =>
        serialArg(y)
          .positional('property', { type: 'string', demandOption: true })
          .positional('value', { type: 'string', demandOption: true }),
      run((ctx, a) => overrideCommand(ctx, a.serial, a.property, a.value)),
    )
    .command(
      'boot-complete',
      "Change the state of this host to 'running' (only run on provisioned machines).",
      (y) =>
        y
          .option('update-versions', { type: 'boolean', default: false, describe: 'also report the installed software versions' })
          .option('env-file', { type: 'string', default: '/etc/mayu-env', describe: 'file with SERIAL and MAYU_VERSION' })
          .option('os-release', { type: 'string', default: '/etc/os-release', describe: 'file with VERSION_ID' }),
      run((ctx, a) =>
        bootCompleteCommand(ctx, { updateVersions: a.updateVersions, envFile: a.envFile, osRelease: a.osRelease, token: a.token, fallbackToken: env['MAYU_TOKEN'] }),
      ),
    )
    .command('version', 'Show cli version.', (y) => y.option('json', jsonOpt), run((ctx, a) => versionCommand(ctx, a.json)))
    .command(
      'history <serial>',
      "Show a host's audit trail (newest first).",
      (y) => serialArg(y).option('json', jsonOpt),
      run((ctx, a) => historyCommand(ctx, a.serial, a.json)),
    )
    .command(
      'power-hook <serial>',
      "Show the last run of the site's power hook for a host (config power_hook; runs when a reinstall is requested).",
      (y) => serialArg(y).option('json', jsonOpt),
      run((ctx, a) => powerHookCommand(ctx, a.serial, a.json)),
    )
    // Admission (issue 17): src/cli/mayuctl/admission-commands.ts.
    .command('pending', 'List machines waiting for admission (discovered, pending) and rejected ones.', (y) => y.option('json', jsonOpt), run((ctx, a) => pendingCommand(ctx, a.json)))
    .command(
      'approve <serial>',
      'Admit a waiting machine: its host is created now (one approval commit, then its creation).',
      (y) => serialArg(y).option('profile', { type: 'string', describe: 'the profile it gets (default: inventory, selectors, first with room)' }),
      run((ctx, a) => approveCommand(ctx, a.serial, a.profile)),
    )
    .command('reject <serial>', 'Refuse a waiting machine (one commit); it is told to wait, its installer powers off.', (y) => serialArg(y), run((ctx, a) => rejectCommand(ctx, a.serial)))
    .command(
      'inventory <action> [serial]',
      'The machines admitted in admission mode "known" and their profiles: add, remove, list.',
      (y) =>
        y
          .positional('action', { type: 'string', choices: ['add', 'remove', 'list'], demandOption: true })
          .positional('serial', { type: 'string', describe: 'machine serial (add, remove)' })
          .option('profile', { type: 'string', describe: 'add: the profile the machine gets outright' })
          .option('json', jsonOpt)
          .check((a) => {
            if (a.action !== 'list' && a.serial === undefined) throw new Error(`inventory ${a.action} needs a serial`);
            return true;
          }),
      run((ctx, a) => inventoryCommand(ctx, a.action, a.serial, a.profile, a.json)),
    )
    .completion('completion', 'Print a shell completion script (mayuctl completion >> ~/.bashrc).')
    .demandCommand(1, 'a command is required')
    .strict()
    .recommendCommands()
    .version(false)
    .help()
    .alias('h', 'help')
    .epilogue(EPILOGUE)
    .wrap(100)
    .locale('en');

  // With a callback, yargs hands back help / usage text instead of printing or exiting.
  await parser.parseAsync([...argv], {}, (err, _args, text) => {
    if (err) {
      output.err(text ? text : paint(String(err.message)));
      exitCode = USAGE_EXIT_CODE;
    } else if (text) {
      output.out(text);
    }
  });
  return exitCode;
}

function readCa(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read --ca-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
