// Pure output formatting of mayuctl: list table, status lines, history lines, times, and the
// exact request bodies (whole Host objects, as 0.11 sent them) and env-file parsing.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { goTimeString } from '../src/core/go-time.ts';
import { ZERO_TIME, type Host } from '../src/core/host.ts';
import { UTC_ZONE } from '../src/core/tzif.ts';
import { columnize } from '../src/cli/mayuctl/columnize.ts';
import { parseEnvFile } from '../src/cli/mayuctl/env-file.ts';
import { bootCompleteRequest, hostBody, InvalidSetError, overrideRequest, setRequest } from '../src/cli/mayuctl/request-body.ts';
import {
  formatHistory, formatLastBoot, formatList, formatStatus, formatUtc, InvalidFieldError, parseFields,
} from '../src/cli/mayuctl/format.ts';

const base = (over: Partial<Host>): Host => ({ ConnectedNIC: '', LastBoot: ZERO_TIME, State: 'unknown', ...over });

const running = base({
  Enabled: true,
  Serial: 'node-b',
  MacAddresses: ['00:16:3e:a0:b7:df', '00:16:3e:a0:b7:e0'],
  InternalAddr: '10.0.3.32',
  Cabinet: 2,
  MachineOnCabinet: 5,
  IPMIAddr: '10.0.9.32',
  Hostname: '00006811af601fe8',
  MachineID: '00006811af601fe8e1d3f37902021ae0',
  ConnectedNIC: 'ens3',
  FleetMetadata: ['role-core=true', 'stack-compute=true'],
  FleetDisableEngine: true,
  LastBoot: '2015-10-08T19:14:36.227056826+02:00',
  Profile: 'core',
  ProviderId: 'rack-7',
  EtcdClusterToken: 'e94768ef0f948b0c2e53536d9c5eeb8f',
  State: 'running',
  CoreOSVersion: '1010.5.0',
  MayuVersion: '0.11.1',
  DockerVersion: '1.10.3',
  EtcdVersion: 'v2.2.5',
  FleetVersion: 'v0.11.3',
  RktVersion: 'v1.1.0',
  K8sVersion: 'v1.1.8',
  YochuVersion: '0.19.1',
});
const fresh = base({ Serial: 'node-a', InternalAddr: '10.0.3.31', Profile: 'default' });

describe('columnize', () => {
  const cases: { name: string; rows: string[][]; want: string }[] = [
    { name: 'pads all but the last column, two-space glue', rows: [['a', 'bb', 'c'], ['ddd', 'e', 'ffff']], want: 'a    bb  c\nddd  e   ffff' },
    { name: 'trims cells', rows: [[' a ', ' b ']], want: 'a  b' },
    { name: 'empty last cell keeps padding', rows: [['Label:', ''], ['Longer:', 'x']], want: 'Label:   \nLonger:  x' },
    { name: 'Han characters count double', rows: [['我们', 'x'], ['abc', 'y']], want: '我们  x\nabc   y' },
    { name: 'no rows', rows: [], want: '' },
  ];
  for (const c of cases) it(c.name, () => assert.equal(columnize(c.rows), c.want));
});

