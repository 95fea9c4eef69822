import { type IpAddress } from '../../wire/address.js';

/** An address prefix: what a peer's `lip_prefix` is (the control side's AnnouncedPrefix fits it). */
export interface AddressPrefix {
  addr: IpAddress;
  length: number;
}

/**
 * The fleet peers' LIP prefixes: a record whose LIP falls in one may bring
 * that LIP into this node (the peer's connections carried here after it
 * dies); a LIP in none is refused (`no_local_address`).
 */
export class PeerPrefixes {
  private readonly v4: { net: number; mask: number }[] = [];
  private readonly v6: { bytes: Uint8Array; length: number }[] = [];

  /** Adds a prefix (idempotent); throws RangeError on a length its family cannot have. */
  add(p: AddressPrefix): void {
    const a = p.addr;
    const max = typeof a === 'number' ? 32 : 128;
    if (!Number.isInteger(p.length) || p.length < 0 || p.length > max)
      throw new RangeError(`bad prefix length ${p.length}`);
    if (typeof a === 'number') {
      const mask = p.length === 0 ? 0 : (0xffffffff << (32 - p.length)) >>> 0;
      const net = (a & mask) >>> 0;
      if (!this.v4.some((x) => x.net === net && x.mask === mask)) this.v4.push({ net, mask });
      return;
    }
    const bytes = Uint8Array.from(a.bytes);
    if (!this.v6.some((x) => x.length === p.length && sameBits(x.bytes, bytes, p.length)))
      this.v6.push({ bytes, length: p.length });
  }

  /** True when some peer prefix holds `lip`. */
  contains(lip: IpAddress): boolean {
    if (typeof lip === 'number') return this.v4.some((x) => (lip & x.mask) >>> 0 === x.net);
    return this.v6.some((x) => sameBits(x.bytes, lip.bytes, x.length));
  }

  get size(): number {
    return this.v4.length + this.v6.length;
  }
}

/** True when the first `bits` bits of a and b are equal. */
function sameBits(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((a[i]! & mask) !== (b[i]! & mask)) return false;
  }
  return true;
}
