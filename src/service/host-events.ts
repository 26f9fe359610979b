import type { HostChangeEvent } from './mayu-service.ts';

/**
 * Fans every durable host change out to its subscribers (the /admin/events streams). One per
 * server, made in the composition root; a subscriber that throws is its own problem.
 */
export class HostEventHub {
  private readonly listeners = new Set<(event: HostChangeEvent) => void>();

  publish(event: HostChangeEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // A broken stream must not keep the change from the others (or from the writer).
      }
    }
  }

  /** Returns the function that unsubscribes. */
  subscribe(listener: (event: HostChangeEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  get subscribers(): number {
    return this.listeners.size;
  }
}