describe('formatList', () => {
  const cases: { name: string; hosts: Host[]; fields?: string[]; legend?: boolean; want: string[] }[] = [
    {
      name: 'default fields, legend, rows sorted, dashes, quoted state',
      hosts: [running, fresh],
      want: [
        'IP         SERIAL  PROFILE  IPMIADDR   PROVIDERID  ETCDTOKEN                         METADATA                           COREOS    STATE      LASTBOOT',
        '10.0.3.31  node-a  default  -          -           -                                 -                                  -         "unknown"  0001-01-01 00:00:00',
        '10.0.3.32  node-b  core     10.0.9.32  rack-7      e94768ef0f948b0c2e53536d9c5eeb8f  role-core=true,stack-compute=true  1010.5.0  "running"  2015-10-08 19:14:36',
      ],
    },
    {
      name: '--no-legend',
      hosts: [fresh],
      fields: ['serial', 'state'],
      legend: false,
      want: ['node-a  "unknown"'],
    },
    {
      name: 'chosen fields keep their order; sorting follows the first column',
      hosts: [fresh, running],
      fields: ['serial', 'ip', 'yochu', 'etcd'],
      want: ['SERIAL  IP         YOCHU   ETCD', 'node-a  10.0.3.31  -       -', 'node-b  10.0.3.32  0.19.1  v2.2.5'],
    },
    {
      name: 'sorting is by text of the whole row',
      hosts: [base({ Serial: 'b', InternalAddr: '10.0.3.9' }), base({ Serial: 'a', InternalAddr: '10.0.3.10' })],
      fields: ['ip', 'serial'],
      legend: false,
      want: ['10.0.3.10  a', '10.0.3.9   b'],
    },
    {
      name: 'extra fields',
      hosts: [running],
      fields: ['machineid', 'docker', 'fleet', 'mayu', 'k8s', 'rkt', 'hostname', 'macs', 'cabinet'],
      legend: false,
      want: ['00006811af601fe8e1d3f37902021ae0  1.10.3  v0.11.3  0.11.1  v1.1.8  v1.1.0  00006811af601fe8  00:16:3e:a0:b7:df,00:16:3e:a0:b7:e0  2'],
    },
    {
      name: 'no hosts and no legend: nothing',
      hosts: [],
      legend: false,
      want: [''],
    },
    { name: 'no hosts: legend only', hosts: [], fields: ['ip', 'state'], want: ['IP  STATE'] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const opts = { ...(c.fields ? { fields: c.fields } : {}), ...(c.legend === undefined ? {} : { legend: c.legend }) };
      assert.equal(formatList(c.hosts, opts), c.want.join('\n'));
    });
  }
});

describe('parseFields', () => {
  it('accepts known fields in order', () => assert.deepEqual(parseFields('state,ip,state'), ['state', 'ip', 'state']));
  const bad: { spec: string; message: RegExp }[] = [
    { spec: 'ip,x', message: /^Invalid field: "x"\.$/ },
    { spec: 'IP', message: /^Invalid field: "IP"\.$/ },
    { spec: 'ip,', message: /^Invalid field: ""\.$/ },
    { spec: '', message: /^Invalid fields parameter\. Please choose valid fields: cabinet,coreos,/ },
  ];
  for (const b of bad) {
    it(`rejects ${JSON.stringify(b.spec)}`, () => assert.throws(() => parseFields(b.spec), (e: unknown) => e instanceof InvalidFieldError && b.message.test(e.message)));
  }
  it('formatList rejects an unknown field too', () => assert.throws(() => formatList([fresh], { fields: ['nope'] }), InvalidFieldError));
});

describe('times', () => {
  const cases: { stored: string; lastboot: string; go: string; utc: string }[] = [
    { stored: ZERO_TIME, lastboot: '0001-01-01 00:00:00', go: '0001-01-01 00:00:00 +0000 UTC', utc: '0001-01-01 00:00:00' },
    {
      stored: '2015-10-08T19:14:36.227056826+02:00',
      lastboot: '2015-10-08 19:14:36',
      go: '2015-10-08 19:14:36.227056826 +0200 +0200',
      utc: '2015-10-08 17:14:36',
    },
    { stored: '2016-01-15T13:42:33.3446Z', lastboot: '2016-01-15 13:42:33', go: '2016-01-15 13:42:33.3446 +0000 UTC', utc: '2016-01-15 13:42:33' },
    { stored: '2016-01-15T13:42:33.100000000Z', lastboot: '2016-01-15 13:42:33', go: '2016-01-15 13:42:33.1 +0000 UTC', utc: '2016-01-15 13:42:33' },
    { stored: '2016-01-01T00:30:00-05:30', lastboot: '2016-01-01 00:30:00', go: '2016-01-01 00:30:00 -0530 -0530', utc: '2016-01-01 06:00:00' },
  ];
  for (const c of cases) {
    it(c.stored, () => {
      assert.equal(formatLastBoot(c.stored), c.lastboot);
      assert.equal(goTimeString(c.stored, UTC_ZONE), c.go);
      assert.equal(formatUtc(c.stored), c.utc);
    });
  }
});

