// The local time zone as Go's time.Local finds it (0.11's mayu and mayuctl): TZ unset is
// /etc/localtime, TZ="" or "UTC" is UTC, TZ=":Europe/Berlin" or "Europe/Berlin" a zoneinfo file,
// TZ="/path" that file; anything unreadable falls back to UTC, as in Go.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseTzif, UTC_ZONE, type TimeZone } from '../core/tzif.ts';

const ZONE_SOURCES = ['/usr/share/zoneinfo/', '/usr/share/lib/zoneinfo/', '/usr/lib/locale/TZ/'];

function tryZone(file: string): TimeZone | undefined {
  try {
    return parseTzif(readFileSync(file));
  } catch {
    return undefined;
  }
}

export function localZone(tzEnv: string | undefined): TimeZone {
  if (tzEnv === undefined) return tryZone('/etc/localtime') ?? UTC_ZONE;
  const tz = tzEnv.startsWith(':') ? tzEnv.slice(1) : tzEnv;
  if (tz === '' || tz === 'UTC') return UTC_ZONE;
  if (tz.startsWith('/')) return tryZone(tz) ?? UTC_ZONE;
  // Go refuses names that could leave the zoneinfo folders.
  if (tz.split('/').includes('..') || path.isAbsolute(tz)) return UTC_ZONE;
  for (const dir of ZONE_SOURCES) {
    const zone = tryZone(dir + tz);
    if (zone) return zone;
  }
  return UTC_ZONE;
}
