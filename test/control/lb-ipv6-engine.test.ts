/**
 * The running LoadBalancer with IPv6 and FNAT64 services: configured from
 * the file, steered through ControlApi and `ctl` over a real control
 * socket, reloaded. These need the engine's tables to hold IPv6 (until
 * they do, the engine refuses IPv6 at the door and every test here fails
 * at its first service). A fake host with an in-memory device stands in
 * for the TUN.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';

import { formatConnections, runCtl } from '../../src/control/ctl/index.js';
import { createLogger } from '../../src/control/log.js';
import type { ControlRequest, Snapshot } from '../../src/control/model.js';
import { startControlServer } from '../../src/control/socket/index.js';
import type { HostNetwork } from '../../src/io/host.js';
import { MemoryDevice } from '../../src/io/memory-device.js';
import { addressToString, Ipv6Address, type IpAddress } from '../../src/wire/address.js';
import { parseIpv4 } from '../../src/wire/bytes.js';
import { IPPROTO_TCP } from '../../src/wire/ipv4.js';
import { writeIpv6Header } from '../../src/wire/ipv6.js';
import { TCP_SYN, TcpView, writeTcpHeader } from '../../src/wire/tcp.js';
import { tempConfig, testLb } from '../support/lb-harness.js';
import { ipv6 as v6 } from '../support/addresses.js';

const ip = (s: string): number => parseIpv4(s);
const texts = (l: readonly IpAddress[]): string[] => l.map(addressToString);

const CONFIG = `fullnat_defs {
    interface fnat66
    toa_v6_kind 253
    rs_mtu 1500
}
local_address_group g6 {
    2001:db8:3::1
    10.66.3.1
}
virtual_server 2001:db8:1::100 80 {
    lb_algo rr
    laddr_group_name g6
    real_server 2001:db8:2::10 8080 {
        weight 2
    }
    real_server 10.66.2.5 8080 {
        weight 1
    }
}
`;

interface FakeHost extends HostNetwork {
  routes: Set<string>;
  sysctls: [string, string][];
  mtus: number[];
}

function fakeHost(device = new MemoryDevice()): FakeHost {
  const host: FakeHost = {
    routes: new Set(),
    sysctls: [],
    mtus: [],
    openDevice: (_name, mtu) => {
      host.mtus.push(mtu);
      return device;
    },
    addRoute: (r) => void host.routes.add(r),
    delRoute: (r) => void host.routes.delete(r),
    sysctl: (k, v) => void host.sysctls.push([k, v]),
  };
  return host;
}

const log = createLogger({ level: 'silent' });

/** A client's IPv6 SYN to VIP:vport, checksums right. */
function syn6(src: string, sport: number, dst: string, dport: number): Uint8Array {
  const b = new Uint8Array(40 + 20);
  writeIpv6Header(b, 0, {
    src: v6(src).bytes,
    dst: v6(dst).bytes,
    nextHeader: IPPROTO_TCP,
    payloadLength: 20,
  });
  writeTcpHeader(b, 40, {
    srcPort: sport,
    dstPort: dport,
    seq: 1000,
    ack: 0,
    flags: TCP_SYN,
    window: 64240,
    options: new Uint8Array(0),
  });
  const t = new TcpView().wrap(b, 40);
  t.checksum = t.computeChecksumV6(0, 20);
  return b;
}

function service(snap: Snapshot, vip: string, vport: number) {
  const s = snap.services.find((x) => addressToString(x.vip) === vip && x.vport === vport);
  assert.ok(s, `no service ${vip}:${vport} in the snapshot`);
  return s;
}

