/**
 * Classic libpcap capture files, and the link-layer knowledge shared with
 * pcapng: which link types we understand and where the IP header starts.
 *
 * Captures are a test and debugging tool, not the data path, so clarity wins
 * over allocation here; still, records are views into the input (no copies).
 */

import { get16, set16 } from './bytes.js';

/** BSD loopback; listed so callers can name it, but frames are not decoded. */
export const LINKTYPE_NULL = 0;
export const LINKTYPE_ETHERNET = 1;
/** DLT_RAW as numbered by most BSDs; the file says 12 but means raw IP. */
export const DLT_RAW_12 = 12;
/** DLT_RAW as numbered by OpenBSD. */
export const DLT_RAW_14 = 14;
/** Raw IPv4 or IPv6, no link header: what a TUN device carries. */
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_IPV6 = 229;
export const LINKTYPE_LINUX_SLL2 = 276;

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_IPV6 = 0x86dd;
/** 802.1ad service tag (outer tag of Q-in-Q). */
export const ETHERTYPE_QINQ = 0x88a8;
/** Pre-standard Q-in-Q TPID still emitted by some switches. */
export const ETHERTYPE_QINQ_OLD = 0x9100;

export const ETHERNET_HEADER = 14;
export const VLAN_TAG = 4;
export const SLL_HEADER = 16;
export const SLL2_HEADER = 20;

/** Enough VLAN tags for any real Q-in-Q stack; more means garbage, not a frame. */
const MAX_VLAN_TAGS = 4;

/**
 * One captured packet, from either file format.
 *
 * Timestamps are microseconds since the Unix epoch as a plain number: exact
 * until the year 2255, and nanosecond captures are truncated to the
 * microsecond because nothing in fullnat needs finer resolution.
 */
export interface CaptureRecord {
  timestampUs: number;
  /** LINKTYPE_* of the interface the packet was captured on. */
  linkType: number;
  /** The link-layer frame as captured (a view into the file's bytes). */
  data: Uint8Array;
  /** Length of the packet on the wire; larger than data.length when the snap length cut it. */
  originalLength: number;
  /** Offset of the IPv4/IPv6 header inside data, or -1 (ARP, unknown link type, ...). */
  ipOffset: number;
  /**
   * Interface the packet came from: always 0 for pcap; for pcapng, the index
   * of its Interface Description Block counted from the start of the file
   * (equal to the in-section id for the usual single-section file).
   */
  interfaceId: number;
}

/** True when an IP header of the version the link layer announced starts at off. */
function ipVersionAt(data: Uint8Array, off: number, want: 4 | 6 | 0): boolean {
  if (off >= data.length) return false;
  const v = data[off]! >>> 4;
  return want === 0 ? v === 4 || v === 6 : v === want;
}

/**
 * Resolves an EtherType at `typeAt`, skipping any stack of VLAN tags, to the
 * offset of the IP header that follows it; -1 when the frame does not carry IP.
 */
function ipAfterEtherType(data: Uint8Array, typeAt: number): number {
  let at = typeAt;
  for (let tags = 0; ; tags++) {
    if (at + 2 > data.length) return -1;
    const type = get16(data, at);
    if (type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ || type === ETHERTYPE_QINQ_OLD) {
      if (tags === MAX_VLAN_TAGS) return -1;
      // A tag is TPID(2) TCI(2); the inner EtherType follows the TCI.
      at += VLAN_TAG;
      continue;
    }
    const ipAt = at + 2;
    if (type === ETHERTYPE_IPV4) return ipVersionAt(data, ipAt, 4) ? ipAt : -1;
    if (type === ETHERTYPE_IPV6) return ipVersionAt(data, ipAt, 6) ? ipAt : -1;
    return -1;
  }
}

