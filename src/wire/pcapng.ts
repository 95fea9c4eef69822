/**
 * pcapng capture files (draft-ietf-opsawg-pcapng): reading every packet
 * block type, writing SHB + IDBs + EPBs. Like pcap.ts this is tooling, so
 * records are views into the input and errors name the block and byte.
 */

import { locateIpHeader, splitTimestampUs, type CaptureRecord } from './pcap.js';

export const PCAPNG_SHB = 0x0a0d0d0a;
export const PCAPNG_IDB = 0x00000001;
/** Obsolete Packet Block, still written by old tools. */
export const PCAPNG_PB = 0x00000002;
export const PCAPNG_SPB = 0x00000003;
export const PCAPNG_EPB = 0x00000006;
export const PCAPNG_BYTE_ORDER_MAGIC = 0x1a2b3c4d;

const OPT_ENDOFOPT = 0;
const OPT_COMMENT = 1;
const SHB_USERAPPL = 4;
const IF_NAME = 2;
const IF_TSRESOL = 9;
const IF_TSOFFSET = 14;

const BLOCK_NAMES: Record<number, string> = {
  [PCAPNG_SHB]: 'Section Header Block',
  [PCAPNG_IDB]: 'Interface Description Block',
  [PCAPNG_PB]: 'Packet Block',
  [PCAPNG_SPB]: 'Simple Packet Block',
  [PCAPNG_EPB]: 'Enhanced Packet Block',
};

function blockName(type: number): string {
  return BLOCK_NAMES[type] ?? `block type 0x${type.toString(16).padStart(8, '0')}`;
}

interface Interface {
  linkType: number;
  snaplen: number;
  /** Ticks per second as a decimal or binary power (if_tsresol). */
  ticksPerSecond: bigint;
  /** if_tsoffset, in seconds, added to every timestamp. */
  offsetSeconds: bigint;
  /** Index counted from the start of the file, reported as CaptureRecord.interfaceId. */
  fileIndex: number;
}

const pad4 = (n: number): number => (n + 3) & ~3;