describe('formatStatus', () => {
  it('a full host', () => {
    assert.equal(
      formatStatus(running),
      [
        'Serial:              node-b',
        'IP:                  10.0.3.32',
        'IPMI:                10.0.9.32',
        'Provider ID:         rack-7',
        'Macs:                00:16:3e:a0:b7:df, 00:16:3e:a0:b7:e0',
        'Cabinet:             2',
        'Machine on Cabinet:  5',
        'Hostname:            00006811af601fe8',
        'MachineID:           00006811af601fe8e1d3f37902021ae0',
        'ConnectedNIC:        ens3',
        'Profile:             core',
        'DisableEngine:       true',
        'State:               "running"',
        'EtcdToken:           e94768ef0f948b0c2e53536d9c5eeb8f',
        'Metadata:            role-core=true, stack-compute=true',
        'CoreOS:              1010.5.0',
        'Mayu:                0.11.1',
        'Yochu:               0.19.1',
        'Docker:              1.10.3',
        'Etcd:                v2.2.5',
        'Fleet:               v0.11.3',
        'Rkt:                 v1.1.0',
        'K8s:                 v1.1.8',
        'LastBoot:            2015-10-08 19:14:36.227056826 +0200 +0200',
        'Enabled:             true',
      ].join('\n'),
    );
  });

  it('a minimal host: <nil> addresses, zero numbers, padded empty values', () => {
    const line = (label: string, value: string) => label + ' '.repeat(21 - label.length) + value;
    assert.equal(
      formatStatus(base({ Serial: 'x1' })),
      [
        line('Serial:', 'x1'),
        line('IP:', '<nil>'),
        line('IPMI:', '<nil>'),
        line('Provider ID:', ''),
        line('Macs:', ''),
        line('Cabinet:', '0'),
        line('Machine on Cabinet:', '0'),
        line('Hostname:', ''),
        line('MachineID:', ''),
        line('ConnectedNIC:', ''),
        line('Profile:', ''),
        line('DisableEngine:', 'false'),
        line('State:', '"unknown"'),
        line('EtcdToken:', ''),
        line('Metadata:', ''),
        line('CoreOS:', ''),
        line('Mayu:', ''),
        line('Yochu:', ''),
        line('Docker:', ''),
        line('Etcd:', ''),
        line('Fleet:', ''),
        line('Rkt:', ''),
        line('K8s:', ''),
        line('LastBoot:', '0001-01-01 00:00:00 +0000 UTC'),
        line('Enabled:', 'false'),
      ].join('\n'),
    );
  });
});

describe('formatHistory', () => {
  it('one line per commit: UTC time, short commit, message', () => {
    const commit = 'a'.repeat(8) + 'b'.repeat(32);
    assert.equal(
      formatHistory([
        { commit, time: '2024-03-01T12:00:05+01:00', message: 'node-a: updated state to running\n' },
        { commit: 'c'.repeat(40), time: '2024-03-01T10:00:00.5Z', message: 'node-a: host created' },
      ]),
      ['2024-03-01 11:00:05  aaaaaaaa  node-a: updated state to running', '2024-03-01 10:00:00  cccccccc  node-a: host created'].join('\n'),
    );
  });
  it('folds a multi-line message', () => {
    assert.equal(formatHistory([{ commit: 'd'.repeat(40), time: ZERO_TIME, message: 'x: a\n\nbody' }]), '0001-01-01 00:00:00  dddddddd  x: a body');
  });
  it('no commits: empty text', () => assert.equal(formatHistory([]), ''));
});

