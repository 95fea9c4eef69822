/**
 * tcpdump's own account of a capture, which it prints on stderr when it
 * stops:
 *
 *     1234 packets captured
 *     1240 packets received by filter
 *     6 packets dropped by kernel
 *     2 packets dropped by interface      (libpcap ≥ 1.9, where the OS says)
 *
 * "dropped by kernel" counts packets the capture socket's buffer had no room
 * for (AF_PACKET loss: on a busy veth a capture can miss the handshake of a
 * connection that went through fine), so a connection missing from a
 * capture that dropped packets proves nothing about the connection.
 */

export interface CaptureStats {
  captured: number;
  receivedByFilter: number;
  droppedByKernel: number;
  /**
   * Dropped by the interface itself (the packet never went anywhere, so a
   * retransmission shows in the capture): not capture loss. Absent when
   * tcpdump does not print it.
   */
  droppedByInterface?: number;
}

const LINE =
  /^\s*(\d+) packets? (captured|received by filter|dropped by kernel|dropped by interface)\s*$/;

/**
 * Reads tcpdump's closing counters from its stderr; null when they are not
 * all there (tcpdump killed before it could print them, or not tcpdump).
 * The last value of each line wins (a restarted capture prints again).
 */
export function parseTcpdumpStats(stderr: string): CaptureStats | null {
  const seen = new Map<string, number>();
  for (const line of stderr.split('\n')) {
    const m = LINE.exec(line);
    if (m) seen.set(m[2]!, Number(m[1]));
  }
  const captured = seen.get('captured');
  const receivedByFilter = seen.get('received by filter');
  const droppedByKernel = seen.get('dropped by kernel');
  if (captured === undefined || receivedByFilter === undefined || droppedByKernel === undefined)
    return null;
  const out: CaptureStats = { captured, receivedByFilter, droppedByKernel };
  const byInterface = seen.get('dropped by interface');
  if (byInterface !== undefined) out.droppedByInterface = byInterface;
  return out;
}