/** Parses a pcapng file; throws an Error naming the block number and byte offset of any damage. */
export function readPcapng(bytes: Uint8Array): CaptureRecord[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: CaptureRecord[] = [];
  let le = true;
  let interfaces: Interface[] = [];
  let fileInterfaces = 0;
  let p = 0;
  for (let n = 1; p < bytes.length; n++) {
    const where = (type: number): string => `pcapng: block ${n} (${blockName(type)}) at byte ${p}`;
    if (bytes.length - p < 12) {
      throw new Error(
        `pcapng: block ${n} at byte ${p} truncated (${bytes.length - p} bytes, a block needs 12)`,
      );
    }
    // The block type of an SHB reads the same in both byte orders, which is
    // why it can come before we know the section's byte order.
    const rawType = view.getUint32(p, le);
    if (n === 1 && rawType !== PCAPNG_SHB) {
      throw new Error('pcapng: file does not start with a Section Header Block');
    }
    if (rawType === PCAPNG_SHB) {
      const bom = view.getUint32(p + 8, true);
      if (bom === PCAPNG_BYTE_ORDER_MAGIC) le = true;
      else if (view.getUint32(p + 8, false) === PCAPNG_BYTE_ORDER_MAGIC) le = false;
      else throw new Error(`${where(rawType)}: bad byte-order magic`);
    }
    const type = view.getUint32(p, le);
    const total = view.getUint32(p + 4, le);
    if (total < 12 || total % 4 !== 0) {
      throw new Error(`${where(type)}: bad block length ${total}`);
    }
    if (total > bytes.length - p) {
      throw new Error(
        `${where(type)} truncated (block length ${total}, ${bytes.length - p} bytes left)`,
      );
    }
    if (view.getUint32(p + total - 4, le) !== total) {
      throw new Error(`${where(type)}: trailing block length does not match ${total}`);
    }
    const body = p + 8;
    const bodyEnd = p + total - 4;
    const need = (len: number, what: string): void => {
      if (body + len > bodyEnd) {
        throw new Error(`${where(type)}: body too short for ${what} (${bodyEnd - body} bytes)`);
      }
    };
    const packet = (
      ifId: number,
      tsTicks: bigint,
      caplen: number,
      dataAt: number,
      origLen: number,
    ): void => {
      const iface = interfaces[ifId];
      if (!iface) {
        throw new Error(
          `${where(type)}: references interface ${ifId} but the section defines ${interfaces.length}`,
        );
      }
      if (dataAt + caplen > bodyEnd) {
        throw new Error(
          `${where(type)}: packet data truncated (captured length ${caplen}, ${bodyEnd - dataAt} bytes in block)`,
        );
      }
      const data = bytes.subarray(dataAt, dataAt + caplen);
      const us = (tsTicks * 1_000_000n) / iface.ticksPerSecond + iface.offsetSeconds * 1_000_000n;
      out.push({
        timestampUs: Number(us),
        linkType: iface.linkType,
        data,
        originalLength: origLen,
        ipOffset: locateIpHeader(iface.linkType, data),
        interfaceId: iface.fileIndex,
      });
    };
    switch (type) {
      case PCAPNG_SHB: {
        need(16, 'the section header');
        const major = view.getUint16(body + 4, le);
        if (major !== 1) throw new Error(`${where(type)}: unsupported version ${major}`);
        // Interface ids restart in every section.
        interfaces = [];
        break;
      }
      case PCAPNG_IDB: {
        need(8, 'the interface description');
        const iface: Interface = {
          linkType: view.getUint16(body, le),
          snaplen: view.getUint32(body + 4, le),
          ticksPerSecond: 1_000_000n,
          offsetSeconds: 0n,
          fileIndex: fileInterfaces++,
        };
        forEachOption(view, body + 8, bodyEnd, le, where(type), (code, at, len) => {
          if (code === IF_TSRESOL && len >= 1) {
            const r = bytes[at]!;
            iface.ticksPerSecond = r & 0x80 ? 1n << BigInt(r & 0x7f) : 10n ** BigInt(r);
          } else if (code === IF_TSOFFSET && len >= 8) {
            iface.offsetSeconds = view.getBigInt64(at, le);
          }
        });
        interfaces.push(iface);
        break;
      }
      case PCAPNG_EPB: {
        need(20, 'the packet header');
        const ifId = view.getUint32(body, le);
        const ticks =
          (BigInt(view.getUint32(body + 4, le)) << 32n) | BigInt(view.getUint32(body + 8, le));
        packet(
          ifId,
          ticks,
          view.getUint32(body + 12, le),
          body + 20,
          view.getUint32(body + 16, le),
        );
        break;
      }
      case PCAPNG_PB: {
        need(20, 'the packet header');
        const ifId = view.getUint16(body, le);
        const ticks =
          (BigInt(view.getUint32(body + 4, le)) << 32n) | BigInt(view.getUint32(body + 8, le));
        packet(
          ifId,
          ticks,
          view.getUint32(body + 12, le),
          body + 20,
          view.getUint32(body + 16, le),
        );
        break;
      }
      case PCAPNG_SPB: {
        need(4, 'the packet header');
        const origLen = view.getUint32(body, le);
        const iface0 = interfaces[0];
        // An SPB has no captured length: it is what fits, bounded by the snap length.
        let caplen = Math.min(origLen, bodyEnd - body - 4);
        if (iface0 && iface0.snaplen > 0) caplen = Math.min(caplen, iface0.snaplen);
        // No timestamp either; 0 is the honest answer.
        packet(0, 0n, caplen, body + 4, origLen);
        break;
      }
      default:
        // Name resolution, statistics, secrets, custom blocks: nothing we need.
        break;
    }
    p += total;
  }
  return out;
}

/** Calls fn for each option in [at, end) until opt_endofopt; rejects options that overrun. */
function forEachOption(
  view: DataView,
  at: number,
  end: number,
  le: boolean,
  where: string,
  fn: (code: number, valueAt: number, len: number) => void,
): void {
  let p = at;
  while (p + 4 <= end) {
    const code = view.getUint16(p, le);
    const len = view.getUint16(p + 2, le);
    if (code === OPT_ENDOFOPT) return;
    if (p + 4 + len > end)
      throw new Error(`${where}: option ${code} at byte ${p} overruns the block`);
    fn(code, p + 4, len);
    p += 4 + pad4(len);
  }
}

const textEncoder = new TextEncoder();

