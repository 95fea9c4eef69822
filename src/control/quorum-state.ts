/**
 * keepalived's quorum state of each service: the total weight in force of
 * its UP real servers against `quorum`, with `hysteresis` so that a service
 * on the edge does not flap. A service starts UP; it loses its quorum when
 * the total falls below quorum - hysteresis (or to 0) and gains it back at
 * quorum + hysteresis. The transitions run quorum_up / quorum_down and put
 * the sorry server in or out.
 */
import { addressKey } from '../wire/address.js';
import type { ServiceSpec } from './model.js';

/** A service's identity: the protocol, VIP and port. */
export const quorumKey = (s: Pick<ServiceSpec, 'protocol' | 'vip' | 'vport'>): string =>
  `${s.protocol} ${addressKey(s.vip)}:${s.vport}`;

export type QuorumTransition = 'up' | 'down';

export class QuorumStates {
  private readonly up = new Map<string, boolean>();

  /** True while the service `key` holds its quorum (and before its first evaluation). */
  isUp(key: string): boolean {
    return this.up.get(key) ?? true;
  }

  /** Records the service's total weight in force; returns the transition it made, if any. */
  evaluate(key: string, spec: ServiceSpec, weightSum: number): QuorumTransition | undefined {
    const wasUp = this.isUp(key);
    const hysteresis = spec.hysteresis ?? 0;
    const threshold = spec.quorum + (wasUp ? -hysteresis : hysteresis);
    if (!wasUp && weightSum >= threshold) {
      this.up.set(key, true);
      return 'up';
    }
    if (wasUp && (weightSum === 0 || weightSum < threshold)) {
      this.up.set(key, false);
      return 'down';
    }
    this.up.set(key, wasUp);
    return undefined;
  }

  /** A service the reload removed. */
  forget(key: string): void {
    this.up.delete(key);
  }
}
