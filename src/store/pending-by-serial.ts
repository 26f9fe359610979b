// Which hosts have changes that are applied in memory but not yet durable. A read about one
// host waits for that host's own writes only, not for every batch in flight: during a boot
// storm a machine's boot script is not held up by a thousand other machines' commits.

export class PendingBySerial {
  private readonly latest = new Map<string, Promise<void>>();

  /**
   * Tracks a write of `serial` and hands it back; batches land in order, so the newest write of
   * a host stands for all before it.
   */
  track<T>(serial: string, write: Promise<T>): Promise<T> {
    const done = write.then(() => undefined, () => undefined);
    this.latest.set(serial, done);
    void done.then(() => {
      if (this.latest.get(serial) === done) this.latest.delete(serial);
    });
    return write;
  }

  /** Hosts with writes not yet durable. */
  serials(): IterableIterator<string> {
    return this.latest.keys();
  }

  /** Resolves once every write of `serial` tracked so far is durable (or failed and rolled back). */
  settled(serial: string): Promise<void> {
    return this.latest.get(serial) ?? Promise.resolve();
  }
}
