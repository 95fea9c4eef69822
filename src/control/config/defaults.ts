import { DEFAULT_ENGINE_OPTIONS } from '../../engine/options.js';
import type { FullnatDefs } from '../model.js';
import { DEFAULT_SCHEDULER, DEFAULT_WEIGHT } from '../rules.js';

/**
 * keepalived's defaults where keepalived has one, but for `delay_loop` (6 s
 * here, 60 s in keepalived) and `retry` (3, keepalived's TCP_CHECK 1): a
 * dead RS out in seconds; README's Configuration section says so.
 */
export const CONFIG_DEFAULTS = {
  delayLoop: 6,
  retry: 3,
  delayBeforeRetry: 1,
  connectTimeout: 5,
  weight: DEFAULT_WEIGHT,
  scheduler: DEFAULT_SCHEDULER,
  interface: 'fnat0',
  controlSocket: '/run/fullnat.sock',
  stateDir: '/run/fullnat',
  checkpointInterval: 1,
  /**
   * The kernel's default for Ethernet devices, twice a TUN's 500: at the
   * ~137k packets a second a TUN read reaches here, the ring absorbs a
   * ~7 ms stall of the LB's thread (a GC pause, a scrape) instead of ~3.6,
   * and a ring kept full by overload adds at most that much delay.
   */
  tunTxQueueLen: 1000,
};

/** `fullnat_defs` when the file has none: the engine's own defaults. */
export function defaultDefs(): FullnatDefs {
  const e = DEFAULT_ENGINE_OPTIONS;
  return {
    interface: CONFIG_DEFAULTS.interface,
    toaPolicy: e.toaPolicy,
    toaV6Kind: e.toaV6Kind,
    mssAdjust: e.mssAdjust,
    timestampRemove: e.timestampRemove,
    unknownServiceAction: e.unknownServiceAction,
    unknownFlowReset: e.unknownFlowReset,
    unknownFlowResetRate: e.unknownFlowResetRate,
    icmpEcho: e.icmpEcho,
    pmtuExpires: e.pmtuExpiresMs / 1000,
    controlSocket: CONFIG_DEFAULTS.controlSocket,
    maxConnections: e.maxConnections,
    portRange: { ...e.portRange },
    rsMtu: e.rsMtu,
    offload: true,
    napiThread: 'auto',
    stateDir: CONFIG_DEFAULTS.stateDir,
    handover: false,
    checkpointInterval: CONFIG_DEFAULTS.checkpointInterval,
    tunTxQueueLen: CONFIG_DEFAULTS.tunTxQueueLen,
    timeouts: { ...e.timeouts },
    timeoutUdp: e.timeoutUdpMs / 1000,
    uoaMode: e.uoaMode,
    uoaMaxTrail: e.uoaMaxTrail,
    drainTimeout: 0,
  };
}
