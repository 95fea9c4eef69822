/**
 * The verdict per connection of a lab run: what each client did, what the
 * RS application reported, and what the RS captures show (read by the
 * doctor), reduced to realIp / wrongIp / failed, with the receiver checked
 * against the capture.
 *
 * A capture can miss a connection that went through fine: tcpdump's socket
 * on a busy veth drops packets, and tcpdump says how many when it stops
 * ("N packets dropped by kernel", capture-stats.ts). A connection the
 * capture holds no concluding segment for, in a run whose captures dropped
 * packets, is put down to capture loss: not a disagreement with the
 * receiver, and (when the capture is the verdict source) no TOA verdict.
 */
import type { ConnectionReport } from '../../doctor/analyze.js';
import { endpointToString, parseAddress } from '../../wire/address.js';
import type { LabFamily } from '../family.js';
import { labAddresses, LIPS, LIPS6, type RsRecordLine } from './topology.js';

export type LabSource = 'rs-app' | 'rs-capture';
export type Outcome = 'realIp' | 'wrongIp' | 'failed';

export interface LabConnection {
  /** The client's true ip:port. */
  client: string;
  outcome: Outcome;
  reason: string | null;
  rs: string | null;
  /** What the RS application saw as its peer. */
  appPeer: string | null;
  /** The TOA the concluding segment carried at the RS (capture), '' when none, null when unknown. */
  captureToa: string | null;
  /** Flags and payload length of the concluding segment at the RS (capture), e.g. "FP. 300". */
  concluding: string | null;
}

export interface ClientOutcome {
  key: string;
  established: boolean;
  responseIntact: boolean;
  failure: string | null;
}

export interface CaptureView {
  /** "LIP:lport>RIP:rport" → the doctor's report of that connection. */
  byTuple: Map<string, ConnectionReport>;
  /** Client endpoints named by the TOA of some concluding segment. */
  toaClaims: Map<string, ConnectionReport>;
  /**
   * Packets tcpdump reported dropped by the kernel, summed over the run's
   * captures; null when a capture's counters are unknown.
   */
  droppedByKernel: number | null;
}

const LIP_SET = new Set<string>([...LIPS, ...LIPS6]);

/** The address of an `ip:port` or `[v6]:port` endpoint string. */
function endpointHost(e: string): string {
  return e.startsWith('[') ? e.slice(1, e.indexOf(']')) : e.slice(0, e.lastIndexOf(':'));
}

export function captureView(
  analyses: ConnectionReport[][],
  droppedByKernel: number | null,
): CaptureView {
  const byTuple = new Map<string, ConnectionReport>();
  const toaClaims = new Map<string, ConnectionReport>();
  for (const conns of analyses) {
    for (const c of conns) {
      // The last handshake of a tuple wins (tuples are not reused within one run).
      byTuple.set(`${c.client}>${c.server}`, c);
      const toa = c.concluding?.toa;
      if (toa) toaClaims.set(toa.endpoint, c);
    }
  }
  return { byTuple, toaClaims, droppedByKernel };
}

function concludingText(c: ConnectionReport | undefined): string | null {
  const k = c?.concluding;
  return k ? `${k.flags} ${k.payload}` : null;
}

export interface Verdicts {
  connections: LabConnection[];
  /** rs-app: the receiver and the capture disagree, and capture loss does not explain it. */
  disagreements: number;
  /**
   * Connections the capture lost (no concluding segment for them, in a run
   * whose captures dropped packets): under rs-app the disagreements they
   * would have been; under rs-capture the connections left without a verdict.
   */
  captureLoss: number;
}

export function judge(
  clients: ClientOutcome[],
  records: RsRecordLine[],
  cap: CaptureView | null,
  source: LabSource,
  family: LabFamily = 4,
): Verdicts {
  const servers = labAddresses(family).realServers;
  const rsEndpoint = (host: string, port: number): string | undefined => {
    const text = servers.find((s) => s.host === host)?.addr;
    const addr = text === undefined ? null : parseAddress(text);
    return addr === null ? undefined : endpointToString(addr, port);
  };
  const byKey = new Map<string, RsRecordLine[]>();
  for (const r of records) {
    if (!r.key) continue;
    const l = byKey.get(r.key);
    if (l) l.push(r);
    else byKey.set(r.key, [r]);
  }
  const dropped = cap?.droppedByKernel ?? 0;
  const lossNote = `the RS capture lost it (tcpdump: ${dropped} packets dropped by kernel)`;
  let disagreements = 0;
  let captureLoss = 0;
  const connections = clients.map((c): LabConnection => {
    const cands = byKey.get(c.key) ?? [];
    const rec = cands.find((r) => r.intact) ?? cands[0] ?? null;
    const rs = rec ? rsEndpoint(rec.rs, rec.port) : undefined;
    // The capture's view of this connection: by LIP:lport when the app saw one, else by the TOA claim.
    let capConn: ConnectionReport | undefined;
    let captureToa: string | null = null;
    if (cap && rec) {
      if (LIP_SET.has(endpointHost(rec.peer))) {
        capConn = cap.byTuple.get(`${rec.peer}>${rs}`);
        captureToa = capConn ? (capConn.concluding?.toa?.endpoint ?? '') : null;
      } else {
        // The receiver rewrote the peer: the capture must hold a concluding TOA naming the client.
        capConn = cap.toaClaims.get(c.key);
        captureToa = capConn?.concluding?.toa?.endpoint ?? '';
      }
    }
    const base = {
      client: c.key,
      rs: rec ? (rs ?? null) : null,
      appPeer: rec?.peer ?? null,
      captureToa,
      concluding: concludingText(capConn),
    };
    let reason: string | null = null;
    if (!c.established) reason = c.failure ?? 'not established';
    else if (!rec) reason = `no connection with its request at an RS (${c.failure ?? 'client ok'})`;
    else if (!rec.intact) reason = `request not intact at the RS (${rec.bytes} bytes)`;
    else if (!c.responseIntact) reason = c.failure ?? 'response not intact';
    if (reason !== null || !rec) return { ...base, outcome: 'failed', reason };

    // Whether the capture has nothing to say about this connection because it dropped packets.
    const lost = cap !== null && dropped > 0 && !capConn?.concluding;
    const appSaysReal = rec.peer === c.key;
    const captureSaysReal = captureToa === null ? null : captureToa === c.key;
    if (source === 'rs-app' && captureSaysReal !== null && captureSaysReal !== appSaysReal) {
      if (lost) captureLoss++;
      else disagreements++;
    }
    if (source === 'rs-capture' && lost) {
      captureLoss++;
      return { ...base, outcome: 'failed', reason: `no verdict: ${lossNote}` };
    }
    const real = source === 'rs-app' ? appSaysReal : captureSaysReal === true;
    if (real) return { ...base, outcome: 'realIp', reason: null };
    const why =
      source === 'rs-app'
        ? `the RS application saw ${rec.peer}`
        : captureToa === null
          ? 'handshake not found in the capture'
          : captureToa === ''
            ? `no TOA on the concluding segment (${base.concluding ?? '?'})`
            : `the concluding segment's TOA names ${captureToa}`;
    return { ...base, outcome: 'wrongIp', reason: why };
  });
  return { connections, disagreements, captureLoss };
}
