import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LogEntry } from '../src/store/etcd/change-log.ts';
import { isUncommittedId, UncommittedLog } from '../src/store/etcd/uncommitted-log.ts';

// The changes a replica shows on top of git's history while git trails etcd's log: dropped at
// the same positions as the history writer's trailers, so none shows twice.

const entry = (serial: string, message: string, conf: string | null = `{"Serial":"${serial}"}`): LogEntry => ({ serial, message, time: '2026-12-02T01:02:03.456Z', conf });

describe('uncommitted changes of the etcd store\'s history', () => {
  it('lists a host\'s changes newest first, marked, and drops what git has by its trailer position', () => {
    const log = new UncommittedLog();
    log.add(10, [entry('a', 'host created'), entry('b', 'host created'), entry('a', 'updated host InternalAddr')]);
    log.add(12, [entry('a', 'host deleted', null)]);
    log.add(13, [{ ...entry('a', 'approved (profile core)', null), records: [{ folder: '_admission', name: 'a.json', content: null }] }]);
    assert.deepEqual(log.forSerial('a').map((c) => [c.commit, c.message, c.uncommitted, c.time]), [
      ['etcd-13-1', 'a: approved (profile core)', true, '2026-12-02T01:02:03Z'],
      ['etcd-12-1', 'a: host deleted', true, '2026-12-02T01:02:03Z'],
      ['etcd-10-3', 'a: updated host InternalAddr', true, '2026-12-02T01:02:03Z'],
      ['etcd-10-1', 'a: host created', true, '2026-12-02T01:02:03Z'],
    ]);
    assert.equal(log.confOf('a', 'etcd-10-3'), '{"Serial":"a"}');
    assert.equal(log.confOf('a', 'etcd-13-1'), undefined, 'a records change has no conf.json');
    // git has revision 10 up to its 2nd change: a's first change goes, its second stays.
    log.prune({ revision: 10, index: 1, count: 3 });
    assert.deepEqual(log.forSerial('a').map((c) => c.commit), ['etcd-13-1', 'etcd-12-1', 'etcd-10-3']);
    assert.deepEqual(log.forSerial('b'), []);
    log.prune({ revision: 12, index: 0, count: 1 });
    assert.deepEqual(log.forSerial('a').map((c) => c.commit), ['etcd-13-1']);
    log.prune(undefined);
    assert.equal(log.size, 1);
    log.clear(true);
    assert.equal(log.size, 0);
    assert.equal(log.dropped, 1);
  });

  it('starts within a revision where git stopped, and tells its ids from commit ids', () => {
    const log = new UncommittedLog();
    log.add(7, [entry('a', 'one'), entry('a', 'two'), entry('a', 'three')], 2);
    assert.deepEqual(log.forSerial('a').map((c) => c.commit), ['etcd-7-3']);
    assert.ok(isUncommittedId('etcd-7-3'));
    assert.ok(!isUncommittedId('0123456789abcdef0123456789abcdef01234567'));
    assert.ok(!isUncommittedId('etcd-7-3/../x'));
  });
});
