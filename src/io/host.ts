import { readDeviceStatistics, type DeviceStatistics } from './device-stats.js';
import type { PacketDevice } from './run-loop.js';
import {
  addNatReplyRule,
  addRoute,
  delNatReplyRule,
  delRoute,
  openTun,
  setNapiRealtime,
  setNoQueue,
  setThreadedNapi,
  setTxQueueLen,
  setUp,
  sysctl,
} from './tun.js';

/** What the LB needs from the host: a packet device, its counters, routes and sysctls (faked in tests). */
export interface HostNetwork {
  /**
   * `offload`: GSO super-packets cross the device (the engine's buffers must
   * hold 64 KiB). `napiThread`: opened with IFF_NAPI, so that
   * `setNapiThreaded` can move the kernel's work on written packets into a
   * kernel thread. The device is multi-queue, so that a successor can
   * attach a queue of its own beside this one (an existing interface of the
   * name is joined); `persist` makes it outlive the process, and `false`
   * clears a persistence an earlier run left.
   */
  openDevice(
    name: string,
    mtu: number,
    offload: boolean,
    napiThread: boolean,
    persist?: boolean,
  ): PacketDevice;
  /**
   * For a device opened with `napiThread`: moves the kernel's work on
   * written packets into its NAPI kernel thread (at a real-time priority)
   * or back inline, while running. Returns a warning when only part worked.
   */
  setNapiThreaded?(name: string, on: boolean): string | undefined;
  /** The device's queue of packets waiting to be read (`tun_txqueuelen`). */
  setTxQueueLen?(name: string, len: number): void;
  /**
   * The device's kernel counters (/sys/class/net/NAME/statistics), read on
   * demand for metrics and `ctl`; throws when they cannot be read.
   */
  deviceStatistics?(name: string): DeviceStatistics;
  addRoute(prefix: string, dev: string): void;
  delRoute(prefix: string, dev: string): void;
  /** NAT services: RIP:RPORT's TCP replies forwarded through this host go into `dev` (tun.ts `addNatReplyRule`). */
  addNatReplyRule?(rip: string, rport: number, dev: string): void;
  delNatReplyRule?(rip: string, rport: number): void;
  /** Dotted key; an interface name in it may contain no dot. */
  sysctl(key: string, value: string): void;
}

/**
 * SCHED_FIFO priority of the TUN's NAPI threads: above every ordinary task,
 * below the kernel's own threaded interrupt handlers (50).
 */
export const NAPI_THREAD_PRIORITY = 10;

/** The real thing: a TUN device and iproute2 in this process's network namespace. */
export const linuxHost: HostNetwork = {
  openDevice(name, mtu, offload, napiThread, persist = false) {
    const dev = openTun(name, { offload, napi: napiThread, multiQueue: true });
    try {
      dev.setPersist(persist);
      setUp(dev.name, mtu);
      setNoQueue(dev.name);
    } catch (err) {
      dev.close();
      throw err;
    }
    return dev;
  },
  setNapiThreaded(name, on) {
    setThreadedNapi(name, on);
    if (!on) return undefined;
    try {
      setNapiRealtime(name, NAPI_THREAD_PRIORITY);
      return undefined;
    } catch (err) {
      // Still correct, only slower in the tail: say so and go on.
      return `${(err as Error).message}; NAPI threads keep normal priority`;
    }
  },
  setTxQueueLen: (name, len) => setTxQueueLen(name, len),
  deviceStatistics: (name) => readDeviceStatistics(name),
  addRoute: (prefix, dev) => addRoute(prefix, dev),
  delRoute: (prefix, dev) => delRoute(prefix, dev),
  addNatReplyRule: (rip, rport, dev) => addNatReplyRule(rip, rport, dev),
  delNatReplyRule: (rip, rport) => delNatReplyRule(rip, rport),
  sysctl: (key, value) => {
    // Interface names may hold dots; those keys are written in path form.
    const m = /^net\.ipv4\.conf\.(.+)\.(rp_filter|accept_local|forwarding)$/.exec(key);
    sysctl(m ? `net/ipv4/conf/${m[1]}/${m[2]}` : key, value);
  },
};
