import { createHash } from 'node:crypto';
import { crc32, deflateSync } from 'node:zlib';
import { computeDelta } from './delta.ts';
import type { ObjectType } from './objects.ts';

// Writes a git packfile (version 2) and its index (version 2) in memory. isomorphic-git's
// packObjects never writes deltas, and a cluster repo is mostly root trees that differ from the
// previous one by a single entry: stored as deltas against their neighbour they cost a few dozen
// bytes instead of ~60 bytes per host each.

const TYPE_CODE: Record<ObjectType, number> = { commit: 1, tree: 2, blob: 3, tag: 4 };
const OFS_DELTA = 6;
/** Level 1: as small as level 6 for objects of a few hundred bytes, at half the CPU. */
const DEFLATE = { level: 1 };

/**
 * A zlib stream of stored (uncompressed) blocks, made by hand: deflateSync at level 0 still sets
 * up a zlib context (~300 KB) per call, which cost more than everything else in a small batch.
 */
export function zlibStored(data: Buffer): Buffer {
  return zlibStoredAfter(Buffer.alloc(0), data);
}

/**
 * `prefix` (a record's header) followed by zlibStored(data), in one buffer: a batch's 400 KB root
 * tree is copied once into its record, not once into the zlib data and again into the record.
 */
function zlibStoredAfter(prefix: Buffer, data: Buffer): Buffer {
  const blocks = Math.max(1, Math.ceil(data.length / 0xffff));
  const out = Buffer.allocUnsafe(prefix.length + 2 + blocks * 5 + data.length + 4);
  let pos = prefix.copy(out, 0);
  out[pos] = 0x78; // deflate, 32 KiB window
  out[pos + 1] = 0x01; // no dictionary, fastest; (0x78 << 8 | 0x01) % 31 === 0
  pos += 2;
  for (let i = 0; i < blocks; i++) {
    const chunk = data.subarray(i * 0xffff, (i + 1) * 0xffff);
    out[pos] = i === blocks - 1 ? 1 : 0; // BFINAL, BTYPE 00 (stored)
    out.writeUInt16LE(chunk.length, pos + 1);
    out.writeUInt16LE(~chunk.length & 0xffff, pos + 3);
    pos += 5 + chunk.copy(out, pos + 5);
  }
  out.writeUInt32BE(adler32(data), pos);
  return out;
}

