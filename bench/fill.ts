import type { Engine } from '../src/engine/engine.js';
import { Ipv4View } from '../src/wire/ipv4.js';
import { TCP_SYN } from '../src/wire/tcp.js';
import { opt } from '../src/wire/tcp-options.js';
import { buildSegment } from '../test/support/packets.js';

/**
 * Fills e's table with `connections` live entries, one client SYN each to
 * VIP:80 (as a SYN flood or a busy LB would): a distinct client per
 * connection, 100.64.0.0/10 addresses with 16 ports each.
 */
export function fillWithSyns(e: Engine, vip: number, connections: number): void {
  const syn = buildSegment({
    src: 0,
    dst: vip,
    sport: 0,
    dport: 80,
    seq: 1,
    flags: TCP_SYN,
    options: [opt.mss(1460), opt.sackPermitted(), opt.nop(), opt.wscale(7)],
  });
  const ip = new Ipv4View();
  for (let i = 0; i < connections; i++) {
    const p = e.pool.take();
    p.load(syn);
    const b = p.buf;
    const s = p.start;
    const cip = (0x64400000 + (i >>> 4)) >>> 0;
    b[s + 12] = cip >>> 24;
    b[s + 13] = (cip >>> 16) & 0xff;
    b[s + 14] = (cip >>> 8) & 0xff;
    b[s + 15] = cip & 0xff;
    const cport = 20000 + (i & 15);
    b[s + 20] = cport >>> 8;
    b[s + 21] = cport & 0xff;
    ip.wrap(b, s).updateChecksum();
    e.process(p);
    for (let k = 0; k < e.outCount; k++) e.pool.give(e.out[k]!);
    e.clearOutput();
  }
}
