// Writing a list of buffers with writev without joining them first (a batch's pieces include
// 400 KB root trees). A writev takes at most IOV_MAX pieces and may write fewer bytes than asked.

/** Linux's IOV_MAX: the most pieces one writev call takes. */
export const IOV_MAX = 1024;

/** The pieces still to write once `written` bytes of `pieces` went out. */
export function piecesAfter(pieces: readonly Buffer[], written: number): Buffer[] {
  let i = 0;
  let n = written;
  while (i < pieces.length && n >= pieces[i]!.length) n -= pieces[i++]!.length;
  const rest = pieces.slice(i);
  if (n > 0) rest[0] = rest[0]!.subarray(n);
  return rest;
}
