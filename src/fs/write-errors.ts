// Why a write could not be made durable, in words an operator acts on. Node's fs errors carry
// an errno code; wrappers (the store's) keep the original as `cause`, so the chain is walked.

const DISK_CODES: Readonly<Record<string, string>> = {
  ENOSPC: 'disk full',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'file system is read-only',
  EIO: 'disk I/O error',
  EFBIG: 'file too large for the file system',
};

/** The errno code of `err` or of an error in its cause chain; undefined when none has one. */
export function errnoCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** "disk full (ENOSPC)", "disk I/O error (EIO)", or "write failed (<message>)". */
export function describeWriteError(err: unknown): string {
  const code = errnoCode(err);
  if (code && DISK_CODES[code]) return `${DISK_CODES[code]} (${code})`;
  const message = err instanceof Error ? err.message : String(err);
  return `write failed (${message})`;
}

/** The disk itself refused (full, quota, read-only, I/O error), as opposed to a bug or a bad path. */
export function isDiskError(err: unknown): boolean {
  const code = errnoCode(err);
  return code !== undefined && code in DISK_CODES;
}

/**
 * A change that could not be made durable: nothing of it stands (memory is rolled back). The
 * HTTP layer answers 507 with this message.
 */
export class NotStoredError extends Error {
  constructor(cause: unknown) {
    super(`the change could not be stored: ${describeWriteError(cause)}; nothing was changed`, { cause });
  }
}
