import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../wire/tcp.js';

/**
 * TCP connection states tracked by the LB, as IPVS names them. The names
 * read from the client's side: FIN_WAIT is "the client closed first",
 * CLOSE_WAIT "the RS closed first".
 */
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

const STATE_COUNT = TCP_STATE_NAMES.length;

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

/**
 * True for the states in which a connection is closing or closed: a client
 * SYN (without ACK) on such an entry starts a new connection on the tuple
 * (kernel IPVS's conn_reuse_mode) instead of riding the old one.
 */
export function isClosing(s: TcpState): boolean {
  return (
    s === TcpState.FinWait ||
    s === TcpState.CloseWait ||
    s === TcpState.LastAck ||
    s === TcpState.TimeWait ||
    s === TcpState.Close
  );
}

/**
 * What a segment means to the state machine, by priority: RST, then SYN,
 * then "acks the FIN the other side sent last" (only asked in LAST_ACK),
 * then FIN, then any other ACK; NONE for a segment with none of these.
 */
export const enum TcpEvent {
  Syn = 0,
  Fin = 1,
  Ack = 2,
  Rst = 3,
  FinAcked = 4,
  None = 5,
}

const EVENT_COUNT = 6;

// The state machine, one table per direction, in the shape of kernel IPVS's
// tcp_states (ip_vs_proto_tcp.c): next = table[event][state]. The rows are
// the table docs/ARCHITECTURE.md prints. Where the kernel's coarser table
// differs, it is so that both close orders end the same way: the second FIN
// and then the ACK of it lead to TIME_WAIT whichever side closed first.
const _ = -1; // unchanged
const SR = TcpState.SynRecv;
const ES = TcpState.Established;
const FW = TcpState.FinWait;
const TW = TcpState.TimeWait;
const CL = TcpState.Close;
const CW = TcpState.CloseWait;
const LA = TcpState.LastAck;

/** Rows by TcpEvent, columns by TcpState (NONE SS SR ES FW TW CL CW LA). */
const FROM_CLIENT: readonly (readonly number[])[] = [
  /* syn      */ [SR, _, _, _, _, _, _, _, _],
  /* fin      */ [_, _, FW, FW, _, _, _, LA, _],
  /* ack      */ [_, _, ES, _, _, _, _, _, _],
  /* rst      */ [_, CL, CL, CL, CL, CL, CL, CL, CL],
  /* finAcked */ [_, _, ES, _, _, _, _, _, _],
  /* none     */ [_, _, _, _, _, _, _, _, _],
];

const FROM_RS: readonly (readonly number[])[] = [
  /* syn      */ [_, SR, _, _, _, _, _, _, _],
  /* fin      */ [_, _, CW, CW, TW, _, _, _, _],
  /* ack      */ [_, _, _, _, _, _, _, _, _],
  /* rst      */ [_, CL, CL, CL, CL, CL, CL, CL, CL],
  /* finAcked */ [_, _, _, _, _, _, _, _, TW],
  /* none     */ [_, _, _, _, _, _, _, _, _],
];

function flatten(rows: readonly (readonly number[])[]): Uint8Array {
  const a = new Uint8Array(EVENT_COUNT * STATE_COUNT);
  for (let e = 0; e < EVENT_COUNT; e++) {
    for (let s = 0; s < STATE_COUNT; s++) {
      const v = rows[e]![s]!;
      a[e * STATE_COUNT + s] = v < 0 ? s : v;
    }
  }
  return a;
}

const CLIENT_TABLE = flatten(FROM_CLIENT);
const RS_TABLE = flatten(FROM_RS);

/** The event of a segment with these flags; `finAcked`: it acks the other side's FIN (LAST_ACK only). */
function eventOf(flags: number, finAcked: boolean): TcpEvent {
  if ((flags & TCP_RST) !== 0) return TcpEvent.Rst;
  if ((flags & TCP_SYN) !== 0) return TcpEvent.Syn;
  if (finAcked) return TcpEvent.FinAcked;
  if ((flags & TCP_FIN) !== 0) return TcpEvent.Fin;
  if ((flags & TCP_ACK) !== 0) return TcpEvent.Ack;
  return TcpEvent.None;
}

/** The flags `eventOf` reads: RST, SYN, FIN and ACK (0x17). */
const EVENT_FLAGS = TCP_RST | TCP_SYN | TCP_FIN | TCP_ACK;
/** Above EVENT_FLAGS in an index of EVENT_TABLE: the segment acks the other side's FIN. */
const FIN_ACKED = 0x20;

/** `eventOf` for every index (flags & EVENT_FLAGS) | (finAcked ? FIN_ACKED : 0). */
const EVENT_TABLE = Uint8Array.from({ length: 2 * FIN_ACKED }, (_, i) =>
  eventOf(i & EVENT_FLAGS, (i & FIN_ACKED) !== 0),
);

/**
 * `eventOf` as one table read: it is asked for every packet, and its chain
 * of tests made a call V8 did not inline into the paths (0x17 and 0x20 are
 * EVENT_FLAGS and FIN_ACKED, written out so the compiled code reads no
 * module constant).
 */
export function tcpEvent(flags: number, finAcked: boolean): TcpEvent {
  return EVENT_TABLE[(flags & 0x17) | (finAcked ? 0x20 : 0)]!;
}

/** Next state for a segment from the client (toward the RS). */
export function nextStateFromClient(s: TcpState, e: TcpEvent): TcpState {
  return CLIENT_TABLE[e * STATE_COUNT + s]!;
}

/** Next state for a segment from the RS (toward the client). */
export function nextStateFromRs(s: TcpState, e: TcpEvent): TcpState {
  return RS_TABLE[e * STATE_COUNT + s]!;
}

export const TCP_EVENT_NAMES = ['syn', 'fin', 'ack', 'rst', 'ack of FIN', 'none'] as const;

/** The table as rows of names (for docs and tests): [direction, event, state, next]. */
export function stateTransitions(): [
  'client' | 'rs',
  (typeof TCP_EVENT_NAMES)[number],
  TcpStateName,
  TcpStateName,
][] {
  const out: ['client' | 'rs', (typeof TCP_EVENT_NAMES)[number], TcpStateName, TcpStateName][] = [];
  for (const [dir, t] of [
    ['client', CLIENT_TABLE],
    ['rs', RS_TABLE],
  ] as const) {
    for (let e = 0; e < EVENT_COUNT; e++) {
      for (let s = 0; s < STATE_COUNT; s++) {
        out.push([
          dir,
          TCP_EVENT_NAMES[e]!,
          TCP_STATE_NAMES[s]!,
          TCP_STATE_NAMES[t[e * STATE_COUNT + s]!]!,
        ]);
      }
    }
  }
  return out;
}
