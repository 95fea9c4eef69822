/**
 * systemd's readiness protocol: one datagram to $NOTIFY_SOCKET (see
 * native/sd-notify.c for why an addon). Without NOTIFY_SOCKET (not started
 * by systemd with Type=notify) there is nobody to tell.
 */
import { createRequire } from 'node:module';

interface NativeNotify {
  notify(socketPath: string, message: string): void;
}

const ADDON_PATH = '../../../build/Release/fullnat_notify.node';
let native: NativeNotify | undefined;

export type NotifyResult =
  | { sent: true }
  /** `reason`: no NOTIFY_SOCKET, the addon missing, or the send failed. */
  | { sent: false; reason: string; expected: boolean };

/** Sends `state` (e.g. "READY=1", "STOPPING=1") to systemd if it listens. Never throws. */
export function sdNotify(state: string, env: NodeJS.ProcessEnv = process.env): NotifyResult {
  const path = env.NOTIFY_SOCKET;
  if (!path) return { sent: false, reason: 'NOTIFY_SOCKET not set', expected: true };
  try {
    native ??= createRequire(import.meta.url)(ADDON_PATH) as NativeNotify;
  } catch (e) {
    return {
      sent: false,
      reason: `native sd_notify addon not built (${(e as Error).message.split('\n')[0]})`,
      expected: false,
    };
  }
  try {
    native.notify(path, state);
    return { sent: true };
  } catch (e) {
    return { sent: false, reason: (e as Error).message, expected: false };
  }
}
