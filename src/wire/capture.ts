/**
 * One entry point for capture files: tells pcap from pcapng by the first
 * four bytes, so tests and tools need not care which one tcpdump or tshark
 * happened to write.
 */

import { pcapMagic, readPcap, type CaptureRecord } from './pcap.js';
import { PCAPNG_SHB, readPcapng } from './pcapng.js';

export type { CaptureRecord } from './pcap.js';

export type CaptureFormat = 'pcap' | 'pcapng';

/** The format the file's magic announces, or null when it is neither. */
export function captureFormat(bytes: Uint8Array): CaptureFormat | null {
  if (bytes.length < 4) return null;
  if (pcapMagic(bytes)) return 'pcap';
  // The SHB type is a byte palindrome, so one comparison covers both byte orders.
  const view = new DataView(bytes.buffer, bytes.byteOffset, 4);
  if (view.getUint32(0, false) === PCAPNG_SHB) return 'pcapng';
  return null;
}

/** Reads every packet of a pcap or pcapng file; throws a descriptive Error on damage. */
export function readCapture(bytes: Uint8Array): CaptureRecord[] {
  const format = captureFormat(bytes);
  if (format === 'pcap') return readPcap(bytes);
  if (format === 'pcapng') return readPcapng(bytes);
  if (bytes.length < 4) {
    throw new Error(`capture: file too short (${bytes.length} bytes) to be pcap or pcapng`);
  }
  const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new Error(`capture: unrecognised file format (starts ${head}); expected pcap or pcapng`);
}
