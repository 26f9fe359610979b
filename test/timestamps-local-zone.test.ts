// LastBoot and commit times in the server's local zone, as 0.11 wrote them, and mayuctl status
// printing it with the zone's name, as 0.11's mayuctl did (TZ=Europe/Berlin: "+0100 CET").
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { localZone } from '../src/cli/local-zone.ts';
import { git } from './helpers/git.ts';
import { hostData, runMayuctl, startMayu, type MayuProcess } from './helpers/mayu-process.ts';

const BERLIN = localZone('Europe/Berlin');

describe('time stamps in the server\'s zone (TZ=Europe/Berlin)', () => {
  let mayu: MayuProcess;
  const serial = 'tz-1';
  before(async () => {
    mayu = await startMayu({ env: { TZ: 'Europe/Berlin' }, args: ['--insecure-reports'] });
    await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData(serial, '52:54:00:00:7a:01')) });
    assert.equal((await fetch(`${mayu.url}/admin/host/${serial}/set_installed`, { method: 'PUT' })).status, 202);
  });
  after(() => mayu.stop());

  it('writes LastBoot as Go\'s RFC3339Nano with Berlin\'s offset and sub-millisecond digits; commits carry the offset', async () => {
    const before = Date.now();
    assert.equal((await fetch(`${mayu.url}/admin/host/${serial}/boot_complete`, { method: 'PUT', body: '{"CoreOSVersion":"1010.5.0"}' })).status, 202);
    const conf = JSON.parse(await readFile(path.join(mayu.clusterDir, serial, 'conf.json'), 'utf8')) as { LastBoot: string };
    const { offsetSeconds, abbrev } = BERLIN.lookup(Math.floor(before / 1000));
    const offset = offsetSeconds === 7200 ? '+02:00' : '+01:00';
    const m = new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.(\\d{1,9})\\${offset}$`).exec(conf.LastBoot);
    assert.ok(m, `${conf.LastBoot} in Berlin's offset ${offset}`);
    assert.ok(!m[1]!.endsWith('0'), 'trailing zeros trimmed');
    assert.ok(m[1]!.length > 3, `finer than milliseconds: ${conf.LastBoot}`);
    assert.ok(Math.abs(Date.parse(conf.LastBoot) - before) < 5000, 'it is now');
    assert.equal(git(mayu.clusterDir, 'log', '-1', '--format=%ad', '--date=format:%z').trim(), offset.replace(':', ''));

    // mayuctl in Berlin names the zone; elsewhere Go printed the offset twice.
    const fraction = m[1]!;
    const numeric = `\\${offset.replace(':', '')}`; // "+0100", escaped for a RegExp
    const inBerlin = await runMayuctl(mayu.port, ['status', serial], { TZ: 'Europe/Berlin' });
    assert.match(inBerlin.stdout, new RegExp(`^LastBoot: +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.${fraction} ${numeric} ${abbrev}$`, 'm'));
    const inUtc = await runMayuctl(mayu.port, ['status', serial], { TZ: 'UTC' });
    assert.match(inUtc.stdout, new RegExp(`^LastBoot: +.*\\.${fraction} ${numeric} ${numeric}$`, 'm'));

    // Other changes leave the stored text as it is, byte for byte.
    assert.equal((await runMayuctl(mayu.port, ['set', serial, 'providerid', 'rack-1'])).code, 0);
    assert.equal((JSON.parse(await readFile(path.join(mayu.clusterDir, serial, 'conf.json'), 'utf8')) as { LastBoot: string }).LastBoot, conf.LastBoot);
  });
});
