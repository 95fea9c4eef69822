/**
 * The doctor's HTML report renders in a real browser: headless Chromium
 * (Debian's package) takes a screenshot, and the picture is not blank.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { runDoctor } from '../../src/cli/doctor.js';
import { engineMiddlebox } from '../../src/lab/engine-middlebox.js';
import { runScenario } from '../../src/lab/sim/run.js';
import { PcapWriter } from '../../src/wire/pcap.js';

const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

/** Width, height and the distinct byte values of the decompressed image data. */
function pngInfo(png: Buffer): { width: number; height: number; distinct: number } {
  assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG');
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  const idat: Buffer[] = [];
  for (let o = 8; o < png.length;) {
    const len = png.readUInt32BE(o);
    const type = png.subarray(o + 4, o + 8).toString('latin1');
    if (type === 'IDAT') idat.push(png.subarray(o + 8, o + 8 + len));
    o += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const seen = new Set<number>();
  for (let i = 0; i < raw.length; i += 7) seen.add(raw[i]!);
  return { width, height, distinct: seen.size };
}

test(
  'doctor --html renders in headless Chromium',
  { skip: chromium ? undefined : 'chromium not installed (apt-get install chromium)' },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fullnat-html-'));
    try {
      const run = runScenario({
        scenario: 'over-mss',
        middleboxFactory: engineMiddlebox({ toaPolicy: 'lvs' }),
        connections: 20,
        capture: true,
      });
      const w = new PcapWriter(101);
      for (const r of run.records) if (r.link === 'rs') w.add(Math.round(r.t * 1000), r.bytes);
      const pcap = join(dir, 'rs.pcap');
      writeFileSync(pcap, w.toBytes());
      const html = join(dir, 'report.html');
      const lines: string[] = [];
      const code = await runDoctor(
        { file: pcap, html, limit: 20 },
        { out: (l) => lines.push(l), err: (l) => lines.push(l) },
      );
      assert.equal(code, 0, lines.join('\n'));
      const page = readFileSync(html, 'utf8');
      assert.match(page, /<svg/);
      assert.match(page, /over-mss/);
      const png = join(dir, 'report.png');
      const r = spawnSync(
        chromium!,
        [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          `--user-data-dir=${join(dir, 'profile')}`,
          '--hide-scrollbars',
          '--window-size=1200,1000',
          `--screenshot=${png}`,
          `file://${html}`,
        ],
        { encoding: 'utf8', timeout: 60_000 },
      );
      assert.ok(existsSync(png), `no screenshot: ${r.stderr}`);
      const info = pngInfo(readFileSync(png));
      assert.deepEqual([info.width, info.height], [1200, 1000]);
      assert.ok(info.distinct > 20, `the page looks blank (${info.distinct} distinct byte values)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
