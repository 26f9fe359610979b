// Serials name a folder in the cluster repo and appear in URLs and templates, so only a
// conservative alphabet is accepted: no separators, no dot-only names, no control characters.

export class InvalidSerialError extends Error {}

const SERIAL = /^[a-z0-9][a-z0-9._:+-]{0,127}$/;

/** The 0.11 installer replaces spaces by "-"; the server lower-cases for lookup and storage. */
export function normalizeSerial(raw: string): string {
  const serial = raw.trim().replace(/ /g, '-').toLowerCase();
  if (!SERIAL.test(serial)) {
    throw new InvalidSerialError(
      `invalid serial ${JSON.stringify(raw.slice(0, 140))}: use 1-128 characters of a-z, 0-9, ".", "_", ":", "+", "-", starting with a letter or digit`,
    );
  }
  return serial;
}