function adler32(data: Buffer): number {
  let a = 1;
  let b = 0;
  for (let i = 0; i < data.length;) {
    // 5552 bytes keep the sums exact between reductions, as zlib's own NMAX.
    const end = Math.min(i + 5552, data.length);
    for (; i < end; i++) {
      a += data[i]!;
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** True when a record's zlib data starts with a stored block: compaction compresses it. */
export function isStoredZlib(zdata: Buffer): boolean {
  return zdata.length > 2 && (zdata[2]! & 0x06) === 0;
}

const compress = (data: Buffer, level: number) => (level === 0 ? zlibStored(data) : deflateSync(data, { level }));

/** Object header: type and inflated size in git's little-endian 7-bit groups. */
function objectHeader(type: number, size: number): Buffer {
  const bytes: number[] = [];
  let byte = (type << 4) | (size & 15);
  size = Math.floor(size / 16);
  while (size > 0) {
    bytes.push(byte | 128);
    byte = size & 127;
    size = Math.floor(size / 128);
  }
  bytes.push(byte);
  return Buffer.from(bytes);
}

/** Negative offset of an ofs-delta base, in git's own varint (each continuation adds one). */
function ofsEncoding(offset: number): Buffer {
  const bytes = [offset & 127];
  offset = Math.floor(offset / 128);
  while (offset > 0) {
    offset -= 1;
    bytes.unshift(128 | (offset & 127));
    offset = Math.floor(offset / 128);
  }
  return Buffer.from(bytes);
}

/**
 * Streams a pack: add() returns each record's bytes for the caller to write, so only the
 * current object and its delta base are in memory; finish() returns the trailer and the index.
 */
export class PackBuilder {
  private readonly hash = createHash('sha1');
  /**
   * The index's columns, in the order added: binary oids, record offsets, CRCs. A merge of a whole
   * storm's history adds ~400 000 objects; an object per entry (and a Buffer per oid in finish)
   * made the merge worker's heap peak at ~180 MB.
   */
  private readonly oids: Buffer;
  private readonly recordOffsets: Uint32Array;
  private readonly crcs: Uint32Array;
  private added = 0;
  private readonly offsets = new Map<string, number>();
  private offset = 12;

  constructor(private readonly count: number) {
    this.oids = Buffer.alloc(count * 20);
    this.recordOffsets = new Uint32Array(count);
    this.crcs = new Uint32Array(count);
  }

  header(): Buffer {
    const header = Buffer.alloc(12);
    header.write('PACK', 0, 'latin1');
    header.writeUInt32BE(2, 4);
    header.writeUInt32BE(this.count, 8);
    this.hash.update(header);
    return header;
  }

  /**
   * `base`: an object added earlier, to store this one as a delta against. `level`: zlib level
   * (0 stores it uncompressed, without zlib: a batch's records, which compaction compresses).
   */
  add(oid: string, type: ObjectType, content: Buffer, base?: { oid: string; content: Buffer }, level = DEFLATE.level): Buffer {
    const baseOffset = base ? this.offsets.get(base.oid) : undefined;
    let record: Buffer;
    if (base && baseOffset !== undefined) {
      const delta = computeDelta(base.content, content);
      record = Buffer.concat([objectHeader(OFS_DELTA, delta.length), ofsEncoding(this.offset - baseOffset), compress(delta, level)]);
    } else if (level === 0) {
      record = zlibStoredAfter(objectHeader(TYPE_CODE[type], content.length), content);
    } else {
      record = Buffer.concat([objectHeader(TYPE_CODE[type], content.length), compress(content, level)]);
    }
    return this.append(oid, record, crc32(record));
  }

  /** A delta computed by the caller against `baseOid`, added earlier (a batch's root trees). */
  addDelta(oid: string, baseOid: string, delta: Buffer, level = DEFLATE.level): Buffer {
    const baseOffset = this.offsets.get(baseOid);
    if (baseOffset === undefined) throw new Error(`delta base ${baseOid} of ${oid} is not in the pack yet`);
    const record = Buffer.concat([objectHeader(OFS_DELTA, delta.length), ofsEncoding(this.offset - baseOffset), compress(delta, level)]);
    return this.append(oid, record, crc32(record));
  }

  /** A record copied as is from another pack (not a delta: those refer to their pack's offsets). */
  addRaw(oid: string, record: Buffer, crc: number): Buffer {
    return this.append(oid, record, crc);
  }

  /**
   * A delta copied from another pack without inflating it: `zdata` is its compressed data and
   * `deltaSize` its inflated size; only the header is new, pointing at `baseOid` as placed here.
   */
  addCopiedDelta(oid: string, baseOid: string, deltaSize: number, zdata: Buffer): Buffer {
    const baseOffset = this.offsets.get(baseOid);
    if (baseOffset === undefined) throw new Error(`delta base ${baseOid} of ${oid} is not in the pack yet`);
    const record = Buffer.concat([objectHeader(OFS_DELTA, deltaSize), ofsEncoding(this.offset - baseOffset), zdata]);
    return this.append(oid, record, crc32(record));
  }

  /** CRC-32 of the record the last add*() returned, as the index will hold it. */
  get lastCrc(): number {
    return this.crcs[this.added - 1]!;
  }

  private append(oid: string, record: Buffer, crc: number): Buffer {
    if (this.added === this.count) throw new Error(`pack announced ${this.count} objects, got more`);
    if (this.offset >= 0x80000000) throw new Error('pack over 2 GiB: not supported');
    if (this.oids.write(oid, this.added * 20, 20, 'hex') !== 20) throw new Error(`not an object id: ${oid}`);
    this.recordOffsets[this.added] = this.offset;
    this.crcs[this.added] = crc >>> 0;
    this.added++;
    this.offsets.set(oid, this.offset);
    this.hash.update(record);
    this.offset += record.length;
    return record;
  }

  /** The pack's trailing checksum and its .idx (version 2). */
  finish(): { checksum: Buffer; index: Buffer } {
    if (this.added !== this.count) throw new Error(`pack announced ${this.count} objects, got ${this.added}`);
    const checksum = this.hash.digest();
    const n = this.count;
    const oids = this.oids;
    // Entries in oid order: a permutation sorted by the first 4 bytes, then the rest.
    const lead = new Uint32Array(n);
    for (let i = 0; i < n; i++) lead[i] = oids.readUInt32BE(i * 20);
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    // (buf.compare(target, tStart, tEnd, sStart, sEnd) compares the source range to the target's.)
    order.sort((a, b) => lead[a]! - lead[b]! || oids.compare(oids, b * 20, b * 20 + 20, a * 20, a * 20 + 20));
    const fanout = Buffer.alloc(256 * 4);
    const sortedOids = Buffer.allocUnsafe(n * 20);
    const crcs = Buffer.allocUnsafe(n * 4);
    const offsets = Buffer.allocUnsafe(n * 4);
    for (let k = 0; k < n; k++) {
      const i = order[k]!;
      oids.copy(sortedOids, k * 20, i * 20, i * 20 + 20);
      crcs.writeUInt32BE(this.crcs[i]!, k * 4);
      offsets.writeUInt32BE(this.recordOffsets[i]!, k * 4);
    }
    let k = 0;
    for (let byte = 0; byte < 256; byte++) {
      while (k < n && sortedOids[k * 20]! === byte) k++;
      fanout.writeUInt32BE(k, byte * 4);
    }
    const body = Buffer.concat([Buffer.from([0xff, 0x74, 0x4f, 0x63, 0, 0, 0, 2]), fanout, sortedOids, crcs, offsets, checksum]);
    return { checksum, index: Buffer.concat([body, createHash('sha1').update(body).digest()]) };
  }
}
