import type { HostNetwork } from '../../src/io/host.js';

/** A host for LoadBalancer tests that never start it: any use of the host is a bug in the test. */
export const noHost: HostNetwork = {
  openDevice: () => {
    throw new Error('no device in this test');
  },
  addRoute: () => {
    throw new Error('no routes in this test');
  },
  delRoute: () => {
    throw new Error('no routes in this test');
  },
  sysctl: () => {
    throw new Error('no sysctls in this test');
  },
};
