/**
 * What every scenario × policy cell of `fullnat simulate` and `fullnat lab`
 * must show: a policy either keeps the real client address on every
 * connection of a scenario or loses it on every one (docs/SCENARIOS.md says
 * why for each loss). The simulator and the real-kernel lab are held to the
 * same table, cell for cell.
 */
import type { ScenarioName } from '../../src/lab/sim/scenarios.js';

export type TablePolicy = 'lvs' | 'dpvs' | 'fullnat';

export const LOSSES: Readonly<Record<TablePolicy, readonly ScenarioName[]>> = {
  lvs: ['fin-data', 'over-mss', 'options-full', 'small-rs-mtu'],
  dpvs: ['over-mss', 'small-rs-mtu'],
  fullnat: [],
};

/** The exact outcome of a cell with `connections` connections. */
export function expectedCell(
  scenario: ScenarioName,
  policy: TablePolicy,
  connections: number,
): { realIp: number; wrongIp: number; failed: number } {
  const lost = LOSSES[policy].includes(scenario);
  return { realIp: lost ? 0 : connections, wrongIp: lost ? connections : 0, failed: 0 };
}