describe('LoadBalancer with IPv6 and FNAT64 services (needs the IPv6 engine)', () => {
  const file = tempConfig('fullnat-lb6-');

  it('starts: /128 and /32 routes, IPv6 forwarding, a TUN MTU with room for the 20-byte TOA, toa_v6_kind to the engine', () => {
    writeFileSync(file, CONFIG);
    const host = fakeHost();
    const lb = testLb(file, host, log);
    assert.equal(lb.engine.opts.toaV6Kind, 253);
    lb.start();
    try {
      assert.deepEqual([...host.routes].sort(), [
        '10.66.3.1/32',
        '2001:db8:1::100/128',
        '2001:db8:3::1/128',
      ]);
      assert.ok(
        host.sysctls.some(([k, v]) => k === 'net.ipv6.conf.all.forwarding' && v === '1'),
        JSON.stringify(host.sysctls),
      );
      assert.deepEqual(host.mtus, [1520]);
      const s = service(lb.snapshot(), '2001:db8:1::100', 80);
      assert.ok(s.vip instanceof Ipv6Address);
      assert.deepEqual(texts(s.laddrs).sort(), ['10.66.3.1', '2001:db8:3::1']);
      assert.deepEqual(
        s.realServers.map((r) => [addressToString(r.addr), r.port, r.weight]),
        [
          ['2001:db8:2::10', 8080, 2],
          ['10.66.2.5', 8080, 1],
        ],
      );
    } finally {
      lb.stop();
    }
  });

  it('an FNAT64-only configuration with a small rs_mtu still gives the TUN the 1280 IPv6 needs', () => {
    writeFileSync(
      file,
      `fullnat_defs {\n    interface fnat66\n    rs_mtu 1200\n}\nlocal_address_group g4 {\n    10.66.3.1\n}\nvirtual_server 2001:db8:1::100 80 {\n    laddr_group_name g4\n    real_server 10.66.2.5 8080 {\n    }\n}\n`,
    );
    const host = fakeHost();
    const lb = testLb(file, host, log);
    lb.start();
    lb.stop();
    assert.deepEqual(host.mtus, [1280]);
  });

  it('IPv6 clients: one connection to the IPv6 RS, one to the IPv4 RS (FNAT64), listed as ctl -Lnc prints them', () => {
    writeFileSync(file, CONFIG);
    const dev = new MemoryDevice();
    const lb = testLb(file, fakeHost(dev), log);
    lb.start();
    try {
      dev.inject(syn6('2001:db8:99::7', 40000, '2001:db8:1::100', 80));
      dev.inject(syn6('2001:db8:99::8', 40001, '2001:db8:1::100', 80));
      // rr over one IPv6 and one IPv4 RS: one SYN leaves as an IPv6 packet, one as IPv4.
      assert.deepEqual(dev.written.map((p) => p[0]! >> 4).sort(), [4, 6]);
      const conns = lb.connections();
      assert.equal(conns.length, 2);
      const byReal = new Map(conns.map((c) => [addressToString(c.real.addr), c]));
      const a = byReal.get('2001:db8:2::10')!;
      const b = byReal.get('10.66.2.5')!;
      assert.ok(a && b, JSON.stringify(conns));
      assert.deepEqual([a.client, b.client].map((e) => addressToString(e.addr)).sort(), [
        '2001:db8:99::7',
        '2001:db8:99::8',
      ]);
      assert.deepEqual(
        [a.virtual, a.local, a.real].map((e) => addressToString(e.addr)),
        ['2001:db8:1::100', '2001:db8:3::1', '2001:db8:2::10'],
      );
      assert.deepEqual(
        [b.virtual, b.local, b.real].map((e) => addressToString(e.addr)),
        ['2001:db8:1::100', '10.66.3.1', '10.66.2.5'],
      );
      const lines = formatConnections(conns, { lip: true }).slice(2);
      const line = (real: string): string => lines.find((l) => l.includes(` ${real} `)) ?? '';
      assert.match(
        line('[2001:db8:2::10]:8080'),
        /^TCP \d\d:\d\d {2}SYN_RECV +\[2001:db8:99::[78]\]:4000[01] \[2001:db8:1::100\]:80 \[2001:db8:2::10\]:8080 \[2001:db8:3::1\]:\d+$/,
      );
      assert.match(
        line('10.66.2.5:8080'),
        /^TCP \d\d:\d\d {2}SYN_RECV +\[2001:db8:99::[78]\]:4000[01] \[2001:db8:1::100\]:80 10\.66\.2\.5:8080 +10\.66\.3\.1:\d+$/,
      );
    } finally {
      lb.stop();
    }
  });

  it('ctl requests build, edit and remove an IPv6 service; roles are checked by address', async () => {
    writeFileSync(file, CONFIG);
    const host = fakeHost();
    const lb = testLb(file, host, log);
    lb.start();
    try {
      const svc = { vip: v6('2001:db8:1::200'), vport: 443 };
      const steps: ControlRequest[] = [
        { op: 'add-service', service: svc, scheduler: 'wrr' },
        { op: 'add-laddr', service: svc, laddr: v6('2001:db8:3::2') },
        { op: 'add-laddr', service: svc, laddr: ip('10.66.3.2') },
        { op: 'add-real', real: { ...svc, addr: v6('2001:db8:2::20'), port: 443 }, weight: 3 },
        { op: 'add-real', real: { ...svc, addr: ip('10.66.2.6'), port: 443 }, weight: 1 },
        { op: 'edit-real', real: { ...svc, addr: v6('2001:db8:2:0::20'), port: 443 }, weight: 7 },
      ];
      for (const req of steps) assert.deepEqual(await lb.handle(req), { ok: true }, req.op);
      const s = service(lb.snapshot(), '2001:db8:1::200', 443);
      assert.equal(s.scheduler, 'wrr');
      assert.deepEqual(texts(s.laddrs).sort(), ['10.66.3.2', '2001:db8:3::2']);
      assert.deepEqual(
        s.realServers.map((r) => [addressToString(r.addr), r.weight]),
        [
          ['2001:db8:2::20', 7],
          ['10.66.2.6', 1],
        ],
      );
      assert.ok(host.routes.has('2001:db8:1::200/128') && host.routes.has('2001:db8:3::2/128'));

      const conflict = await lb.handle({
        op: 'add-real',
        real: { ...svc, addr: v6('2001:db8:1:0::100'), port: 80 },
        weight: 1,
      });
      assert.deepEqual(conflict, {
        ok: false,
        error: 'real server address 2001:db8:1::100 is also a virtual_server address',
      });

      const del = await lb.handle({
        op: 'delete-real',
        real: { ...svc, addr: v6('2001:db8:2::20'), port: 443 },
      });
      assert.deepEqual(del, { ok: true });
      assert.deepEqual(await lb.handle({ op: 'delete-service', service: svc }), { ok: true });
      assert.ok(!host.routes.has('2001:db8:1::200/128'));
      const missing = await lb.handle({ op: 'delete-service', service: svc });
      assert.deepEqual(missing, { ok: false, error: 'no service [2001:db8:1::200]:443' });
    } finally {
      lb.stop();
    }
  });

  it('reload adds, re-weights and removes IPv6 real servers and LIPs', () => {
    writeFileSync(file, CONFIG);
    const host = fakeHost();
    const lb = testLb(file, host, log);
    lb.start();
    try {
      writeFileSync(
        file,
        CONFIG.replace('weight 2', 'weight 9')
          .replace('    2001:db8:3::1\n', '    2001:db8:3::1\n    2001:db8:3::5\n')
          .replace(
            '    real_server 10.66.2.5 8080 {',
            '    real_server [2001:db8:2::11]:8080 {\n    }\n    real_server 10.66.2.5 8080 {',
          ),
      );
      const r = lb.reload();
      assert.deepEqual(r, { ok: true, summary: '+0 -0 ~1 services' });
      const s = service(lb.snapshot(), '2001:db8:1::100', 80);
      assert.deepEqual(
        s.realServers.map((x) => [addressToString(x.addr), x.weight]),
        [
          ['2001:db8:2::10', 9],
          ['10.66.2.5', 1],
          ['2001:db8:2::11', 1],
        ],
      );
      assert.ok(host.routes.has('2001:db8:3::5/128'));
      writeFileSync(file, CONFIG.replace('toa_v6_kind 253', 'toa_v6_kind 254'));
      assert.deepEqual(lb.reload(), {
        ok: false,
        error: 'reload refused: toa_v6_kind can only change with a restart',
      });
    } finally {
      lb.stop();
    }
  });

  it('ctl -Ln and -G over the control socket print the IPv6 service as ipvsadm does', async () => {
    writeFileSync(file, CONFIG);
    const lb = testLb(file, fakeHost(), log);
    const path = join(dirname(file), 'fullnat.sock');
    const server = await startControlServer(path, lb, log);
    try {
      const out: string[] = [];
      const code = await runCtl(['-Ln', '-t', '[2001:db8:1::100]:80'], path, (l) => out.push(l), {
        version: 't',
      });
      assert.equal(code, 0);
      assert.deepEqual(out, [
        'Prot LocalAddress:Port Scheduler Flags',
        '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
        'TCP  [2001:db8:1::100]:80 rr',
        '  -> 10.66.2.5:8080               FullNat 1      0          0         ',
        '  -> [2001:db8:2::10]:8080        FullNat 2      0          0         ',
      ]);
      const add = await runCtl(
        ['-a', '-t', '[2001:db8:1::100]:80', '-r', '[2001:db8:2::12]:8080', '-w', '4'],
        path,
        () => {},
      );
      assert.equal(add, 0);
      const g: string[] = [];
      assert.equal(await runCtl(['-G'], path, (l) => g.push(l)), 0);
      assert.deepEqual(g, [
        'VIP:VPORT            TOTAL    SNAT_IP',
        '[2001:db8:1::100]:80 2',
        '                              10.66.3.1',
        '                              2001:db8:3::1',
      ]);
    } finally {
      await server.close();
    }
  });
});
