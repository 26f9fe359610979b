// A small line diff (longest common subsequence) for conf.json versions: a few dozen lines each.

/**
 * @typedef {{ op: ' ' | '+' | '-', line: string }} DiffLine
 */

/**
 * Lines of `before` and `after` as kept (' '), removed ('-') and added ('+'), in order.
 * Lines are compared by `key` (default: as they are) and shown as they are.
 * @param {string[]} a
 * @param {string[]} b
 * @param {(line: string) => string} [key]
 * @returns {DiffLine[]}
 */
export function lineDiff(a, b, key = (l) => l) {
  const ka = a.map(key);
  const kb = b.map(key);
  const n = a.length;
  const m = b.length;
  // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = ka[i] === kb[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  /** @type {DiffLine[]} */
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (ka[i] === kb[j]) {
      out.push({ op: ' ', line: b[j] });
      i++;
      j++;
    } else if (lcs[i + 1][j] >= lcs[i][j + 1]) {
      out.push({ op: '-', line: a[i++] });
    } else {
      out.push({ op: '+', line: b[j++] });
    }
  }
  while (i < n) out.push({ op: '-', line: a[i++] });
  while (j < m) out.push({ op: '+', line: b[j++] });
  return out;
}

/**
 * The changed lines with `context` unchanged lines around each change; a run of hidden lines
 * becomes one `{ op: '…', line: 'N unchanged lines' }` entry.
 * @param {DiffLine[]} diff
 * @param {number} context
 * @returns {{ op: ' ' | '+' | '-' | '…', line: string }[]}
 */
export function withContext(diff, context = 2) {
  const keep = diff.map(() => false);
  diff.forEach((d, k) => {
    if (d.op === ' ') return;
    for (let x = Math.max(0, k - context); x <= Math.min(diff.length - 1, k + context); x++) keep[x] = true;
  });
  /** @type {{ op: ' ' | '+' | '-' | '…', line: string }[]} */
  const out = [];
  let hidden = 0;
  diff.forEach((d, k) => {
    if (keep[k]) {
      if (hidden) out.push({ op: '…', line: `${hidden} unchanged line${hidden === 1 ? '' : 's'}` });
      hidden = 0;
      out.push(d);
    } else {
      hidden++;
    }
  });
  if (hidden) out.push({ op: '…', line: `${hidden} unchanged line${hidden === 1 ? '' : 's'}` });
  return out;
}

/** JSON lines compared without their trailing comma: a field added after one is not a change to it. */
export const jsonLineKey = (/** @type {string} */ line) => line.replace(/,$/, '');

/**
 * conf.json text pretty-printed the same way for every version (2 spaces, keys as stored), so
 * the diff shows changed fields, not formatting. Text that is not JSON is diffed as it is.
 * @param {string | null} text
 * @returns {string[]}
 */
export function confLines(text) {
  if (text === null || text === '') return [];
  try {
    return JSON.stringify(JSON.parse(text), null, 2).split('\n');
  } catch {
    return text.split('\n');
  }
}
