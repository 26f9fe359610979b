// KEY=VALUE files (/etc/mayu-env, /etc/os-release), read the way 0.11's godotenv did for the
// cases those files use: comments, blank lines, `export`, single and double quotes. Pure.

export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq).replace(/^export\s+/, '').trim();
    env[key] = unquote(line.slice(eq + 1).trim());
  }
  return env;
}

function unquote(value: string): string {
  const q = value[0];
  if ((q === '"' || q === "'") && value.length >= 2 && value.endsWith(q)) {
    const inner = value.slice(1, -1);
    if (q === "'") return inner;
    return inner.replace(/\\(["\\$`n])/g, (_m, c: string) => (c === 'n' ? '\n' : c));
  }
  // Unquoted: an inline comment starts at " #".
  const hash = value.search(/\s#/);
  return hash >= 0 ? value.slice(0, hash).trimEnd() : value;
}
