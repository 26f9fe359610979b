// mayu 0.11's command line, so a 0.11 deployment's unit starts this mayu unchanged: which of its
// flags mean something here, how glog's -v maps to our log level, which are accepted and ignored.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Options } from 'yargs';

/**
 * 0.11 flags with no meaning here: glog's file logging (we log JSON lines to stdout) and the
 * folders of 0.11's yochu assets and static mayuctl/infopusher downloads. Accepted, and named in
 * one warning at start.
 */
export const IGNORED_0_11_FLAGS = {
  log_dir: { type: 'string', describe: 'glog (0.11): ignored, logs go to stdout' },
  logtostderr: { type: 'boolean', describe: 'glog (0.11): ignored' },
  alsologtostderr: { type: 'boolean', describe: 'glog (0.11): ignored' },
  stderrthreshold: { type: 'string', describe: 'glog (0.11): ignored' },
  vmodule: { type: 'string', describe: 'glog (0.11): ignored' },
  log_backtrace_at: { type: 'string', describe: 'glog (0.11): ignored' },
  'yochu-path': { type: 'string', describe: '0.11: ignored (no yochu assets served)' },
  'static-html-path': { type: 'string', describe: '0.11: ignored (no static_html served)' },
} as const satisfies Record<string, Options>;

/** The ignored 0.11 flags given on this command line, as `--name`. */
export function givenIgnoredFlags(argv: Record<string, unknown>): string[] {
  return Object.keys(IGNORED_0_11_FLAGS).filter((name) => argv[name] !== undefined).map((name) => `--${name}`);
}

/**
 * glog verbosity (-v N) to a pino level. 0.11 logged each request and host change at V(1)-V(2),
 * which we log at info anyway; V(3) and up were internals (git commands, dnsmasq output): debug.
 * -d/--debug is debug too; the more verbose of the two wins.
 */
export function logLevelFor(verbosity: number | undefined, debug: boolean): 'info' | 'debug' {
  return debug || (verbosity ?? 0) >= 3 ? 'debug' : 'info';
}

/**
 * Our --template-snippets is the folder holding cloudconfig/ and ignition/; 0.11's named one of
 * them (./template_snippets/cloudconfig). Given such a subfolder, its parent is meant.
 */
export function snippetsDirFor(given: string): string {
  const dir = path.resolve(given);
  const base = path.basename(dir);
  if ((base === 'cloudconfig' || base === 'ignition') && !existsSync(path.join(dir, 'cloudconfig'))) return path.dirname(dir);
  return dir;
}
