/**
 * The connection table checked against everything that counts it: every
 * entry findable by both of its tuples, its LIP and RS where its indexes
 * say, each real server's active/inactive counts and each (LIP, RS) pair's
 * ports in use (per RS address:port) equal to what the table holds, each
 * reply tuple held by one entry only, and (after a tick) no entry
 * past its deadline.
 */
import type { Engine } from '../../src/engine/engine.js';
import { CF_IN_USE } from '../../src/engine/conn-table.js';
import { TcpState } from '../../src/engine/tcp-state.js';

/** What is inconsistent, or null. `now`: the engine clock after its last tick, to check deadlines. */
export function tableInconsistency(e: Engine, now?: number): string | null {
  const t = e.table;
  const active = new Map<number, number>();
  const inactive = new Map<number, number>();
  const ports = new Map<number, number>();
  const b = new Uint8Array(24);
  const dv = new DataView(b.buffer);
  let inUse = 0;
  for (let i = 0; i < t.capacity; i++) {
    if ((t.flags[i]! & CF_IN_USE) === 0) continue;
    inUse++;
    const rsIdx = t.rs[i]!;
    const rs = e.realServers[rsIdx];
    if (!rs) return `entry ${i}: real server #${rsIdx} does not exist`;
    if (rs.addr !== t.rip[i] || rs.port !== t.rport[i])
      return `entry ${i}: reply tuple ${t.rip[i]}:${t.rport[i]} is not its RS ${rs.addr}:${rs.port}`;
    if (rs.service !== t.svc[i]) return `entry ${i}: RS #${rsIdx} is not in service ${t.svc[i]}`;
    if (e.laddrs.addrs[t.lipIndex[i]!] !== t.lip[i]) return `entry ${i}: LIP index does not match`;
    if (t.state[i] === TcpState.None) return `entry ${i}: in use with state NONE`;
    const m = t.state[i] === TcpState.Established ? active : inactive;
    m.set(rsIdx, (m.get(rsIdx) ?? 0) + 1);
    // RS entries of one address:port (in several services) share their ports.
    const pair = t.lipIndex[i]! * e.laddrs.maxRs + e.laddrs.portGroup(rsIdx);
    ports.set(pair, (ports.get(pair) ?? 0) + 1);
    dv.setUint32(12, t.cip[i]!);
    dv.setUint16(20, t.cport[i]!);
    if (t.lookupClientAt(b, 0, 20, t.svc[i]!) !== i) return `entry ${i}: not found by client tuple`;
    dv.setUint32(12, t.rip[i]!);
    dv.setUint32(16, t.lip[i]!);
    dv.setUint16(20, t.rport[i]!);
    dv.setUint16(22, t.lport[i]!);
    if (t.lookupReplyAt(b, 0, 20) !== i) return `entry ${i}: not found by reply tuple`;
    if (now !== undefined && t.expires[i]! <= now)
      return `entry ${i}: deadline ${t.expires[i]} passed (now ${now})`;
  }
  if (inUse !== t.count) return `table count ${t.count}, ${inUse} entries in use`;
  for (const rs of e.realServers) {
    const a = active.get(rs.index) ?? 0;
    const n = inactive.get(rs.index) ?? 0;
    if (rs.activeConns !== a || rs.inactiveConns !== n) {
      return `RS #${rs.index}: counts ${rs.activeConns}/${rs.inactiveConns} active/inactive, table has ${a}/${n}`;
    }
  }
  for (let l = 0; l < e.laddrs.lips.length; l++) {
    for (const rs of e.realServers) {
      const want = ports.get(l * e.laddrs.maxRs + e.laddrs.portGroup(rs.index)) ?? 0;
      const got = e.laddrs.portsInUse(l, rs.index);
      if (got !== want) return `LIP #${l} → RS #${rs.index}: ${got} ports in use, ${want} entries`;
    }
  }
  return null;
}
