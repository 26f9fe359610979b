import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decodeToken, encodeToken, EtcdError, EVENT_HISTORY, eventSince, getNode, keyPath, MAX_MEMBERS, newToken, parseMemberId, parseSize, put, remove,
} from '../src/discovery/registry.ts';

// The pure core of the etcd discovery service: etcd v2's answers and events for one token.

const T = 'a'.repeat(32);
const member = (id: string) => ({ kind: 'member' as const, id });
const dir = keyPath(T, { kind: 'dir' });

function etcdError(fn: () => unknown): EtcdError {
  try {
    fn();
  } catch (err) {
    if (err instanceof EtcdError) return err;
    throw err;
  }
  assert.fail('expected an EtcdError');
}

describe('discovery registry', () => {
  it('a new token has its size at _config/size and no members', () => {
    const s = newToken(T, 3);
    assert.equal(s.index, 2);
    assert.deepEqual(getNode(s, { kind: 'size' }), { key: `/_etcd/registry/${T}/_config/size`, value: '3', modifiedIndex: 2, createdIndex: 2 });
    assert.deepEqual(getNode(s, { kind: 'dir' }), { key: dir, dir: true, modifiedIndex: 1, createdIndex: 1 });
  });

  it('create, set, update and delete answer as etcd v2 does', () => {
    let s = newToken(T, 3);
    const created = put(s, member('m1'), 'n1=http://a:2380', false);
    assert.equal(created.status, 201);
    assert.deepEqual(created.event, { action: 'create', node: { key: `${dir}/m1`, value: 'n1=http://a:2380', modifiedIndex: 3, createdIndex: 3 } });
    s = created.state;
    const dup = etcdError(() => put(s, member('m1'), 'x', false));
    assert.deepEqual(dup.body(), { errorCode: 105, message: 'Key already exists', cause: `${dir}/m1`, index: 3 });
    assert.equal(dup.status, 412);
    const set = put(s, member('m1'), 'n1=http://b:2380');
    assert.equal(set.status, 200);
    assert.equal(set.event.action, 'set');
    assert.equal(set.event.node.createdIndex, 4, 'set replaces the node');
    assert.equal(set.event.prevNode?.value, 'n1=http://a:2380');
    const upd = put(set.state, member('m1'), 'v', true);
    assert.equal(upd.event.action, 'update');
    assert.equal(upd.event.node.createdIndex, 4, 'update keeps createdIndex');
    assert.equal(etcdError(() => put(s, member('nope'), 'v', true)).body().errorCode, 100);
    const del = remove(upd.state, member('m1'));
    assert.deepEqual(del.event.node, { key: `${dir}/m1`, modifiedIndex: 6, createdIndex: 4 });
    assert.equal(del.state.members.length, 0);
    assert.deepEqual(etcdError(() => remove(del.state, member('m1'))).body(), { errorCode: 100, message: 'Key not found', cause: `${dir}/m1`, index: 6 });
  });

  it('lists members in creation order, _config hidden', () => {
    let s = newToken(T, 3);
    for (const id of ['zz', 'aa', 'mm']) s = put(s, member(id), `${id}=http://x`).state;
    assert.deepEqual(getNode(s, { kind: 'dir' }).nodes!.map((n) => n.key.split('/').at(-1)), ['zz', 'aa', 'mm']);
  });

  it('watches: history from waitIndex, recursive skips hidden keys, cleared history is error 401', () => {
    let s = newToken(T, 3);
    s = put(s, member('m1'), 'a').state; // 3
    s = put(s, { kind: 'size' }, '5').state; // 4
    s = put(s, member('m2'), 'b').state; // 5
    assert.equal((eventSince(s, dir, true, 3) as { node: { key: string } }).node.key, `${dir}/m1`);
    assert.equal((eventSince(s, dir, true, 4) as { node: { key: string } }).node.key, `${dir}/m2`, 'the size change is hidden');
    assert.equal(eventSince(s, `${dir}/_config/size`, false, 3) !== 'none', true, 'a watch on the size key itself sees it');
    assert.equal(eventSince(s, dir, true, 6), 'none');
    assert.equal(eventSince(s, dir, false, 3), 'none', 'a non-recursive watch on the token sees no member');
    for (let i = 0; i < EVENT_HISTORY + 5; i++) s = put(s, member('m1'), String(i)).state;
    assert.equal(s.events.length, EVENT_HISTORY);
    const cleared = etcdError(() => eventSince(s, dir, true, 3));
    assert.equal(cleared.body().errorCode, 401);
    assert.equal(cleared.status, 400);
  });

  it('refuses bad sizes, bad member keys, long values and too many members', () => {
    for (const bad of ['', 'abc', '0', '-1', '1.5', '65', '99999999', ' 3']) assert.throws(() => parseSize(bad), /bad size/, bad);
    assert.equal(parseSize('64'), 64);
    for (const bad of ['..', '.', 'a/b', 'a\0b', '_config', '_x', 'x'.repeat(65), '', 'a b']) assert.throws(() => parseMemberId(bad), EtcdError, JSON.stringify(bad));
    assert.equal(parseMemberId('8e9e05c52164694d'), '8e9e05c52164694d');
    const s = newToken(T, 3);
    assert.equal(etcdError(() => put(s, { kind: 'size' }, 'lots')).body().errorCode, 209);
    assert.equal(etcdError(() => put(s, member('m'), 'x'.repeat(2049))).status, 400);
    let full = s;
    for (let i = 0; i < MAX_MEMBERS; i++) full = put(full, member(`m${i}`), 'v').state;
    assert.equal(etcdError(() => put(full, member('one-more'), 'v')).status, 409);
    assert.equal(put(full, member('m0'), 'w').status, 200, 'an existing member may still change');
  });

  it('token files round-trip and refuse what is not one', () => {
    const s = put(newToken(T, 3), member('m1'), 'a').state;
    assert.deepEqual(decodeToken(encodeToken(s), T), s);
    assert.throws(() => decodeToken(encodeToken(s), 'b'.repeat(32)), /names token/);
    assert.throws(() => decodeToken('{"version":1}', T), /names token/);
    assert.throws(() => decodeToken(JSON.stringify({ ...JSON.parse(encodeToken(s)), members: [{ id: '../x', value: '', createdIndex: 1, modifiedIndex: 1 }] }), T), /bad members/);
  });
});
