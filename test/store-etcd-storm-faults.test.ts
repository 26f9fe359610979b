import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { Etcd3 } from 'etcd3';
import { startEtcdCluster, type EtcdCluster } from './helpers/etcd-cluster.ts';
import { until } from './helpers/etcd.ts';
import { compareHistory, etcdConfs, historyWriterId, isLinear } from './helpers/etcd-history.ts';
import { gitFsckSettled } from './helpers/storm-checks.ts';
import { checkAcks, checkFinalHosts, gitHeadConfs, gitSubjectCounts } from './helpers/storm-checks.ts';
import { FailoverTarget, getJson, runStorm, serialFor, type StormResult } from './helpers/storm-client.ts';
import { prepareStormEnv, PROFILE_QUANTITIES, startMayuServer, type MayuServer, type StormEnv } from './helpers/storm-env.ts';

// Faults during a storm of simulated machines (the whole 0.11 protocol, retrying connection errors
// and 503 as installers do) over three real `mayu serve --store etcd` replicas and a real
// three-member etcd 3.4 cluster on loopback: kill -9 of a replica that does not write history, of
// the history writer, of the etcd leader. The machines of a killed replica move to the next
// replica's URL when theirs stops answering. Afterwards: every acknowledged change is in etcd and
// in git, git has one commit per etcd change in revision order (no gap, none twice), the history
// is linear and `git fsck --full` clean, etcd and git HEAD hold the same hosts.

const MACHINES_PER_STORM = 150;
/** Acknowledged changes per machine (storm-client's Ack routes). */
const ACKS_PER_MACHINE = 4;

