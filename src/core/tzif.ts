// Time zones read from the system's zoneinfo (TZif) files, looked up as Go's time package does:
// 0.11 (Go) wrote LastBoot with the local offset and its mayuctl printed the local zone's
// abbreviation ("CET", "JST", "+03"). ICU's names differ (en-US says "GMT+1" for CET), so the
// same files and the same rules as Go are used. Pure: the caller reads the file.

export interface ZoneAt {
  /** Seconds east of UTC. */
  offsetSeconds: number;
  /** The zone's abbreviation then, e.g. "CET", "CEST", "UTC", "+03". */
  abbrev: string;
}

export interface TimeZone {
  /** Go's Location.lookup: the offset and abbreviation in effect at `epochSeconds`. */
  lookup(epochSeconds: number): ZoneAt;
}

export const UTC_ZONE: TimeZone = { lookup: () => ({ offsetSeconds: 0, abbrev: 'UTC' }) };

export class TzifError extends Error {}

interface ZoneType {
  offsetSeconds: number;
  isDst: boolean;
  abbrev: string;
}

/** Parses a TZif file (versions 1-4; the 64-bit block and the footer rule when present). */
export function parseTzif(bytes: Uint8Array): TimeZone {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const header = (at: number) => {
    if (buf.length < at + 44 || buf.toString('latin1', at, at + 4) !== 'TZif') throw new TzifError('not a TZif file');
    const n = (i: number) => buf.readUInt32BE(at + 20 + 4 * i);
    return { version: buf[at + 4]!, isutcnt: n(0), isstdcnt: n(1), leapcnt: n(2), timecnt: n(3), typecnt: n(4), charcnt: n(5) };
  };
  const v1 = header(0);
  const blockSize = (h: ReturnType<typeof header>, timeSize: number) =>
    h.timecnt * timeSize + h.timecnt + h.typecnt * 6 + h.charcnt + h.leapcnt * (timeSize + 4) + h.isstdcnt + h.isutcnt;
  let at = 0;
  let h = v1;
  let timeSize = 4;
  if (v1.version >= 0x32) {
    at = 44 + blockSize(v1, 4);
    h = header(at);
    timeSize = 8;
  }
  let p = at + 44;
  if (buf.length < p + blockSize(h, timeSize)) throw new TzifError('truncated TZif file');
  const transitions: number[] = [];
  for (let i = 0; i < h.timecnt; i++, p += timeSize) transitions.push(timeSize === 8 ? Number(buf.readBigInt64BE(p)) : buf.readInt32BE(p));
  const indexes = [...buf.subarray(p, p + h.timecnt)];
  p += h.timecnt;
  const raw: { off: number; isDst: boolean; idx: number }[] = [];
  for (let i = 0; i < h.typecnt; i++, p += 6) raw.push({ off: buf.readInt32BE(p), isDst: buf[p + 4] === 1, idx: buf[p + 5]! });
  const chars = buf.subarray(p, p + h.charcnt);
  p += h.charcnt + h.leapcnt * (timeSize + 4) + h.isstdcnt + h.isutcnt;
  const abbrevAt = (i: number) => {
    const end = chars.indexOf(0, i);
    return chars.toString('latin1', i, end < 0 ? chars.length : end);
  };
  const types: ZoneType[] = raw.map((t) => ({ offsetSeconds: t.off, isDst: t.isDst, abbrev: abbrevAt(t.idx) }));
  if (types.length === 0 || indexes.some((i) => i >= types.length)) throw new TzifError('TZif file without valid zone types');
  let footer = '';
  if (timeSize === 8 && buf[p] === 0x0a) {
    const end = buf.indexOf(0x0a, p + 1);
    if (end > p) footer = buf.toString('latin1', p + 1, end);
  }
  const first = types[firstZoneIndex(types, transitions, indexes)]!;
  const rule = footer ? parsePosixTz(footer) : undefined;
  return {
    lookup(sec) {
      if (transitions.length === 0 || sec < transitions[0]!) {
        return rule && transitions.length === 0 ? rule(sec) : { offsetSeconds: first.offsetSeconds, abbrev: first.abbrev };
      }
      if (rule && sec >= transitions.at(-1)!) return rule(sec);
      let lo = 0;
      let hi = transitions.length;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (sec < transitions[mid]!) hi = mid;
        else lo = mid;
      }
      const t = types[indexes[lo]!]!;
      return { offsetSeconds: t.offsetSeconds, abbrev: t.abbrev };
    },
  };
}

/** Go's lookupFirstZone: the zone of times before the first transition. */
function firstZoneIndex(types: ZoneType[], transitions: number[], indexes: number[]): number {
  if (!indexes.includes(0)) return 0;
  if (transitions.length > 0 && types[indexes[0]!]!.isDst) {
    for (let i = indexes[0]! - 1; i >= 0; i--) if (!types[i]!.isDst) return i;
  }
  const std = types.findIndex((t) => !t.isDst);
  return std < 0 ? 0 : std;
}

