/**
 * What every scenario × policy cell of `fullnat simulate` and `fullnat lab`
 * must show: a policy either keeps the real client address on every
 * connection of a scenario or loses it on every one (docs/SCENARIOS.md says
 * why for each loss). The simulator and the real-kernel lab are held to the
 * same table, cell for cell.
 */
import type { LabFamily } from '../../src/lab/family.js';
import type { ScenarioName } from '../../src/lab/sim/scenarios.js';

export type TablePolicy = 'lvs' | 'dpvs' | 'fullnat';

type Losses = Readonly<Record<TablePolicy, readonly ScenarioName[]>>;

/** Family 4 (docs/SCENARIOS.md says why for each). */
export const LOSSES: Losses = {
  lvs: ['fin-data', 'over-mss', 'options-full', 'small-rs-mtu'],
  dpvs: ['over-mss', 'small-rs-mtu'],
  fullnat: [],
};

/**
 * Every family (docs/SCENARIOS.md, "Address families"), as the simulator
 * measures it. lvs and dpvs tell the client the bare RS path MTU in their
 * Packet Too Big, as LVS and DPVS do, so in 6 `small-rs-mtu` is lost as in
 * 4; in 64 the IPv4 leg's header is 20 bytes shorter than the client's,
 * which is room for the 20-byte TOA in `over-mss` and, under that same bare
 * MTU, in `small-rs-mtu`.
 */
export const LOSSES_BY_FAMILY: Readonly<Record<LabFamily, Losses>> = {
  4: LOSSES,
  6: {
    lvs: ['fin-data', 'over-mss', 'options-full', 'small-rs-mtu'],
    dpvs: ['over-mss', 'small-rs-mtu'],
    fullnat: [],
  },
  64: {
    lvs: ['fin-data', 'options-full'],
    dpvs: [],
    fullnat: [],
  },
};

/** The exact outcome of a cell with `connections` connections. */
export function expectedCell(
  scenario: ScenarioName,
  policy: TablePolicy,
  connections: number,
  family: LabFamily = 4,
): { realIp: number; wrongIp: number; failed: number } {
  const lost = LOSSES_BY_FAMILY[family][policy].includes(scenario);
  return { realIp: lost ? 0 : connections, wrongIp: lost ? connections : 0, failed: 0 };
}
