import type { EngineOptions } from '../engine/options.js';
import { Engine } from '../engine/engine.js';
import type { Middlebox, MiddleboxFactory, Topology } from './sim/net.js';

/** Engine options plus the settings of the one service the middlebox configures. */
export type EngineMiddleboxOptions = Partial<EngineOptions> & {
  /** SYNPROXY on the service. */
  synProxy?: boolean;
};

/** The real engine as the simulator's load balancer: one service, every RS at weight 1. */
export class EngineMiddlebox implements Middlebox {
  readonly engine: Engine;

  constructor(topo: Topology, options: EngineMiddleboxOptions) {
    const { synProxy, ...engineOptions } = options;
    // Fixed cookie keys keep simulator runs reproducible.
    this.engine = new Engine({ maxConnections: 65536, synproxySecret: 0x5eed, ...engineOptions });
    this.engine.addService({
      vip: topo.vip,
      vport: topo.vport,
      scheduler: 'rr',
      laddrs: topo.lips,
      realServers: topo.rs.map((r) => ({ addr: r.addr, port: r.port, weight: 1, mtu: r.linkMtu })),
      synProxy: synProxy === true,
    });
  }

  receive(pkt: Uint8Array, now: number): Uint8Array[] {
    const e = this.engine;
    e.tick(now);
    const p = e.pool.take();
    if (!p.load(pkt)) {
      e.pool.give(p);
      throw new Error(
        `simulated packet of ${pkt.length} bytes does not fit a ${e.pool.bufferSize}-byte buffer`,
      );
    }
    e.process(p);
    return this.drain();
  }

  tick(now: number): Uint8Array[] {
    this.engine.tick(now);
    return this.drain();
  }

  private drain(): Uint8Array[] {
    const e = this.engine;
    const out: Uint8Array[] = [];
    for (let i = 0; i < e.outCount; i++) {
      const q = e.out[i]!;
      out.push(q.view().slice());
      e.pool.give(q);
    }
    e.clearOutput();
    return out;
  }
}

export function engineMiddlebox(options: EngineMiddleboxOptions): MiddleboxFactory {
  return (topo) => new EngineMiddlebox(topo, options);
}
