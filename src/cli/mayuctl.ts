// mayuctl entry: the only place that touches process.argv, stdout/stderr and the exit code.

import { hideBin } from 'yargs/helpers';
import { runMayuctl } from './mayuctl/cli.ts';

const code = await runMayuctl(hideBin(process.argv), {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  raw: (text) => process.stdout.write(text),
  ...(process.stdout.isTTY ? { clear: () => process.stdout.write('\x1b[H\x1b[2J') } : {}),
}, process.env, process.stderr.isTTY === true && !process.env['NO_COLOR']);
// Let pending writes to a pipe finish before exiting.
process.exitCode = code;
