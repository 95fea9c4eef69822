/**
 * The doctor's findings for people (a one-screen text summary, then the
 * misses) and for programs (one JSON document). The fixes are the published
 * ones for LVS FULLNAT, plus what DPVS and fullnat do today (docs/SCENARIOS.md).
 */
import {
  MISS_CAUSES,
  type Analysis,
  type ConnectionReport,
  type MissCause,
  type PathMtu,
} from './analyze.js';

export const DEFAULT_LIMIT = 20;

export type FixKey = MissCause | 'spoofed';

export const FIXES: Record<FixKey, string> = {
  'no-toa-at-all':
    'No packet of these connections carries a TOA: check that the LB inserts TOA at all ' +
    '(FULLNAT mode, lb_kind FNAT; the LVS FULLNAT kernel or DPVS with TOA on) and that the ' +
    'toa module is loaded on the RS (lsmod | grep toa) to read it.',
  'fin-data':
    'The handshake was concluded by FIN+ACK+data, which Alibaba LVS never gives a TOA: allow ' +
    'FIN packets to carry TOA (DPVS since 2020, fullnat).',
  'options-full':
    'The concluding segment had no 8 (IPv6 client: 20) option bytes free: prune options to ' +
    'make room (DPVS drops NOPs, stray TOAs, then SACK blocks) or split the segment (fullnat).',
  'over-mss':
    'The client sent more than the MSS it announced or was given: lower the MSS in the RS ' +
    'SYN+ACK by the TOA size (mss_adjust: 8 for IPv4, 20 for IPv6) or on the RS listener ' +
    "(TCP_MAXSEG); a client that ignores the MSS needs the LB to split (fullnat's split).",
  'full-segment':
    'The concluding segment plus TOA exceeds the LB→RS path MTU: lower the MSS in the RS ' +
    'SYN+ACK by the TOA size (mss_adjust) and to what the LB→RS path leaves, or set ' +
    "TCP_MAXSEG on the RS listener; fullnat's split puts the TOA in the first of two segments.",
  reordered:
    'Data overtook the bare ACK and concluded the handshake; the concluding packet is data, ' +
    "so the full-segment fixes apply: mss_adjust or TCP_MAXSEG on the RS, or fullnat's split.",
  unknown:
    'No known cause matched: open the concluding packet (see the details) in Wireshark, ' +
    'filter tcp.option_kind == 254, and compare with the LB counters (TOA add failed).',
  spoofed:
    "The TOA the RS read may not be the LB's: make the LB strip client-supplied TOA options " +
    'and put its own first (DPVS since 2023, fullnat); a TOA naming an LB address means the ' +
    'TOA was added twice or by another hop.',
};

export interface DoctorJson {
  file: string;
  connections: number;
  concluded: number;
  withToa: number;
  coverage: number | null;
  misses: Record<MissCause, number>;
  mssHistogram: Record<string, number>;
  fixes: Partial<Record<FixKey, string>>;
  spoofed: number;
  packets: Analysis['packets'];
  pathMtu: PathMtu[];
  notJudged: {
    noSyn: number;
    noSynAck: number;
    notConcluded: number;
    clientLeg: number;
    notViaLb: number;
  };
  deferAccept: boolean;
  warnings: string[];
  details: ConnectionReport[];
}

/** Fixes for the causes this capture shows, in cause order. */
export function fixesFor(a: Analysis): Partial<Record<FixKey, string>> {
  const out: Partial<Record<FixKey, string>> = {};
  for (const m of MISS_CAUSES) if (a.summary.misses[m] > 0) out[m] = FIXES[m];
  if (a.summary.spoofed > 0) out.spoofed = FIXES.spoofed;
  return out;
}

export function toJson(file: string, a: Analysis): DoctorJson {
  const s = a.summary;
  return {
    file,
    connections: s.connections,
    concluded: s.concluded,
    withToa: s.withToa,
    coverage: s.coverage,
    misses: s.misses,
    mssHistogram: s.mssHistogram,
    fixes: fixesFor(a),
    spoofed: s.spoofed,
    packets: a.packets,
    pathMtu: s.pathMtu,
    notJudged: {
      noSyn: s.noSyn,
      noSynAck: s.noSynAck,
      notConcluded: s.notConcluded,
      clientLeg: s.clientLeg,
      notViaLb: s.notViaLb,
    },
    deferAccept: a.options.deferAccept,
    warnings: a.warnings,
    details: a.connections,
  };
}

/** MSS keys in numeric order, "none" last. */
export function mssKeys(h: Record<string, number>): string[] {
  const n = (k: string): number => (k === 'none' ? Infinity : Number(k));
  return Object.keys(h).sort((x, y) => n(x) - n(y));
}

export function coverageText(c: number | null): string {
  return c === null ? 'n/a' : `${c.toFixed(2)} %`;
}

