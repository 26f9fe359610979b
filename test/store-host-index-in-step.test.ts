import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { allocateAddress } from '../src/core/addresses.ts';
import { encodeHost, newHost, type Host } from '../src/core/host.ts';
import { countByProfile } from '../src/core/profiles.ts';
import { EtcdStore } from '../src/store/etcd-store.ts';
import { FileStore } from '../src/store/file-store.ts';
import { GitStore } from '../src/store/git-store.ts';
import { MemoryStore } from '../src/store/memory-store.ts';
import type { HostStore } from '../src/store/store.ts';
import { startEtcdCluster, type EtcdCluster } from './helpers/etcd-cluster.ts';
import { until } from './helpers/etcd.ts';
import { git } from './helpers/git.ts';
import { tempDir } from './helpers/mayu-process.ts';

// The host index (free address, profile counts, MAC → serial) answers what a scan of the store's
// hosts answers, in every store and through every way hosts change: mayu's own changes,
// removals, an operator's commit taken in (git), another replica's changes seen through etcd's
// watch. New registrations rely on it (core/host-changes.ts).

const RANGE = { start: '10.9.0.1', end: '10.9.0.200' };

function assertInStep(store: HostStore, what: string): void {
  const hosts = [...store.scan()];
  const index = store.index();
  assert.equal(index.lowestFreeAddress(RANGE), allocateAddress(RANGE, hosts.map((h) => h.InternalAddr)), `${what}: lowest free address`);
  assert.deepEqual(new Map([...index.profileCounts()].sort()), new Map([...countByProfile(hosts)].sort()), `${what}: profile counts`);
  for (const h of hosts) for (const mac of h.MacAddresses ?? []) assert.equal(index.serialByMac(mac), h.Serial, `${what}: ${mac}`);
  assert.equal(index.serialByMac('52:54:00:ff:ff:ff'), undefined);
}

const host = (serial: string, addr: string, profile: string, mac: string): Host =>
  ({ ...newHost(serial), InternalAddr: addr, Profile: profile, MacAddresses: [mac] });

/** Creates, changes (address, profile, MAC) and removes hosts through `store`, checking after each. */
async function exercise(store: HostStore, check: (what: string) => Promise<void> | void): Promise<void> {
  for (let i = 1; i <= 6; i++) {
    await store.apply(`h-${i}`, [{ message: 'host created', host: host(`h-${i}`, `10.9.0.${i}`, i % 2 ? 'core' : 'default', `52:54:00:00:09:0${i}`) }]);
    await check(`after creating h-${i}`);
  }
  await store.apply('h-2', [{ message: 'updated', host: host('h-2', '10.9.0.50', 'core', '52:54:00:00:09:22') }]);
  await check('after changing h-2');
  await store.remove('h-1', 'host removed');
  await check('after removing h-1');
}

test('memory and file stores', async () => {
  const memory = new MemoryStore();
  await exercise(memory, (what) => assertInStep(memory, `memory ${what}`));
  const files = await FileStore.open({ dir: await tempDir(), randomBytes: (n) => randomBytes(n) });
  await exercise(files, (what) => assertInStep(files, `files ${what}`));
});

test('git store, an operator\'s commit taken in, and after reopening', async () => {
  const dir = await tempDir();
  const store = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n), outsideCheckMs: 50 });
  try {
    await exercise(store, (what) => assertInStep(store, `git ${what}`));
    await store.flushHistory();
    // As an operator's git status would: the index mayu keeps is written once changes stop.
    await until('git status to be clean', 10_000, async () => (git(dir, 'status', '--porcelain') === '' ? true : undefined));
    // An operator moves h-3 to another address and profile, with a commit of their own.
    const conf = path.join(dir, 'h-3', 'conf.json');
    writeFileSync(conf, encodeHost(host('h-3', '10.9.0.1', 'default', '52:54:00:00:09:33')));
    git(dir, '-c', 'user.name=op', '-c', 'user.email=op@x', 'commit', '-qam', 'h-3: moved by hand');
    await until('the commit to be taken', 10_000, async () => (store.get('h-3')?.InternalAddr === '10.9.0.1' ? true : undefined));
    assertInStep(store, 'git after the operator\'s commit');
    assert.equal(store.index().serialByMac('52:54:00:00:09:03'), undefined, 'the MAC h-3 no longer has');
  } finally {
    await store.close();
  }
  const reopened = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n) });
  try {
    assertInStep(reopened, 'git reopened');
  } finally {
    await reopened.close();
  }
});

let cluster: EtcdCluster | undefined;
after(async () => {
  await cluster?.stop();
});

test('etcd store: the other replica\'s index follows through the watch', async () => {
  cluster = await startEtcdCluster(await tempDir('mayu-etcd-index-'), 1);
  const history = await tempDir();
  const open = async () => {
    const client = new Etcd3({ hosts: cluster!.endpoints });
    const store = await EtcdStore.open({
      client, endpoints: cluster!.endpoints, prefix: '/mayu-index/', historyDir: history, limitedProfiles: new Set(), randomBytes: (n) => randomBytes(n),
    });
    store.own(() => client.close());
    return store;
  };
  const a = await open();
  const b = await open();
  try {
    const sameAsA = (what: string) => until(`replica B to see ${what}`, 10_000, async () => {
      const mine = [...b.scan()].map((h) => encodeHost(h)).sort().join();
      const theirs = [...a.scan()].map((h) => encodeHost(h)).sort().join();
      return mine === theirs ? true : undefined;
    });
    await exercise(a, async (what) => {
      assertInStep(a, `etcd writer ${what}`);
      await sameAsA(what);
      assertInStep(b, `etcd other replica ${what}`);
    });
  } finally {
    await a.close();
    await b.close();
  }
});