describe('etcd store: kill -9 during a storm (3 replicas, real 3-member etcd 3.4)', () => {
  let cluster: EtcdCluster;
  let env: StormEnv;
  let client: Etcd3;
  const replicas: { id: string; server: MayuServer; killed?: boolean }[] = [];
  let storms = 0;
  let nextId = 0;

  const startReplica = async () => {
    const id = `r${nextId++}`;
    const server = await startMayuServer(env, ['--store', 'etcd', '--etcd-store-endpoints', cluster.endpoints.join(','), '--replica-id', id]);
    replicas.push({ id, server });
  };
  const alive = () => replicas.filter((r) => !r.killed);

  /** One storm of MACHINES_PER_STORM new machines over the live replicas; `fault` runs once, after 30 % of the acknowledged changes. */
  const storm = async (fault: () => Promise<void>): Promise<{ results: StormResult[]; ids: string[] }> => {
    const live = alive();
    const urls = live.map((r) => r.server.url);
    const first = storms++ * MACHINES_PER_STORM;
    const per = Math.ceil(MACHINES_PER_STORM / live.length);
    let acked = 0;
    let faulted: Promise<void> | undefined;
    const onAck = () => {
      if (++acked === Math.round(MACHINES_PER_STORM * ACKS_PER_MACHINE * 0.3)) faulted = fault();
    };
    const results = await Promise.all(live.map((_, i) => runStorm(new FailoverTarget([...urls.slice(i), ...urls.slice(0, i)]), {
      machines: Math.min(per, MACHINES_PER_STORM - i * per), firstIndex: first + i * per, concurrency: 16, maxAttempts: 80, requestTimeoutMs: 20_000, onAck,
    })));
    assert.ok(faulted, 'the fault ran during the storm');
    await faulted;
    return { results, ids: live.map((r) => r.id) };
  };

  /** Everything the storms so far acknowledged, checked against etcd, git and a live replica. */
  const checkAfter = async (t: TestContext, results: StormResult[]) => {
    for (const r of results) assert.deepEqual([...r.failures], [], 'every machine finished');
    const retried = results.flatMap((r) => [...r.retries]).reduce<Record<string, number>>((o, [k, v]) => ({ ...o, [k]: (o[k] ?? 0) + v }), {});
    t.diagnostic(`retried attempts: ${JSON.stringify(retried)}`);
    const serials = Array.from({ length: storms * MACHINES_PER_STORM }, (_, i) => serialFor(i));
    const history = await compareHistory(client, env.clusterDir, 60_000);
    assert.deepEqual(history.violations, [], 'git: one commit per etcd change, in revision order, none twice');
    t.diagnostic(`${history.commits} commits, each an etcd change`);
    assert.ok(await isLinear(env.clusterDir), 'history linear');
    const fsck = gitFsckSettled(env.clusterDir);
    assert.ok(fsck.ok, fsck.output);
    const acks = results.flatMap((r) => r.acks);
    assert.equal(acks.length, MACHINES_PER_STORM * ACKS_PER_MACHINE);
    const subjects = gitSubjectCounts(env.clusterDir);
    const inEtcd = await etcdConfs(client);
    assert.deepEqual(checkAcks(acks, new Map(serials.map((s) => [s, inEtcd.get(s) ?? null])), subjects), [], 'every acknowledged change in etcd');
    const head = gitHeadConfs(env.clusterDir, serials);
    assert.deepEqual(checkAcks(acks, head, subjects), [], 'every acknowledged change in git');
    for (const s of serials) assert.deepEqual(head.get(s), inEtcd.get(s), `${s}: git HEAD = etcd`);
    for (const r of alive()) {
      const api = await until(`${r.id} to list every host`, 10_000, async () => {
        const hosts = await getJson<Record<string, unknown>[]>(`${r.server.url}/admin/hosts`);
        return hosts.length === serials.length ? hosts : undefined;
      });
      assert.deepEqual(checkFinalHosts(api, head, serials, PROFILE_QUANTITIES), [], `${r.id}: hosts = git HEAD, addresses unique, quantities held`);
    }
  };

  before(async () => {
    env = await prepareStormEnv(3 * MACHINES_PER_STORM, 'mayu-etcd-faults-');
    cluster = await startEtcdCluster(path.join(env.workDir, 'etcd'));
    client = new Etcd3({ hosts: cluster.endpoints });
    // The first alone: it makes cluster.json in etcd, the report key and the audit repo.
    await startReplica();
    await Promise.all([startReplica(), startReplica()]);
    await until('a history writer to be elected', 20_000, () => historyWriterId(client));
  });
  after(async () => {
    client?.close();
    for (const r of replicas) await r.server.kill9().catch(() => undefined);
    await cluster?.stop();
    if (env) await rm(env.workDir, { recursive: true, force: true });
  });

  it('kill -9 of a replica that does not write history: its machines go on at another, nothing acknowledged is lost', async (t) => {
    const writer = await historyWriterId(client);
    let victim: string | undefined;
    const { results, ids } = await storm(async () => {
      const r = alive().find((x) => x.id !== writer)!;
      victim = r.id;
      r.killed = true;
      await r.server.kill9();
    });
    assert.ok(victim);
    const theirs = results[ids.indexOf(victim)]!;
    assert.ok(theirs.retries.size > 0, 'the killed replica\'s machines saw it go');
    await checkAfter(t, results);
    assert.equal(await historyWriterId(client), writer, 'the writer stayed');
    await startReplica();
  });

  it('kill -9 of the history writer: another replica is elected and continues, no gap, no commit twice', async (t) => {
    let victim: string | undefined;
    const { results } = await storm(async () => {
      const id = await historyWriterId(client);
      const r = alive().find((x) => x.id === id)!;
      victim = r.id;
      r.killed = true;
      await r.server.kill9();
    });
    const next = await until('another history writer', 20_000, async () => {
      const id = await historyWriterId(client);
      return id && id !== victim ? id : undefined;
    });
    assert.ok(alive().some((r) => r.id === next), `${next} is a live replica`);
    await checkAfter(t, results);
    await startReplica();
  });

  it('kill -9 of the etcd leader: the replicas go on with two members, nothing acknowledged is lost', async (t) => {
    let killed: string | undefined;
    const { results } = await storm(async () => {
      const status = await client.maintenance.status();
      killed = await leaderName(cluster, String(status.leader));
      assert.ok(killed, `the leader (member id ${status.leader}) is one of the three`);
      await cluster.kill9(killed);
    });
    assert.ok(killed);
    t.diagnostic(`killed etcd member ${killed}`);
    await checkAfter(t, results);
    await cluster.restart(killed);
  });
});

/** The name of the member whose id is `leaderId` (each member answers its own id in its status). */
async function leaderName(cluster: EtcdCluster, leaderId: string): Promise<string | undefined> {
  for (const m of cluster.members) {
    const c = new Etcd3({ hosts: [m.clientUrl] });
    try {
      const s = await c.maintenance.status();
      if (String(s.header.member_id) === leaderId) return m.name;
    } catch {
      /* a member that does not answer is not the leader */
    } finally {
      c.close();
    }
  }
  return undefined;
}
