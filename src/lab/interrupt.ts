/**
 * A lab's teardown on every way out: at process exit the synchronous part
 * (namespaces deleted, lock released), on SIGINT/SIGTERM the whole of it
 * and an exit with the signal's status (130, 143), and at a normal end the
 * whole of it unless a signal is already doing it. Both labs (scenarios
 * and cluster) build namespaces, a receiver and a lock the same way.
 */
export class LabInterrupt {
  /** The signal that is tearing the lab down, if one came. */
  signal: NodeJS.Signals | undefined;
  private readonly onExit = (): void => this.teardownSync();
  private readonly onSignal = (sig: NodeJS.Signals): void => {
    if (this.signal) return;
    this.signal = sig;
    this.log(`${this.label}: ${sig}: tearing down`);
    void this.teardown().then(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };

  constructor(
    private readonly label: string,
    private readonly log: (line: string) => void,
    private readonly teardownSync: () => void,
    private readonly teardown: () => Promise<void>,
  ) {
    process.on('exit', this.onExit);
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
  }

  /** The normal end: the whole teardown (unless a signal runs it), then the handlers go. */
  async finish(): Promise<void> {
    if (!this.signal) await this.teardown();
    process.off('exit', this.onExit);
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
  }
}
