import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Step } from '../src/core/host-changes.ts';
import { MayuService } from '../src/service/mayu-service.ts';
import { MemoryStore } from '../src/store/memory-store.ts';
import { PendingBySerial } from '../src/store/pending-by-serial.ts';

/** A memory store whose writes become durable only when the test releases them. */
class HeldStore extends MemoryStore {
  private readonly pending = new PendingBySerial();
  private gate: Promise<void> = Promise.resolve();

  /** From now on, writes wait; the returned function lets them land. */
  hold(): () => void {
    let release!: () => void;
    this.gate = new Promise<void>((r) => (release = r));
    return release;
  }

  override apply(serial: string, steps: readonly Step[]) {
    const applied = super.apply(serial, steps); // memory changes at once, as the contract says
    return this.pending.track(serial, this.gate.then(() => applied));
  }

  override settled() { return this.gate; }
  override settledFor(serial: string) { return this.pending.settled(serial); }
}

const MAC_H2 = '52:54:00:00:00:02';
/** Which of the two settles first: the read, or a timer long after any read that need not wait. */
const answersBeforeRelease = (read: Promise<unknown>) =>
  Promise.race([read.then(() => 'answered'), new Promise((r) => setTimeout(() => r('still waiting'), 100))]);

function setup() {
  const store = new HeldStore();
  const service = new MayuService({ store, profiles: [], ipRange: { start: '10.1.0.1', end: '10.1.0.99' }, randomBytes: (n) => randomBytes(n), bootTime: () => '2026-01-01T00:00:00Z' });
  return { store, service };
}

describe('service reads wait for the host they read, not for every pending write', () => {
  it('get() and the boot lookup of a host answer while another host\'s change is pending', async () => {
    const { store, service } = setup();
    await service.registerAndRender('h1', () => '');
    const release = store.hold();
    const h2Change = service.registerAndRender('h2', () => '');
    assert.equal(await answersBeforeRelease(service.get('h1')), 'answered');
    assert.equal(await answersBeforeRelease(service.findBootHost({ serial: 'h1' })), 'answered');
    assert.equal(await answersBeforeRelease(service.findBootHost({ serial: 'never-seen', mac: '52-54-00-99-99-99' })), 'answered', 'an unknown machine waits for nothing');
    release();
    await h2Change;
  });

  it('a read of the host being changed waits until its change is durable, and then shows it', async () => {
    const { store, service } = setup();
    await service.registerAndRender('h2', () => '');
    const release = store.hold();
    const change = service.recordHostData({ Serial: 'h2', NetDevs: [{ Name: 'eth0', MacAddress: MAC_H2 }], IPMIAddress: '', ConnectedNIC: 'eth0' }, () => '');
    const byMac = service.findBootHost({ serial: 'To be filled by O.E.M.', mac: '52-54-00-00-00-02' });
    const bySerial = service.get('h2');
    assert.equal(await answersBeforeRelease(bySerial), 'still waiting');
    assert.equal(await answersBeforeRelease(byMac), 'still waiting', 'found by MAC: waits for that host too');
    release();
    await change;
    assert.deepEqual((await bySerial)?.MacAddresses, [MAC_H2]);
    assert.equal((await byMac)?.Serial, 'h2');
  });
});
