import type { HostNetwork } from '../io/host.js';
import type { Logger } from './log.js';

/**
 * The routes this process put into its device (VIPs, LIPs, sync peers'
 * LIP prefixes), kept equal to a wanted set: added with `ip route
 * replace` (a predecessor's are taken over), removed when no longer
 * wanted, all removed by a real stop, forgotten (left in place) when a
 * handover's successor takes the device. The same for the rules that
 * steer NAT services' replies into it (one per real server address:port,
 * `RIP|RPORT`).
 */
export class DeviceRoutes {
  private readonly routes = new Set<string>();
  private readonly natRules = new Set<string>();
  /** net.ipv6.conf.all.forwarding set (the first IPv6 prefix routed into the device). */
  private ipv6Forwarding = false;

  constructor(
    private readonly host: HostNetwork,
    private readonly log: Logger,
    /** The device's name, read at each change (the config's `interface`). */
    private readonly device: () => string,
  ) {}

  /** Makes the device's routes exactly `want`. */
  sync(want: ReadonlySet<string>): void {
    if (!this.ipv6Forwarding && [...want].some((r) => r.includes(':'))) {
      // Only once an IPv6 address is routed here: forwarding on makes the host ignore router advertisements.
      this.host.sysctl('net.ipv6.conf.all.forwarding', '1');
      this.ipv6Forwarding = true;
    }
    for (const r of want) {
      if (this.routes.has(r)) continue;
      this.host.addRoute(r, this.device());
      this.routes.add(r);
    }
    for (const r of [...this.routes]) if (!want.has(r)) this.drop(r);
  }

  /** Makes the NAT reply rules exactly `want` (`RIP|RPORT` keys). */
  syncNatRules(want: ReadonlySet<string>): void {
    const host = this.host;
    for (const k of want) {
      if (this.natRules.has(k)) continue;
      if (!host.addNatReplyRule) throw new Error('this host cannot steer NAT replies (ip rule)');
      const [rip, rport] = k.split('|');
      host.addNatReplyRule(rip!, Number(rport), this.device());
      this.natRules.add(k);
    }
    for (const k of [...this.natRules]) if (!want.has(k)) this.dropRule(k);
  }

  /** A real stop: every route this process added goes. */
  removeAll(): void {
    for (const r of [...this.routes]) this.drop(r);
    for (const k of [...this.natRules]) this.dropRule(k);
  }

  /** A handover: the routes stay for the successor, this process no longer owns them. */
  forget(): void {
    this.routes.clear();
    this.natRules.clear();
  }

  private dropRule(k: string): void {
    const [rip, rport] = k.split('|');
    try {
      this.host.delNatReplyRule?.(rip!, Number(rport));
    } catch (e) {
      this.log.warn({ rule: k, err: (e as Error).message }, 'could not remove NAT reply rule');
    }
    this.natRules.delete(k);
  }

  private drop(r: string): void {
    try {
      this.host.delRoute(r, this.device());
    } catch (e) {
      this.log.warn({ route: r, err: (e as Error).message }, 'could not remove route');
    }
    this.routes.delete(r);
  }
}
