// The admin bearer token, read from a file (flag or config key) or given as text (the CLI
// passes MAYU_ADMIN_TOKEN). The token itself never appears in a message or a log line.
import { readFile, stat } from 'node:fs/promises';
import { adminTokenProblem } from '../core/tokens.ts';
import { SecurityConfigError } from './security-error.ts';

export interface AdminTokenSource {
  /** Where the text came from, for messages: "MAYU_ADMIN_TOKEN" or "--admin-token-file /x". */
  origin: string;
  text: string;
}

/** Reads a token file: one line; a trailing newline (echo, editors) is not part of the token. */
export async function readAdminTokenFile(file: string, origin: string): Promise<{ source: AdminTokenSource; warnings: string[] }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new SecurityConfigError(`${origin}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const warnings: string[] = [];
  const mode = (await stat(file)).mode & 0o777;
  if (mode & 0o077) warnings.push(`${origin}: ${file} is readable by other users (mode ${mode.toString(8)}): chmod 600 it`);
  return { source: { origin, text: text.replace(/\r?\n$/, '') }, warnings };
}

/** The token, or a SecurityConfigError naming where it came from and what is wrong (never the value). */
export function checkAdminToken(source: AdminTokenSource): string {
  if (source.text === '') throw new SecurityConfigError(`${source.origin}: the admin token is empty`);
  const problem = adminTokenProblem(source.text);
  if (problem) throw new SecurityConfigError(`${source.origin}: the admin token is ${problem}`);
  return source.text;
}
