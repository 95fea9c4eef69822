/**
 * Watches the router's route for the VIP while a node fails or drains:
 * reads its members every `intervalMs` (10 ms by default; a read is one or
 * two `ip` runs) and keeps each change with the time it was seen.
 */

export interface RouteSample {
  /** Epoch ms of the read that saw it. */
  at: number;
  gateways: string[];
}

export class RouteWatch {
  readonly changes: RouteSample[] = [];
  private running = false;
  private loop: Promise<void> = Promise.resolve();

  constructor(
    private readonly read: () => Promise<string[]>,
    private readonly intervalMs = 10,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const t = Date.now();
        try {
          const gateways = await this.read();
          const last = this.changes.at(-1);
          if (!last || last.gateways.join(',') !== gateways.join(','))
            this.changes.push({ at: Date.now(), gateways });
        } catch {
          // a read that failed (router busy): the next one counts
        }
        await new Promise((r) => setTimeout(r, Math.max(1, this.intervalMs - (Date.now() - t))));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** When the route was first seen without `gateway` at or after `since` (epoch ms); null if never. */
  firstWithout(gateway: string, since: number): number | null {
    const before = this.changes.filter((c) => c.at < since).at(-1);
    if (before && !before.gateways.includes(gateway)) return since;
    for (const c of this.changes) if (c.at >= since && !c.gateways.includes(gateway)) return c.at;
    return null;
  }
}