export function mtuText(p: PathMtu): string {
  const why =
    p.source === 'option'
      ? 'from --mtu'
      : p.source === 'observed'
        ? 'largest client→server packet; senders cut data at this size'
        : 'assumed: no sender was seen cutting data into segments';
  return `${p.mtu} (${why})`;
}

/** Rows worth a person's attention: misses, then suspect TOAs. */
export function attentionRows(a: Analysis): ConnectionReport[] {
  return [
    ...a.connections.filter((c) => c.verdict === 'miss'),
    ...a.connections.filter((c) => c.verdict === 'toa' && c.spoofed !== null),
  ];
}

export function rowCause(c: ConnectionReport): string {
  if (c.cause) return c.cause;
  return c.spoofed ? `spoofed: ${c.spoofed}` : '';
}

export function concludingText(c: ConnectionReport): string {
  const k = c.concluding;
  if (!k) return '-';
  return `#${k.packet} [${k.flags}] len ${k.payload}`;
}

export function mssPair(c: ConnectionReport): string {
  return `${c.clientMss ?? '-'}/${c.serverMss ?? '-'}`;
}

function table(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string =>
    r
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

const BAR_WIDTH = 30;

export function formatText(file: string, a: Analysis, limit = DEFAULT_LIMIT): string {
  const s = a.summary;
  const p = a.packets;
  const out: string[] = [`fullnat doctor: ${file}`, ''];
  const other = p.notIp + p.notTcp;
  out.push(
    `packets      ${p.total} read: ${p.tcp} TCP, ${other} other, ${p.fragments} fragments, ` +
      `${p.malformed} malformed`,
  );
  const skipped = s.noSyn + s.clientLeg + s.notViaLb;
  out.push(
    `handshakes   ${s.connections}` +
      (skipped
        ? ` (not judged: ${s.noSyn} begun before the capture, ${s.clientLeg} client legs, ` +
          `${s.notViaLb} not via the LB)`
        : ''),
  );
  out.push(
    `concluded    ${s.concluded}, with TOA ${s.withToa}: TOA coverage ${coverageText(s.coverage)}` +
      (s.noSynAck + s.notConcluded
        ? ` (${s.noSynAck} without SYN+ACK, ${s.notConcluded} never concluded)`
        : ''),
  );
  for (const m of s.pathMtu) {
    const ifc = s.pathMtu.length > 1 ? ` [interface ${m.interfaceId}]` : '';
    out.push(`path MTU     ${mtuText(m)}${ifc}`);
  }
  out.push(
    `defer-accept ${a.options.deferAccept ? 'on' : 'off (--defer-accept if the RS listener uses TCP_DEFER_ACCEPT)'}`,
  );
  out.push(`spoofed TOA  ${s.spoofed}`);

  const causes = MISS_CAUSES.filter((m) => s.misses[m] > 0);
  out.push('', 'misses by cause');
  if (causes.length === 0) out.push('  none');
  for (const m of causes) {
    const pct = s.concluded ? ((100 * s.misses[m]) / s.concluded).toFixed(1) : '0.0';
    out.push(`  ${m.padEnd(14)} ${String(s.misses[m]).padStart(6)}  ${pct.padStart(5)} %`);
  }

  const keys = mssKeys(s.mssHistogram);
  if (keys.length > 0) {
    out.push('', 'client MSS (from SYNs)');
    const max = Math.max(...keys.map((k) => s.mssHistogram[k]!));
    for (const k of keys) {
      const n = s.mssHistogram[k]!;
      const bar = '#'.repeat(Math.max(1, Math.round((BAR_WIDTH * n) / max)));
      out.push(`  ${k.padStart(5)}  ${bar.padEnd(BAR_WIDTH)} ${n}`);
    }
  }

  const fixes = fixesFor(a);
  const fixKeys = Object.keys(fixes) as FixKey[];
  if (fixKeys.length > 0) {
    out.push('', 'fixes');
    for (const k of fixKeys) out.push(`  ${k}: ${fixes[k]!}`);
  }

  const rows = attentionRows(a);
  if (rows.length > 0) {
    const shown = rows.slice(0, Math.max(0, limit));
    out.push(
      '',
      `misses and suspect TOAs (${shown.length} of ${rows.length}` +
        (shown.length < rows.length ? '; --limit N shows more' : '') +
        ')',
    );
    out.push(
      ...table(
        [
          'conn',
          'client side',
          'server side',
          'concluding segment',
          'opt',
          'MSS c/s',
          'TOA',
          'cause',
        ],
        shown.map((c) => [
          String(c.id),
          c.client,
          c.server,
          concludingText(c),
          String(c.concluding?.optionBytes ?? '-'),
          mssPair(c),
          c.concluding?.toa?.endpoint ?? '-',
          rowCause(c),
        ]),
      ).map((l) => `  ${l}`),
    );
  }

  if (a.warnings.length > 0) {
    out.push('', 'warnings');
    for (const w of a.warnings) out.push(`  ${w}`);
  }
  return out.join('\n');
}
