import Mustache from 'mustache';
import { escapeShell } from './escape.ts';
import { renderStrict } from './strict-mustache.ts';

// A command line an operator writes in config.yaml (power_hook.command), run by /bin/sh with
// host values filled in. Values come from hosts (serials, addresses), so every tag must sit
// inside single quotes, where escapeShell makes any value one literal word: checked when the
// config is loaded, not when a machine's value happens to contain a quote.

export class ShellCommandError extends Error {}

export interface ShellCommand {
  /** The view keys the template uses. */
  readonly keys: ReadonlySet<string>;
  render(view: Readonly<Record<string, string>>): string;
}

type Token = [string, string, number, number, ...unknown[]];

/**
 * Checks `template` (only plain {{key}} tags, each inside '...', keys among `known`, quotes
 * balanced) and returns its renderer. `name` prefixes every error (e.g. "config.yaml: power_hook.command").
 */
export function compileShellCommand(name: string, template: string, known: readonly string[]): ShellCommand {
  let tokens: Token[];
  try {
    tokens = Mustache.parse(template) as unknown as Token[];
  } catch (err) {
    throw new ShellCommandError(`${name}: mustache syntax error: ${(err as Error).message}`);
  }
  const keys = new Set<string>();
  let quote: 'none' | 'single' | 'double' = 'none';
  for (const token of tokens) {
    const [type, value] = token;
    const tag = template.slice(token[2], token[3]);
    if (type === 'text') {
      for (let i = 0; i < value.length; i++) {
        const c = value[i];
        if (quote === 'single') {
          if (c === "'") quote = 'none';
        } else if (c === '\\') {
          i++; // the next character is literal outside single quotes
        } else if (quote === 'double') {
          if (c === '"') quote = 'none';
        } else if (c === "'") {
          quote = 'single';
        } else if (c === '"') {
          quote = 'double';
        }
      }
      continue;
    }
    if (type !== 'name') throw new ShellCommandError(`${name}: ${tag}: only plain {{key}} tags are allowed (no sections, partials or unescaped tags)`);
    if (!known.includes(value)) throw new ShellCommandError(`${name}: ${tag}: unknown key (known: ${known.join(', ')})`);
    if (quote !== 'single') throw new ShellCommandError(`${name}: ${tag} must be inside single quotes ('${tag}'), so that no host value can change the command`);
    keys.add(value);
  }
  if (quote !== 'none') throw new ShellCommandError(`${name}: unbalanced ${quote} quote`);
  return {
    keys,
    render: (view) => renderStrict(name, template, view, { escape: escapeShell }),
  };
}
