// One escape function per output format, all in one place. Each returns the text to put
// *inside* the quoting the template author wrote around the tag (see the comment of each), so a
// value can never end the quoted context and change the structure of the output.
// Mustache's own HTML escaping is never used (it turns "http://" into "http:&#x2F;&#x2F;").

export type Escape = (value: unknown) => string;

/** Thrown when a value cannot be represented safely in a format (caller names template and tag). */
export class EscapeError extends Error {}

/** Values that reach an escape function are scalars (the strict renderer rejects objects). */
function text(value: unknown): string {
  return String(value);
}

/** Content of a JSON string literal: the template writes "{{x}}". */
export const escapeJson: Escape = (value) => JSON.stringify(text(value)).slice(1, -1);

const YAML_NAMED: Readonly<Record<string, string>> = {
  '\\': '\\\\',
  '"': '\\"',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\0': '\\0',
};

/**
 * Content of a YAML double-quoted scalar: the template writes "{{x}}". Control characters, C1,
 * line/paragraph separators and BOM become escapes, because YAML parsers fold or reject them raw.
 */
export const escapeYaml: Escape = (value) =>
  text(value).replace(/[\\"\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]/g, (c) => {
    const named = YAML_NAMED[c];
    if (named) return named;
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });

/**
 * Content of a POSIX single-quoted string: the template writes '{{x}}'. Inside single quotes
 * nothing is special except the quote itself, which becomes '\'' (close, escaped quote, reopen).
 * NUL cannot be held by a shell variable at all.
 */
export const escapeShell: Escape = (value) => {
  const s = text(value);
  if (s.includes('\0')) throw new EscapeError('a NUL byte cannot appear in a shell script');
  return s.replace(/'/g, "'\\''");
};

const IPXE_SAFE = /[A-Za-z0-9._:/?=&+-]/;

/**
 * iPXE script text (URLs and kernel arguments): every character outside [A-Za-z0-9._:/?=&%+-]
 * is percent-encoded as UTF-8, so no space, newline, quote or ${...} expansion can get through.
 * "%" itself is encoded too, so a value decodes back to exactly itself.
 */
export const escapeIpxe: Escape = (value) => {
  let out = '';
  for (const ch of text(value)) {
    if (IPXE_SAFE.test(ch)) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
};

const DNSMASQ_SAFE = /^[A-Za-z0-9._:/@+-]*$/;

/**
 * dnsmasq.conf values (addresses, MACs, interface names, paths). dnsmasq has no quoting that
 * covers newlines, "#" or ",", so anything outside a conservative alphabet is rejected.
 */
export const escapeDnsmasq: Escape = (value) => {
  const s = text(value);
  if (!DNSMASQ_SAFE.test(s)) {
    throw new EscapeError(`value ${JSON.stringify(s.slice(0, 60))} is not allowed in dnsmasq.conf (allowed: A-Z a-z 0-9 . _ : / @ + -)`);
  }
  return s;
};

/** Identity: only for trusted text (e.g. the inner text of {{#data_url}}, encoded afterwards). */
export const escapePlain: Escape = (value) => text(value);

export const ESCAPES = {
  json: escapeJson,
  yaml: escapeYaml,
  shell: escapeShell,
  ipxe: escapeIpxe,
  dnsmasq: escapeDnsmasq,
  plain: escapePlain,
} as const satisfies Record<string, Escape>;

export type OutputFormat = keyof typeof ESCAPES;

/**
 * RFC 2397 data URL without media type ("data:,<percent-encoded UTF-8 bytes>"). Only
 * [A-Za-z0-9-_.~] stay raw: legal in a URL and inert in a JSON or YAML string.
 */
export function toDataUrl(content: string): string {
  let out = 'data:,';
  for (const b of Buffer.from(content, 'utf8')) {
    out += /[A-Za-z0-9\-_.~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
