// Times as mayu 0.11 (Go) wrote and printed them: LastBoot is Go's RFC3339Nano in the server's
// local zone, and 0.11's mayuctl printed a parsed LastBoot with Go's Time.String(). Pure.
import type { TimeZone } from './tzif.ts';

const NS_PER_S = 1_000_000_000n;

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** "+01:00" / "-05:30" style ("Z07:00" without the Z), seconds of the offset dropped as Go does. */
function offsetText(offsetSeconds: number, colon: boolean): string {
  const sign = offsetSeconds < 0 ? '-' : '+';
  const minutes = Math.trunc(Math.abs(offsetSeconds) / 60);
  return `${sign}${pad(Math.trunc(minutes / 60))}${colon ? ':' : ''}${pad(minutes % 60)}`;
}

/**
 * Go's time.RFC3339Nano ("2006-01-02T15:04:05.999999999Z07:00") of an instant in nanoseconds
 * since the epoch, shown at `offsetSeconds` east of UTC: fraction without trailing zeros (none
 * when zero), "Z" for a zero offset.
 */
export function formatRfc3339Nano(epochNs: bigint, offsetSeconds: number): string {
  const local = epochNs + BigInt(offsetSeconds) * NS_PER_S;
  let sec = local / NS_PER_S;
  let frac = local % NS_PER_S;
  if (frac < 0n) {
    frac += NS_PER_S;
    sec -= 1n;
  }
  const d = new Date(Number(sec) * 1000);
  const fraction = frac === 0n ? '' : `.${frac.toString().padStart(9, '0').replace(/0+$/, '')}`;
  const zone = offsetSeconds === 0 ? 'Z' : offsetText(offsetSeconds, true);
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}${fraction}${zone}`;
}

/** The LastBoot text for "now" in `zone`, as 0.11 wrote it. */
export function goLocalTimestamp(epochNs: bigint, zone: TimeZone): string {
  const sec = Number(epochNs / NS_PER_S) - (epochNs % NS_PER_S < 0n ? 1 : 0);
  return formatRfc3339Nano(epochNs, zone.lookup(sec).offsetSeconds);
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|([+-])(\d{2}):(\d{2}))$/;

/**
 * Go's Time.String() of `stored` as json.Unmarshal parses it with `local` as time.Local:
 * "2026-12-01 20:37:10.123456789 +0100 CET". "Z" is UTC; an offset that `local` has at that
 * instant takes local's abbreviation; any other offset has no name, and Go prints the offset
 * twice ("+0200 +0200"). Text that is not RFC 3339 comes back unchanged.
 */
export function goTimeString(stored: string, local: TimeZone): string {
  const m = RFC3339.exec(stored);
  if (!m) return stored;
  const fraction = (m[7] ?? '').slice(0, 9).replace(/0+$/, '');
  const base = `${m[1]}-${m[2]}-${m[3]} ${m[4]}:${m[5]}:${m[6]}${fraction ? `.${fraction}` : ''}`;
  if (m[8] === 'Z') return `${base} +0000 UTC`;
  const offset = (m[9] === '-' ? -1 : 1) * (Number(m[10]) * 3600 + Number(m[11]) * 60);
  const wall = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) / 1000;
  // Date.UTC maps years 0-99 to 1900-1999; such LastBoots do not occur (zero time is "Z").
  const zone = local.lookup(wall - offset);
  const numeric = offsetText(offset, false);
  return `${base} ${numeric} ${zone.offsetSeconds === offset ? zone.abbrev : numeric}`;
}