/** Where the IP header starts in a frame of the given link type; -1 if it carries no IP. */
export function locateIpHeader(linkType: number, data: Uint8Array): number {
  switch (linkType) {
    case LINKTYPE_RAW:
    case DLT_RAW_12:
    case DLT_RAW_14:
      return ipVersionAt(data, 0, 0) ? 0 : -1;
    case LINKTYPE_IPV4:
      return ipVersionAt(data, 0, 4) ? 0 : -1;
    case LINKTYPE_IPV6:
      return ipVersionAt(data, 0, 6) ? 0 : -1;
    case LINKTYPE_ETHERNET:
      return ipAfterEtherType(data, 12);
    case LINKTYPE_LINUX_SLL:
      // The protocol field is an EtherType for every hardware type that carries IP.
      return data.length < SLL_HEADER ? -1 : ipAfterEtherType(data, 14);
    case LINKTYPE_LINUX_SLL2: {
      if (data.length < SLL2_HEADER) return -1;
      const type = get16(data, 0);
      if (type === ETHERTYPE_IPV4) return ipVersionAt(data, SLL2_HEADER, 4) ? SLL2_HEADER : -1;
      if (type === ETHERTYPE_IPV6) return ipVersionAt(data, SLL2_HEADER, 6) ? SLL2_HEADER : -1;
      return -1;
    }
    default:
      return -1;
  }
}

/** Locally administered addresses, so a written capture never names a real NIC. */
const DEFAULT_DST_MAC = Uint8Array.of(0x02, 0, 0, 0, 0, 0x02);
const DEFAULT_SRC_MAC = Uint8Array.of(0x02, 0, 0, 0, 0, 0x01);

/**
 * Wraps an IP packet in an Ethernet II header for writing Ethernet captures.
 * The EtherType defaults from the IP version nibble; each entry of vlanIds
 * adds an 802.1Q tag, outermost first.
 */
export function ethernetFrame(
  ipPacket: Uint8Array,
  etherType?: number,
  vlanIds: readonly number[] = [],
): Uint8Array {
  const type = etherType ?? (ipPacket[0]! >>> 4 === 6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4);
  const header = ETHERNET_HEADER + vlanIds.length * VLAN_TAG;
  const frame = new Uint8Array(header + ipPacket.length);
  frame.set(DEFAULT_DST_MAC, 0);
  frame.set(DEFAULT_SRC_MAC, 6);
  let p = 12;
  for (const id of vlanIds) {
    if (!Number.isInteger(id) || id < 0 || id > 0xfff) {
      throw new RangeError(`VLAN id must be 0..4095, got ${id}`);
    }
    set16(frame, p, ETHERTYPE_VLAN);
    set16(frame, p + 2, id);
    p += VLAN_TAG;
  }
  set16(frame, p, type);
  frame.set(ipPacket, header);
  return frame;
}

export const PCAP_MAGIC_US = 0xa1b2c3d4;
export const PCAP_MAGIC_NS = 0xa1b23c4d;
/** Alexey Kuznetzov's patched format: recognised only to refuse it clearly. */
const PCAP_MAGIC_KUZNETZOV = 0xa1b2cd34;
export const PCAP_GLOBAL_HEADER = 24;
export const PCAP_RECORD_HEADER = 16;
const DEFAULT_SNAPLEN = 262144;

/** The byte order and resolution a pcap magic announces, or null if it is not pcap. */
export function pcapMagic(bytes: Uint8Array): { littleEndian: boolean; nanos: boolean } | null {
  if (bytes.length < 4) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, 4);
  for (const littleEndian of [true, false]) {
    const m = view.getUint32(0, littleEndian);
    if (m === PCAP_MAGIC_US) return { littleEndian, nanos: false };
    if (m === PCAP_MAGIC_NS) return { littleEndian, nanos: true };
  }
  return null;
}

