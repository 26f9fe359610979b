import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Context } from 'koa';
import { HttpError } from './errors.ts';

// Kernel, initrd and OS images: length, HEAD and single byte ranges (installers resume with them).

function parseRange(header: string, size: number): { start: number; end: number } | 'invalid' | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined; // multi-range or other units: answer the whole file, as allowed
  const [, a, b] = m;
  let start: number;
  let end: number;
  if (a === '') {
    if (b === '') return 'invalid';
    start = Math.max(0, size - Number(b));
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  }
  if (start > end || start >= size) return 'invalid';
  return { start, end };
}

/** Serves `file`; `label` names it in the 404 (a path relative to the images folder). */
export async function sendFile(ctx: Context, file: string, label: string, contentType = 'application/octet-stream'): Promise<void> {
  let size: number;
  let mtime: Date;
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new Error('not a file');
    size = st.size;
    mtime = st.mtime;
  } catch {
    throw new HttpError(404, `file not found: ${label}`);
  }
  ctx.set('Accept-Ranges', 'bytes');
  ctx.set('Last-Modified', mtime.toUTCString());
  ctx.type = contentType;
  const header = ctx.get('range');
  const range = header ? parseRange(header, size) : undefined;
  if (range === 'invalid') {
    ctx.set('Content-Range', `bytes */${size}`);
    throw new HttpError(416, `range not satisfiable: ${header} (file has ${size} bytes)`);
  }
  if (range) {
    ctx.status = 206;
    ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
    ctx.length = range.end - range.start + 1;
  } else {
    ctx.status = 200;
    ctx.length = size;
  }
  if (ctx.method === 'HEAD') return;
  ctx.body = createReadStream(file, range ? { start: range.start, end: range.end } : {});
}
