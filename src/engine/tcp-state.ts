/** TCP connection states tracked by the LB, as IPVS names them. */
export const enum TcpState {
  None = 0,
  SynSent = 1,
  SynRecv = 2,
  Established = 3,
  FinWait = 4,
  TimeWait = 5,
  Close = 6,
  CloseWait = 7,
  LastAck = 8,
}

export const TCP_STATE_NAMES = [
  'NONE',
  'SYN_SENT',
  'SYN_RECV',
  'ESTABLISHED',
  'FIN_WAIT',
  'TIME_WAIT',
  'CLOSE',
  'CLOSE_WAIT',
  'LAST_ACK',
] as const;

export type TcpStateName = (typeof TCP_STATE_NAMES)[number];

/** Timeouts in seconds by state name; defaults are LVS FULLNAT's and DPVS's. */
export type TcpTimeouts = Record<Exclude<TcpStateName, 'NONE'>, number>;

export const DEFAULT_TCP_TIMEOUTS: TcpTimeouts = {
  SYN_SENT: 3,
  SYN_RECV: 30,
  ESTABLISHED: 90,
  FIN_WAIT: 7,
  TIME_WAIT: 7,
  CLOSE: 3,
  CLOSE_WAIT: 7,
  LAST_ACK: 7,
};

/** Timeouts in ms indexed by TcpState. */
export function timeoutTable(t: TcpTimeouts): Uint32Array {
  const a = new Uint32Array(TCP_STATE_NAMES.length);
  TCP_STATE_NAMES.forEach((name, i) => {
    a[i] = name === 'NONE' ? 0 : Math.round(t[name] * 1000);
  });
  return a;
}

/** Next state for a segment from the client (toward the RS). */
export function nextStateInbound(
  s: TcpState,
  syn: boolean,
  ack: boolean,
  fin: boolean,
  rst: boolean,
): TcpState {
  if (rst) return TcpState.Close;
  if (syn) return s === TcpState.None ? TcpState.SynRecv : s;
  if (fin) {
    switch (s) {
      case TcpState.SynRecv:
      case TcpState.Established:
        return TcpState.FinWait;
      case TcpState.CloseWait:
        return TcpState.LastAck;
      default:
        return s;
    }
  }
  if (ack) {
    if (s === TcpState.SynRecv) return TcpState.Established;
    if (s === TcpState.LastAck) return TcpState.TimeWait;
  }
  return s;
}

/** Next state for a segment from the RS (toward the client). */
export function nextStateOutbound(s: TcpState, syn: boolean, fin: boolean, rst: boolean): TcpState {
  if (rst) return TcpState.Close;
  if (syn) return s === TcpState.SynSent ? TcpState.SynRecv : s;
  if (fin) {
    switch (s) {
      case TcpState.SynRecv:
      case TcpState.Established:
        return TcpState.CloseWait;
      case TcpState.FinWait:
        return TcpState.TimeWait;
      default:
        return s;
    }
  }
  return s;
}
