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
  const blocks = Math.max(1, Math.ceil(data.length / 0xffff));
  const out = Buffer.allocUnsafe(2 + blocks * 5 + data.length + 4);
  out[0] = 0x78; // deflate, 32 KiB window
  out[1] = 0x01; // no dictionary, fastest; (0x78 << 8 | 0x01) % 31 === 0
  let pos = 2;
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
  private readonly entries: { oid: string; offset: number; crc: number }[] = [];
  private readonly offsets = new Map<string, number>();
  private offset = 12;

  constructor(private readonly count: number) {}

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
    return this.entries.at(-1)!.crc;
  }

  private append(oid: string, record: Buffer, crc: number): Buffer {
    this.entries.push({ oid, offset: this.offset, crc });
    this.offsets.set(oid, this.offset);
    this.hash.update(record);
    this.offset += record.length;
    return record;
  }

  /** The pack's trailing checksum and its .idx (version 2). */
  finish(): { checksum: Buffer; index: Buffer } {
    if (this.entries.length !== this.count) throw new Error(`pack announced ${this.count} objects, got ${this.entries.length}`);
    const checksum = this.hash.digest();
    const entries = [...this.entries].sort((a, b) => (a.oid < b.oid ? -1 : a.oid > b.oid ? 1 : 0));
    const fanout = Buffer.alloc(256 * 4);
    let i = 0;
    for (let byte = 0; byte < 256; byte++) {
      while (i < entries.length && parseInt(entries[i]!.oid.slice(0, 2), 16) === byte) i++;
      fanout.writeUInt32BE(i, byte * 4);
    }
    const oids = Buffer.concat(entries.map((e) => Buffer.from(e.oid, 'hex')));
    const crcs = Buffer.alloc(entries.length * 4);
    const offsets = Buffer.alloc(entries.length * 4);
    entries.forEach((e, n) => {
      crcs.writeUInt32BE(e.crc >>> 0, n * 4);
      if (e.offset >= 0x80000000) throw new Error('pack over 2 GiB: not supported');
      offsets.writeUInt32BE(e.offset, n * 4);
    });
    const body = Buffer.concat([Buffer.from([0xff, 0x74, 0x4f, 0x63, 0, 0, 0, 2]), fanout, oids, crcs, offsets, checksum]);
    return { checksum, index: Buffer.concat([body, createHash('sha1').update(body).digest()]) };
  }
}
