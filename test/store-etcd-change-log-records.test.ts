import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeLog, encodeLog } from '../src/store/etcd/change-log.ts';

// The change log's records changes (admission records, inventory): what the history writer
// commits into _admission/ and _config/, so anything mayu would not write is refused whole.

const record = (serial: string) => JSON.stringify({ Serial: serial, Status: 'pending', Mode: 'approve', FirstSeen: '2026-12-02T01:00:00Z', MacAddresses: [], Source: '' });
const change = (records: unknown) => encodeLog([{ serial: 'p-1', message: 'pending approval (approve mode)', time: '2026-12-02T01:00:00Z', conf: null, records } as never]);

describe('change log: records changes', () => {
  it('takes mayu\'s own records changes', () => {
    const [e] = decodeLog(change([{ folder: '_admission', name: 'p-1.json', content: record('p-1') }, { folder: '_config', name: 'inventory.yaml', content: 'p-1: {}\n' }]));
    assert.deepEqual(e!.records!.map((r) => r.name), ['p-1.json', 'inventory.yaml']);
    assert.equal(decodeLog(change([{ folder: '_admission', name: 'p-1.json', content: null }]))[0]!.records![0]!.content, null);
  });

  it('refuses records outside the reserved folders, path names, and admission records mayu would not write', () => {
    for (const [records, why] of [
      [[{ folder: 'p-1', name: 'conf.json', content: '{}' }], /bad records/],
      [[{ folder: '_admission', name: '../p-1/conf.json', content: record('p-1') }], /bad records/],
      [[{ folder: '_admission', name: 'p-1.json', content: '{not json' }], /bad admission record p-1\.json/],
      [[{ folder: '_admission', name: 'p-1.json', content: record('other') }], /bad admission record p-1\.json/],
      ['x', /bad records/],
    ] as const) assert.throws(() => decodeLog(change(records)), why);
  });
});
