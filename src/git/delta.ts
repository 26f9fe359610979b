// Git's delta format (packfile OFS_DELTA / REF_DELTA payloads): a header with both sizes, then
// "copy from base" and "insert literal" instructions.

function sizeVarint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 127;
    n = Math.floor(n / 128);
    if (n > 0) b |= 128;
    out.push(b);
  } while (n > 0);
  return out;
}

function copyOp(offset: number, size: number): number[] {
  let op = 128;
  const args: number[] = [];
  for (let i = 0; i < 4; i++) {
    const b = (offset >>> (8 * i)) & 255;
    if (b) {
      op |= 1 << i;
      args.push(b);
    }
  }
  for (let i = 0; i < 3; i++) {
    const b = (size >>> (8 * i)) & 255;
    if (b) {
      op |= 16 << i;
      args.push(b);
    }
  }
  return [op, ...args];
}

/**
 * Length of the common prefix: a binary search over native compares (~16 memcmp calls for a
 * 40 KB root tree, instead of one JS comparison per byte or per block).
 */
function commonPrefix(a: Buffer, b: Buffer, max: number): number {
  let lo = 0;
  let hi = max;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (a.compare(b, 0, mid, 0, mid) === 0) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Length of the common suffix, the same way from the ends. */
function commonSuffix(a: Buffer, b: Buffer, max: number): number {
  let lo = 0;
  let hi = max;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (a.compare(b, b.length - mid, b.length, a.length - mid, a.length) === 0) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * Delta from base to target as "copy the common prefix, insert the middle, copy the common
 * suffix" — exact for a tree where one entry changed or was inserted.
 */
export function computeDelta(base: Buffer, target: Buffer): Buffer {
  const max = Math.min(base.length, target.length);
  const prefix = commonPrefix(base, target, max);
  const suffix = commonSuffix(base, target, max - prefix);
  return spliceDelta(base, target, prefix, suffix);
}

/**
 * The same, when the caller knows that the first `prefix` and the last `suffix` bytes of both
 * are equal (a root tree with one entry spliced in). Not checked.
 */
export function spliceDelta(base: Buffer, target: Buffer, prefix: number, suffix: number): Buffer {
  return literalDelta(base.length, prefix, target.subarray(prefix, target.length - suffix), suffix);
}

/**
 * A delta from a base of `baseLength` bytes to: its first `prefix` bytes, then `middle`, then its
 * last `suffix` bytes. Needs no byte of the base (an older root tree from the newer one and what
 * the change between them replaced: RootTree's TreeSplice.old).
 */
export function literalDelta(baseLength: number, prefix: number, middle: Buffer, suffix: number): Buffer {
  const out: number[] = [...sizeVarint(baseLength), ...sizeVarint(prefix + middle.length + suffix)];
  const copy = (offset: number, size: number) => {
    for (let done = 0; done < size; done += 0xffff) out.push(...copyOp(offset + done, Math.min(0xffff, size - done)));
  };
  copy(0, prefix);
  for (let i = 0; i < middle.length; i += 127) {
    const chunk = middle.subarray(i, i + 127);
    out.push(chunk.length, ...chunk);
  }
  copy(baseLength - suffix, suffix);
  return Buffer.from(out);
}

/** Rebuilds the target from a base and any git delta (not only ours: native git's too). */
export function applyDelta(base: Buffer, delta: Buffer): Buffer {
  let pos = 0;
  const varint = () => {
    let n = 0;
    let shift = 0;
    let b: number;
    do {
      b = delta[pos++]!;
      n += (b & 127) * 2 ** shift;
      shift += 7;
    } while (b & 128);
    return n;
  };
  const baseSize = varint();
  if (baseSize !== base.length) throw new Error(`delta expects a base of ${baseSize} bytes, got ${base.length}`);
  const out = Buffer.allocUnsafe(varint());
  let written = 0;
  while (pos < delta.length) {
    const op = delta[pos++]!;
    if (op & 128) {
      let offset = 0;
      let size = 0;
      for (let i = 0; i < 4; i++) if (op & (1 << i)) offset += delta[pos++]! * 2 ** (8 * i);
      for (let i = 0; i < 3; i++) if (op & (16 << i)) size += delta[pos++]! * 2 ** (8 * i);
      if (size === 0) size = 0x10000;
      written += base.copy(out, written, offset, offset + size);
    } else if (op > 0) {
      written += delta.copy(out, written, pos, pos + op);
      pos += op;
    } else {
      throw new Error('delta has a reserved opcode 0');
    }
  }
  if (written !== out.length) throw new Error(`delta produced ${written} bytes, announced ${out.length}`);
  return out;
}
