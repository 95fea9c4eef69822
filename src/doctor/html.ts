/**
 * The doctor's report as one self-contained HTML page: inline CSS, the MSS
 * histogram as inline SVG, no scripts and no external resources, so it can
 * be mailed, attached to a ticket or opened offline.
 */
import { MISS_CAUSES, type Analysis } from './analyze.js';
import {
  DEFAULT_LIMIT,
  attentionRows,
  concludingText,
  coverageText,
  fixesFor,
  mssKeys,
  mssPair,
  mtuText,
  rowCause,
  type FixKey,
} from './report.js';

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** File names and addresses come from outside: never let them become markup. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ESCAPES[ch]!);
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#1d232a;background:#fff}
h1{font-size:1.4em;margin-bottom:.2em}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
.file{color:#57606a;font-family:ui-monospace,monospace;word-break:break-all}
.cards{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}
.card{border:1px solid #d0d7de;border-radius:6px;padding:.6em 1em;min-width:9em}
.card b{display:block;font-size:1.5em}.card span{color:#57606a;font-size:.9em}
.good b{color:#1a7f37}.bad b{color:#cf222e}
table{border-collapse:collapse;width:100%;font-size:.92em}
th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #eaeef2;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
code,td.m{font-family:ui-monospace,monospace}
dl.fixes dt{font-weight:600;font-family:ui-monospace,monospace;margin-top:.6em}dl.fixes dd{margin:.2em 0 0 1.5em}
ul.warn li{color:#9a6700}
svg text{font:12px ui-monospace,monospace;fill:#1d232a}
`;

const BAR_AREA = 360;
const ROW_HEIGHT = 22;
const LABEL_WIDTH = 56;

/** Horizontal bars, one per announced MSS; plain SVG so it renders without scripts. */
export function histogramSvg(h: Record<string, number>): string {
  const keys = mssKeys(h);
  if (keys.length === 0) return '<p>No SYN in the capture.</p>';
  const max = Math.max(...keys.map((k) => h[k]!));
  const width = LABEL_WIDTH + BAR_AREA + 60;
  const height = keys.length * ROW_HEIGHT + 4;
  const bars = keys.map((k, i) => {
    const n = h[k]!;
    const w = Math.max(1, Math.round((BAR_AREA * n) / max));
    const y = i * ROW_HEIGHT + 2;
    return (
      `<g><title>MSS ${escapeHtml(k)}: ${n}</title>` +
      `<text x="${LABEL_WIDTH - 6}" y="${y + 15}" text-anchor="end">${escapeHtml(k)}</text>` +
      `<rect class="bar" x="${LABEL_WIDTH}" y="${y + 3}" width="${w}" height="${ROW_HEIGHT - 6}" fill="#0969da"></rect>` +
      `<text x="${LABEL_WIDTH + w + 6}" y="${y + 15}">${n}</text></g>`
    );
  });
  return (
    `<svg id="mss-histogram" xmlns="http://www.w3.org/2000/svg" role="img" ` +
    `aria-label="client MSS histogram" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}">${bars.join('')}</svg>`
  );
}

function card(label: string, value: string, cls = ''): string {
  return `<div class="card${cls ? ` ${cls}` : ''}"><b>${escapeHtml(value)}</b><span>${escapeHtml(label)}</span></div>`;
}

function summarySection(a: Analysis): string {
  const s = a.summary;
  const missCount = s.concluded - s.withToa;
  const covCls = s.coverage === null ? '' : s.coverage === 100 ? 'good' : 'bad';
  const cards = [
    card('handshakes judged', String(s.connections)),
    card('concluded', String(s.concluded)),
    card('with TOA', String(s.withToa)),
    card('TOA coverage', coverageText(s.coverage), covCls),
    card('misses', String(missCount), missCount ? 'bad' : 'good'),
    card('suspect TOAs', String(s.spoofed), s.spoofed ? 'bad' : 'good'),
  ];
  const p = a.packets;
  const facts = [
    `${p.total} packets: ${p.tcp} TCP, ${p.notIp + p.notTcp} other, ${p.fragments} fragments, ${p.malformed} malformed`,
    ...s.pathMtu.map(
      (m) =>
        `path MTU${s.pathMtu.length > 1 ? ` [interface ${m.interfaceId}]` : ''}: ${mtuText(m)}`,
    ),
    `TCP_DEFER_ACCEPT modelled: ${a.options.deferAccept ? 'yes' : 'no'}`,
    `not judged: ${s.noSyn} begun before the capture, ${s.clientLeg} client legs, ` +
      `${s.notViaLb} not via the LB; ` +
      `${s.noSynAck} without SYN+ACK, ${s.notConcluded} never concluded`,
  ];
  return (
    `<div class="cards">${cards.join('')}</div>` +
    `<ul>${facts.map((f) => `<li>${escapeHtml(f)}</li>`).join('')}</ul>`
  );
}

function causesSection(a: Analysis): string {
  const s = a.summary;
  const rows = MISS_CAUSES.filter((m) => s.misses[m] > 0).map(
    (m) =>
      `<tr><td class="m">${m}</td><td class="n">${s.misses[m]}</td>` +
      `<td class="n">${s.concluded ? ((100 * s.misses[m]) / s.concluded).toFixed(1) : '0.0'} %</td></tr>`,
  );
  if (rows.length === 0) return '<p>No misses: every concluding segment carried a TOA.</p>';
  return (
    '<table id="causes"><thead><tr><th>cause</th><th>connections</th><th>of concluded</th></tr></thead>' +
    `<tbody>${rows.join('')}</tbody></table>`
  );
}

function fixesSection(a: Analysis): string {
  const fixes = fixesFor(a);
  const keys = Object.keys(fixes) as FixKey[];
  if (keys.length === 0) return '<p>Nothing to fix.</p>';
  return (
    '<dl class="fixes">' +
    keys.map((k) => `<dt>${k}</dt><dd>${escapeHtml(fixes[k]!)}</dd>`).join('') +
    '</dl>'
  );
}

function missesTable(a: Analysis, limit: number): string {
  const rows = attentionRows(a);
  if (rows.length === 0) return '<p>None.</p>';
  const shown = rows.slice(0, Math.max(0, limit));
  const head = [
    'conn',
    'client side',
    'server side',
    'concluding segment',
    'option bytes',
    'MSS c/s',
    'TOA read',
    'cause',
  ];
  const body = shown.map((c) => {
    const cells = [
      String(c.id),
      c.client,
      c.server,
      concludingText(c),
      String(c.concluding?.optionBytes ?? '-'),
      mssPair(c),
      c.concluding?.toa?.endpoint ?? '-',
      rowCause(c),
    ];
    return `<tr>${cells.map((x) => `<td class="m">${escapeHtml(x)}</td>`).join('')}</tr>`;
  });
  const more =
    shown.length < rows.length ? `<p>${shown.length} of ${rows.length} shown (--limit).</p>` : '';
  return (
    `<table id="misses"><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead>` +
    `<tbody>${body.join('')}</tbody></table>${more}`
  );
}

export function renderHtml(file: string, a: Analysis, limit = DEFAULT_LIMIT): string {
  const warnings =
    a.warnings.length === 0
      ? ''
      : `<h2>Warnings</h2><ul class="warn">${a.warnings.map((w) => `<li>${escapeHtml(w)}</li>`).join('')}</ul>`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fullnat doctor: ${escapeHtml(file)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>fullnat doctor</h1>
<div class="file">${escapeHtml(file)}</div>
<h2>Summary</h2>
${summarySection(a)}
<h2>Misses by cause</h2>
${causesSection(a)}
<h2>Client MSS (from SYNs)</h2>
${histogramSvg(a.summary.mssHistogram)}
<h2>Fixes</h2>
${fixesSection(a)}
<h2>Misses and suspect TOAs</h2>
${missesTable(a, limit)}
${warnings}
</body>
</html>
`;
}