/** Parses a classic pcap file; throws an Error naming the record and byte offset of any damage. */
export function readPcap(bytes: Uint8Array): CaptureRecord[] {
  const magic = pcapMagic(bytes);
  if (!magic) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (
      bytes.length >= 4 &&
      (view.getUint32(0, true) === PCAP_MAGIC_KUZNETZOV ||
        view.getUint32(0, false) === PCAP_MAGIC_KUZNETZOV)
    ) {
      throw new Error('pcap: modified (Kuznetzov) pcap format is not supported');
    }
    throw new Error('pcap: bad magic number, not a pcap file');
  }
  if (bytes.length < PCAP_GLOBAL_HEADER) {
    throw new Error(`pcap: file header truncated (${bytes.length} of ${PCAP_GLOBAL_HEADER} bytes)`);
  }
  const le = magic.littleEndian;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = view.getUint16(4, le);
  if (major !== 2) throw new Error(`pcap: unsupported version ${major}.${view.getUint16(6, le)}`);
  // The top bits of the link-type word carry FCS information, not the type.
  const linkType = view.getUint32(20, le) & 0xffff;
  const out: CaptureRecord[] = [];
  let p = PCAP_GLOBAL_HEADER;
  for (let n = 1; p < bytes.length; n++) {
    if (p + PCAP_RECORD_HEADER > bytes.length) {
      throw new Error(
        `pcap: record ${n} header truncated at byte ${p} ` +
          `(${bytes.length - p} of ${PCAP_RECORD_HEADER} bytes)`,
      );
    }
    const sec = view.getUint32(p, le);
    const frac = view.getUint32(p + 4, le);
    const caplen = view.getUint32(p + 8, le);
    const origLen = view.getUint32(p + 12, le);
    const dataAt = p + PCAP_RECORD_HEADER;
    if (caplen > bytes.length - dataAt) {
      throw new Error(
        `pcap: record ${n} truncated at byte ${dataAt} ` +
          `(header says ${caplen} bytes, ${bytes.length - dataAt} left)`,
      );
    }
    const data = bytes.subarray(dataAt, dataAt + caplen);
    out.push({
      timestampUs: sec * 1e6 + (magic.nanos ? Math.floor(frac / 1000) : frac),
      linkType,
      data,
      originalLength: origLen,
      ipOffset: locateIpHeader(linkType, data),
      interfaceId: 0,
    });
    p = dataAt + caplen;
  }
  return out;
}

/** Splits microseconds since the epoch into whole seconds and the remainder, rejecting nonsense. */
export function splitTimestampUs(tsUs: number): { sec: number; us: number } {
  if (!Number.isSafeInteger(tsUs) || tsUs < 0) {
    throw new RangeError(`capture timestamp must be a non-negative integer of µs, got ${tsUs}`);
  }
  const sec = Math.floor(tsUs / 1e6);
  return { sec, us: tsUs - sec * 1e6 };
}

/** Builds a little-endian, microsecond-resolution pcap file in memory. */
export class PcapWriter {
  private readonly chunks: Uint8Array[] = [];
  private size = PCAP_GLOBAL_HEADER;

  constructor(
    readonly linkType: number,
    readonly snaplen: number = DEFAULT_SNAPLEN,
  ) {}

  /** Appends one frame; data longer than the snap length is cut and its full length recorded. */
  add(tsUs: number, data: Uint8Array): this {
    const { sec, us } = splitTimestampUs(tsUs);
    if (sec > 0xffffffff) throw new RangeError(`pcap: timestamp ${tsUs} µs is past 2106`);
    const caplen = Math.min(data.length, this.snaplen);
    const rec = new Uint8Array(PCAP_RECORD_HEADER + caplen);
    const view = new DataView(rec.buffer);
    view.setUint32(0, sec, true);
    view.setUint32(4, us, true);
    view.setUint32(8, caplen, true);
    view.setUint32(12, data.length, true);
    rec.set(data.subarray(0, caplen), PCAP_RECORD_HEADER);
    this.chunks.push(rec);
    this.size += rec.length;
    return this;
  }

  toBytes(): Uint8Array {
    const out = new Uint8Array(this.size);
    const view = new DataView(out.buffer);
    view.setUint32(0, PCAP_MAGIC_US, true);
    view.setUint16(4, 2, true);
    view.setUint16(6, 4, true);
    view.setInt32(8, 0, true);
    view.setUint32(12, 0, true);
    view.setUint32(16, this.snaplen, true);
    view.setUint32(20, this.linkType, true);
    let p = PCAP_GLOBAL_HEADER;
    for (const c of this.chunks) {
      out.set(c, p);
      p += c.length;
    }
    return out;
  }
}
