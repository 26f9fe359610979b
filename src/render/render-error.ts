/**
 * A template could not be rendered into a valid document. Callers answer HTTP 500 (never a
 * truncated 200, as mayu 0.11 did) and log the message, which names the template and the tag.
 */
export class RenderError extends Error {
  /** Template file (or name) being rendered. */
  readonly template: string;
  /** The tag as written in the template source, e.g. "{{host.serial}}", when one is to blame. */
  readonly tag?: string;
  /** The partial the tag is in, when it is not in the template itself. */
  readonly partial?: string;

  constructor(message: string, where: { template: string; tag?: string; partial?: string }, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RenderError';
    this.template = where.template;
    if (where.tag !== undefined) this.tag = where.tag;
    if (where.partial !== undefined) this.partial = where.partial;
  }
}
