// The same walk as recorded from the real mayu 0.11.1 (test/fixtures/mayu-0.11/README.md), against
// this mayu started with 0.11's flags and TZ=Europe/Berlin: conf.json, mayuctl list and status,
// and the history (authors, offsets, messages) must equal 0.11's, random values masked.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { maskRandom } from '../scripts/mask-0.11.ts';
import { localZone } from '../src/cli/local-zone.ts';
import { git } from './helpers/git.ts';
import { FIXTURES, runMayuctl, startMayu, type MayuProcess } from './helpers/mayu-process.ts';

const RECORDED = path.join(FIXTURES, 'mayu-0.11');
const TZ = 'Europe/Berlin';

/** The fixture with Berlin's offset and zone name of today instead of December's. */
async function recorded(file: string): Promise<string> {
  const { offsetSeconds, abbrev } = localZone(TZ).lookup(Math.floor(Date.now() / 1000));
  const [colon, plain] = offsetSeconds === 7200 ? ['+02:00', '+0200'] : ['+01:00', '+0100'];
  return (await readFile(path.join(RECORDED, file), 'utf8')).replaceAll('+01:00', colon).replaceAll('+0100 CET', `${plain} ${abbrev}`).replaceAll('|+0100|', `|${plain}|`);
}

describe('this mayu against the recording of the real 0.11.1', () => {
  let mayu: MayuProcess;
  const captured: Record<string, string> = {};
  const mask = async (text: string) => {
    const hosts = JSON.parse(await (await fetch(`${mayu.url}/admin/hosts`)).text()) as Record<string, unknown>[];
    const cluster = JSON.parse(await readFile(path.join(mayu.clusterDir, 'cluster.json'), 'utf8')) as { Config: { DefaultEtcdClusterToken: string } };
    return maskRandom(text, hosts, cluster.Config.DefaultEtcdClusterToken);
  };
  const put = (serial: string, route: string, body?: string) => fetch(`${mayu.url}/admin/host/${serial}/${route}`, { method: 'PUT', body });
  const mayuctl = async (...args: string[]) => {
    const r = await runMayuctl(mayu.port, args, { TZ });
    return `exit ${r.code}\n${r.stdout}${r.stderr}`;
  };

  before(async () => {
    // 0.11's machines send their reports without tokens.
    mayu = await startMayu({ env: { TZ }, args: ['--no-tls', '--insecure-reports'] });
    const walk = async (serial: string, mac: string, versions: string) => {
      assert.equal((await fetch(`${mayu.url}/first-stage-script/${serial}`)).status, 200);
      const data = { Serial: serial, NetDevs: [{ Name: 'ens3', MacAddress: mac }], IPMIAddress: '', ConnectedNIC: 'ens3' };
      assert.equal((await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(data) })).status, 200);
      assert.equal((await put(serial, 'set_installed')).status, 202);
      assert.equal((await put(serial, 'boot_complete', versions)).status, 202);
    };
    await walk('ref-1', '52:54:00:aa:bb:01', '{"ConnectedNIC":"","LastBoot":"0001-01-01T00:00:00Z","State":"unknown","CoreOSVersion":"1010.5.0","MayuVersion":"0.11.1"}');
    await walk('ref-2', '52:54:00:aa:bb:02', '{"CoreOSVersion":"1010.5.0","DockerVersion":"1.10.3"}');
    captured.conf = await readFile(path.join(mayu.clusterDir, 'ref-1/conf.json'), 'utf8');
    captured.list = await mayuctl('list');
    captured.status = await mayuctl('status', 'ref-1');
    assert.equal((await put('ref-2', 'boot_complete', '{}')).status, 202);
    assert.equal(await mayuctl('set', 'ref-1', 'state', 'installed'), 'exit 0\n');
    assert.equal(await mayuctl('set', 'ref-1', 'state', 'running'), 'exit 0\n');
  });
  after(() => mayu.stop());

  it('writes conf.json byte for byte as 0.11 (LastBoot in Berlin time)', async () => {
    assert.equal(await mask(captured.conf!), await recorded('walk-conf.json'));
  });

  it('answers 0.11\'s mayuctl list and status the same (LastBoot with the zone name)', async () => {
    assert.equal(await mask(captured.list!), await recorded('mayuctl-list.txt'));
    assert.equal(await mask(captured.status!), await recorded('mayuctl-status.txt'));
  });

  it('has 0.11\'s history: authors, committers, offsets, messages', async () => {
    const log = git(mayu.clusterDir, 'log', '--reverse', '--format=%an <%ae>|%cn <%ce>|%ad|%s', '--date=format:%z');
    assert.equal(await mask(log), await recorded('history.txt'));
  });
});
