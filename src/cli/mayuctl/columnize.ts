// Column alignment as 0.11's mayuctl printed it through github.com/ryanuber/columnize
// SimpleFormat: cells trimmed, every column but the last padded to its widest cell and joined
// by two spaces, the last column never padded. Width counts code points, Han characters as two.

const HAN = /\p{Script=Han}/u;

export function displayWidth(text: string): number {
  let width = 0;
  for (const ch of text) width += HAN.test(ch) ? 2 : 1;
  return width;
}

/** Aligned lines joined by "\n", no trailing newline (like columnize.SimpleFormat). */
export function columnize(rows: readonly (readonly string[])[], glue = '  '): string {
  const cells = rows.map((row) => row.map((cell) => cell.trim()));
  const widths: number[] = [];
  for (const row of cells) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, displayWidth(cell));
    });
  }
  return cells
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell + ' '.repeat((widths[i] ?? 0) - displayWidth(cell)) + glue))
        .join(''),
    )
    .join('\n');
}
