/**
 * A network device's own counters as the kernel keeps them
 * (/sys/class/net/DEV/statistics), read when asked — at a metrics scrape
 * or a `ctl` listing — never per packet.
 *
 * The kernel names the directions from the device's side. For a TUN that
 * is the reverse of the LB's: `tx` is what the kernel routed into the
 * device for the LB to read, `rx` is what the LB wrote. So a TUN's
 * `tx_dropped` counts packets the kernel dropped because its queue
 * (txqueuelen entries) was full before the LB read them.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The counters read, by the kernel's file name: the ones the TUN driver
 * keeps (tun_net_get_stats64). Its rx_errors, tx_errors and fifo errors
 * exist in sysfs but stay 0; a malformed packet written to it counts in
 * rx_frame_errors.
 */
export const DEVICE_STAT_FILES = [
  'rx_packets',
  'rx_bytes',
  'rx_dropped',
  'rx_frame_errors',
  'tx_packets',
  'tx_bytes',
  'tx_dropped',
] as const;

export type DeviceStatName = (typeof DEVICE_STAT_FILES)[number];

/** Each counter the kernel exposes for the device; a file that is missing is left out. */
export type DeviceStatistics = Partial<Record<DeviceStatName, number>>;

export const SYSFS_NET = '/sys/class/net';

/**
 * Reads the device's counters under `root` (sysfs by default; tests pass a
 * directory of their own). Throws when the device has no statistics
 * directory (it is gone, or the name is not an interface's); a single
 * missing or unreadable counter is left out.
 */
export function readDeviceStatistics(name: string, root = SYSFS_NET): DeviceStatistics {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name) || name === '.' || name === '..')
    throw new Error(`bad interface name '${name}'`);
  const dir = join(root, name, 'statistics');
  const out: DeviceStatistics = {};
  let found = 0;
  let firstError: unknown;
  for (const f of DEVICE_STAT_FILES) {
    let text: string;
    try {
      text = readFileSync(join(dir, f), 'utf8');
    } catch (e) {
      firstError ??= e;
      continue;
    }
    const t = text.trim();
    // Beyond 2^53 the value is approximate, which a rate or a drop ratio tolerates.
    if (!/^\d{1,20}$/.test(t)) continue;
    out[f] = Number(t);
    found++;
  }
  if (found === 0)
    throw new Error(
      `${dir}: no counters readable${firstError ? ` (${(firstError as Error).message})` : ''}`,
      { cause: firstError },
    );
  return out;
}