describe('request bodies', () => {
  const zero = '"ConnectedNIC":"","LastBoot":"0001-01-01T00:00:00Z"';
  const cases: { key: string; value: string; route: string; body: string }[] = [
    { key: 'metadata', value: '', route: 'set_metadata', body: '{"ConnectedNIC":"","FleetMetadata":[""],"LastBoot":"0001-01-01T00:00:00Z","State":"unknown"}' },
    { key: 'metadata', value: 'a=b,c=d', route: 'set_metadata', body: '{"ConnectedNIC":"","FleetMetadata":["a=b","c=d"],"LastBoot":"0001-01-01T00:00:00Z","State":"unknown"}' },
    { key: 'providerid', value: 'x<y', route: 'set_provider_id', body: `{"ProviderId":"x\\u003cy",${zero},"State":"unknown"}` },
    { key: 'ipmiaddr', value: '10.0.0.5', route: 'set_ipmi_addr', body: `{"IPMIAddr":"10.0.0.5",${zero},"State":"unknown"}` },
    { key: 'cabinet', value: '101', route: 'set_cabinet', body: `{"Cabinet":101,${zero},"State":"unknown"}` },
    { key: 'cabinet', value: '0', route: 'set_cabinet', body: `{${zero},"State":"unknown"}` },
    { key: 'state', value: 'configured', route: 'set_state', body: `{${zero},"State":"configured"}` },
    { key: 'etcdtoken', value: 'e9', route: 'set_etcd_cluster_token', body: `{${zero},"EtcdClusterToken":"e9","State":"unknown"}` },
  ];
  for (const c of cases) {
    it(`set ${c.key} ${c.value}`, () => assert.deepEqual(setRequest(c.key, c.value), { route: c.route, body: c.body }));
  }
  it('the 0.11 example body', () =>
    assert.equal(setRequest('metadata', 'a=b').body, '{"ConnectedNIC":"","FleetMetadata":["a=b"],"LastBoot":"0001-01-01T00:00:00Z","State":"unknown"}'));

  const bad: { key: string; value: string; message: string }[] = [
    { key: 'color', value: 'red', message: "setting key with name 'color' is not supported" },
    { key: 'cabinet', value: '-1', message: "invalid cabinet '-1': expected an unsigned integer" },
    { key: 'cabinet', value: '1.5', message: "invalid cabinet '1.5': expected an unsigned integer" },
    { key: 'state', value: 'broken', message: "invalid state 'broken': expected one of unknown, configured, installing, installed, running" },
    { key: 'ipmiaddr', value: '10.0.0', message: "invalid IP address '10.0.0'" },
  ];
  for (const b of bad) {
    it(`refuses set ${b.key} ${b.value}`, () => assert.throws(() => setRequest(b.key, b.value), new InvalidSetError(b.message)));
  }

  it('override', () =>
    assert.deepEqual(overrideRequest('docker_version', '1.12'), {
      route: 'override',
      body: `{${zero},"Overrides":{"docker_version":"1.12"},"State":"unknown"}`,
    }));

  it('boot-complete without and with versions', () => {
    const env = { SERIAL: 's1', MAYU_VERSION: '0.12.0', DOCKER_VERSION: '1.10.3' };
    const os = { ID: 'coreos', VERSION: '1010.5.0', VERSION_ID: '1010.5.0' };
    assert.equal(bootCompleteRequest(env, os, false).body, hostBody());
    assert.equal(
      bootCompleteRequest(env, os, true).body,
      `{${zero},"State":"unknown","CoreOSVersion":"1010.5.0","MayuVersion":"0.12.0","DockerVersion":"1.10.3"}`,
    );
  });
});

describe('parseEnvFile', () => {
  it('reads KEY=VALUE lines like godotenv', () => {
    const text = [
      '# comment',
      '',
      'NAME="Container Linux by CoreOS"',
      'VERSION_ID=1010.5.0',
      "export SERIAL='ABC 123'",
      'MAYU_VERSION=0.12.0 # inline',
      'QUOTED="a \\"b\\""',
      'broken line',
    ].join('\n');
    assert.deepEqual(parseEnvFile(text), {
      NAME: 'Container Linux by CoreOS',
      VERSION_ID: '1010.5.0',
      SERIAL: 'ABC 123',
      MAYU_VERSION: '0.12.0',
      QUOTED: 'a "b"',
    });
  });
});