/** One option in wire form (code, length, value padded to 4 bytes), little-endian. */
function encodeOption(code: number, value: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + pad4(value.length));
  const view = new DataView(out.buffer);
  view.setUint16(0, code, true);
  view.setUint16(2, value.length, true);
  out.set(value, 4);
  return out;
}

/** Frames a block body: type, total length, body padded to 4, total length again. */
function encodeBlock(type: number, parts: readonly Uint8Array[]): Uint8Array {
  let bodyLen = 0;
  for (const part of parts) bodyLen += part.length;
  const total = 12 + pad4(bodyLen);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, type, true);
  view.setUint32(4, total, true);
  let p = 8;
  for (const part of parts) {
    out.set(part, p);
    p += part.length;
  }
  view.setUint32(total - 4, total, true);
  return out;
}

function optionsWithEnd(options: readonly Uint8Array[]): Uint8Array[] {
  return options.length === 0 ? [] : [...options, new Uint8Array(4)];
}

/**
 * Builds a little-endian pcapng file in memory: one Section Header Block, an
 * Interface Description Block per interface (microsecond resolution, the
 * default, so no if_tsresol is written) and an Enhanced Packet Block per packet.
 */
export class PcapngWriter {
  private readonly interfaceBlocks: Uint8Array[] = [];
  private readonly interfaceSnaplens: number[] = [];
  private readonly packetBlocks: Uint8Array[] = [];

  /** With a link type, interface 0 is created so `add(ts, data)` works straight away. */
  constructor(linkType?: number) {
    if (linkType !== undefined) this.addInterface(linkType);
  }

  /** Declares an interface and returns its id for `add`. */
  addInterface(linkType: number, name?: string, snaplen = 262144): number {
    const head = new Uint8Array(8);
    const view = new DataView(head.buffer);
    view.setUint16(0, linkType, true);
    view.setUint32(4, snaplen, true);
    const options = name === undefined ? [] : [encodeOption(IF_NAME, textEncoder.encode(name))];
    this.interfaceBlocks.push(encodeBlock(PCAPNG_IDB, [head, ...optionsWithEnd(options)]));
    this.interfaceSnaplens.push(snaplen);
    return this.interfaceBlocks.length - 1;
  }

  /** Appends one frame on the given interface; an optional comment becomes opt_comment. */
  add(tsUs: number, data: Uint8Array, interfaceId = 0, comment?: string): this {
    const snaplen = this.interfaceSnaplens[interfaceId];
    if (snaplen === undefined) {
      throw new RangeError(
        `pcapng: interface ${interfaceId} not declared (${this.interfaceBlocks.length} declared)`,
      );
    }
    splitTimestampUs(tsUs);
    const caplen = snaplen > 0 ? Math.min(data.length, snaplen) : data.length;
    const head = new Uint8Array(20);
    const view = new DataView(head.buffer);
    view.setUint32(0, interfaceId, true);
    view.setUint32(4, Math.floor(tsUs / 2 ** 32), true);
    view.setUint32(8, tsUs % 2 ** 32, true);
    view.setUint32(12, caplen, true);
    view.setUint32(16, data.length, true);
    const padded = new Uint8Array(pad4(caplen));
    padded.set(data.subarray(0, caplen));
    const options =
      comment === undefined ? [] : [encodeOption(OPT_COMMENT, textEncoder.encode(comment))];
    this.packetBlocks.push(encodeBlock(PCAPNG_EPB, [head, padded, ...optionsWithEnd(options)]));
    return this;
  }

  toBytes(): Uint8Array {
    const shbHead = new Uint8Array(16);
    const view = new DataView(shbHead.buffer);
    view.setUint32(0, PCAPNG_BYTE_ORDER_MAGIC, true);
    view.setUint16(4, 1, true);
    view.setUint16(6, 0, true);
    // Section length -1: "not specified", so we need not predict our own size.
    view.setBigInt64(8, -1n, true);
    const shb = encodeBlock(PCAPNG_SHB, [
      shbHead,
      ...optionsWithEnd([encodeOption(SHB_USERAPPL, textEncoder.encode('fullnat'))]),
    ]);
    const blocks = [shb, ...this.interfaceBlocks, ...this.packetBlocks];
    let size = 0;
    for (const b of blocks) size += b.length;
    const out = new Uint8Array(size);
    let p = 0;
    for (const b of blocks) {
      out.set(b, p);
      p += b.length;
    }
    return out;
  }
}
