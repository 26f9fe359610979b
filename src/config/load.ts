import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import * as yaml from 'js-yaml';
import type { z } from 'zod';
import { configSchema, KNOWN_KEYS, profileSchema, type MayuConfig, type ProfileConfig } from './schema.ts';

export class ConfigError extends Error {}

export interface LoadedConfig {
  config: MayuConfig;
  /** Profiles in the order they are tried: config.yaml's list, then profiles/*.yaml. */
  profiles: ProfileConfig[];
  warnings: string[];
}

function formatIssues(file: string, issues: z.core.$ZodIssue[]): string {
  return issues
    .map((i) => `${file}: ${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`)
    .join('\n');
}

async function readYaml(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read: ${(err as Error).message}`);
  }
  try {
    return yaml.load(text, { filename: file });
  } catch (err) {
    throw new ConfigError(`${file}: invalid YAML: ${(err as Error).message}`);
  }
}

export function parseConfig(file: string, raw: unknown): { config: MayuConfig; warnings: string[] } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(`${file}: (top level): expected a mapping of keys, got ${raw === null ? 'nothing' : typeof raw}`);
  }
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(formatIssues(file, result.error.issues));
  const warnings: string[] = [];
  for (const k of Object.keys(raw)) if (!KNOWN_KEYS.top.includes(k)) warnings.push(`${file}: ${k}: unknown key, ignored`);
  const net = (raw as { network?: object }).network ?? {};
  for (const k of Object.keys(net)) if (!KNOWN_KEYS.network.includes(k)) warnings.push(`${file}: network.${k}: unknown key, ignored`);
  return { config: result.data, warnings };
}

/**
 * Profiles from a folder, one per *.yaml file: sorted by their `order` key (files without one
 * come after those with one), then by file name.
 */
export async function loadProfileDir(dir: string): Promise<ProfileConfig[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => /\.ya?ml$/.test(n)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new ConfigError(`${dir}: cannot read profile folder: ${(err as Error).message}`);
  }
  const loaded: { file: string; profile: ProfileConfig }[] = [];
  for (const name of names) {
    const file = path.join(dir, name);
    const result = profileSchema.safeParse(await readYaml(file));
    if (!result.success) throw new ConfigError(formatIssues(file, result.error.issues));
    loaded.push({ file: name, profile: result.data });
  }
  const key = (p: ProfileConfig) => p.order ?? Number.POSITIVE_INFINITY;
  loaded.sort((a, b) => key(a.profile) - key(b.profile) || (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  return loaded.map((l) => l.profile);
}

export async function loadConfig(configFile: string, profileDir?: string): Promise<LoadedConfig> {
  const { config, warnings } = parseConfig(configFile, await readYaml(configFile));
  const fromDir = profileDir ? await loadProfileDir(profileDir) : [];
  const profiles = [...config.profiles, ...fromDir];
  const seen = new Map<string, string>();
  for (const p of config.profiles) seen.set(p.name, configFile);
  for (const p of fromDir) {
    if (seen.has(p.name)) throw new ConfigError(`${profileDir}: profile "${p.name}" is already defined in ${seen.get(p.name)}`);
    seen.set(p.name, profileDir!);
  }
  return { config, profiles, warnings };
}