type Rule = { kind: 'J' | 'n' | 'M'; day: number; week: number; mon: number; time: number };

/**
 * A POSIX TZ string of a TZif footer ("CET-1CEST,M3.5.0,M10.5.0/3", "<+03>-3", "JST-9"), as Go's
 * tzset reads it: the zone for times after the file's last transition. Undefined if unreadable.
 */
export function parsePosixTz(s: string): ((sec: number) => ZoneAt) | undefined {
  let i = 0;
  const name = (): string | undefined => {
    if (s[i] === '<') {
      const end = s.indexOf('>', i);
      if (end < 0) return undefined;
      const n = s.slice(i + 1, end);
      i = end + 1;
      return n;
    }
    const m = /^[A-Za-z]{3,}/.exec(s.slice(i));
    if (!m) return undefined;
    i += m[0].length;
    return m[0];
  };
  // [+-]hh[:mm[:ss]] in seconds; `signed` for a zone offset (POSIX: positive is west).
  const clock = (): number | undefined => {
    const m = /^([+-]?)(\d{1,3})(?::(\d{1,2}))?(?::(\d{1,2}))?/.exec(s.slice(i));
    if (!m) return undefined;
    i += m[0].length;
    const v = Number(m[2]) * 3600 + Number(m[3] ?? 0) * 60 + Number(m[4] ?? 0);
    return m[1] === '-' ? -v : v;
  };
  const stdName = name();
  const stdPosix = stdName === undefined ? undefined : clock();
  if (stdName === undefined || stdPosix === undefined) return undefined;
  const std: ZoneAt = { offsetSeconds: -stdPosix, abbrev: stdName };
  if (i === s.length) return () => std;
  const dstName = name();
  if (dstName === undefined) return undefined;
  let dstOffset = std.offsetSeconds + 3600;
  if (i < s.length && s[i] !== ',') {
    const o = clock();
    if (o === undefined) return undefined;
    dstOffset = -o;
  }
  const dst: ZoneAt = { offsetSeconds: dstOffset, abbrev: dstName };
  const rest = i === s.length ? ',M3.2.0,M11.1.0' : s.slice(i); // Go's default rules, per tzcode
  const m = /^,([^,]+),([^,]+)$/.exec(rest);
  const start = m && parseRule(m[1]!);
  const end = m && parseRule(m[2]!);
  if (!start || !end) return undefined;
  return (sec) => {
    const year = new Date(sec * 1000).getUTCFullYear();
    const yearStart = Date.UTC(year, 0, 1) / 1000;
    const ysec = sec - yearStart;
    let startSec = ruleTime(year, start, std.offsetSeconds);
    let endSec = ruleTime(year, end, dst.offsetSeconds);
    let [a, b] = [std, dst];
    if (endSec < startSec) {
      [startSec, endSec] = [endSec, startSec];
      [a, b] = [b, a];
    }
    return ysec < startSec || ysec >= endSec ? a : b;
  };
}

function parseRule(text: string): Rule | undefined {
  const m = /^(?:J(\d{1,3})|(\d{1,3})|M(\d{1,2})\.(\d)\.(\d))(?:\/([+-]?)(\d{1,3})(?::(\d{1,2}))?(?::(\d{1,2}))?)?$/.exec(text);
  if (!m) return undefined;
  const t = m[7] === undefined ? 7200 : (m[6] === '-' ? -1 : 1) * (Number(m[7]) * 3600 + Number(m[8] ?? 0) * 60 + Number(m[9] ?? 0));
  if (m[1] !== undefined) return { kind: 'J', day: Number(m[1]), week: 0, mon: 0, time: t };
  if (m[2] !== undefined) return { kind: 'n', day: Number(m[2]), week: 0, mon: 0, time: t };
  return { kind: 'M', mon: Number(m[3]), week: Number(m[4]), day: Number(m[5]), time: t };
}

const isLeap = (y: number) => y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);

/** Go's tzruleTime: seconds from the start of `year` (UTC) when the rule's change happens. */
function ruleTime(year: number, r: Rule, offsetSeconds: number): number {
  let days: number;
  if (r.kind === 'J') days = r.day - 1 + (isLeap(year) && r.day >= 60 ? 1 : 0);
  else if (r.kind === 'n') days = r.day;
  else {
    const firstDow = new Date(Date.UTC(year, r.mon - 1, 1)).getUTCDay();
    const daysInMonth = new Date(Date.UTC(year, r.mon, 0)).getUTCDate();
    let d = (r.day - firstDow + 7) % 7;
    for (let w = 1; w < r.week && d + 7 < daysInMonth; w++) d += 7;
    days = (Date.UTC(year, r.mon - 1, 1) - Date.UTC(year, 0, 1)) / 86_400_000 + d;
  }
  return days * 86_400 + r.time - offsetSeconds;
}
