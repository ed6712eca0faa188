/**
 * The classic pcap file format (what tcpdump -w writes and -r reads): a
 * 24-byte global header, then one 16-byte header per frame. The writer
 * always writes microsecond timestamps in little-endian order; the reader
 * takes either byte order and microsecond or nanosecond timestamps, and is
 * fed a stream in pieces of any size (tcpdump's stdout, QEMU's filter-dump).
 */

/** LINKTYPE_ETHERNET: frames start with the Ethernet header. */
export const linktypeEthernet = 1;
export const pcapHeaderLength = 24;
export const pcapRecordHeaderLength = 16;
/** tcpdump's default snapshot length: whole frames, jumbo ones included. */
export const defaultSnaplen = 262_144;

const magicMicro = 0xa1b2c3d4;
const magicNano = 0xa1b23c4d;

export interface PcapHeader {
  snaplen: number;
  linktype: number;
}

export interface PcapFrame {
  /** Microseconds since the epoch. */
  timestampUs: number;
  /** The frame's length on the wire; `data` may be shorter (cut at the snapshot length). */
  originalLength: number;
  data: Buffer;
}

export function pcapHeader(opts: Partial<PcapHeader> = {}): Buffer {
  const b = Buffer.alloc(pcapHeaderLength);
  b.writeUInt32LE(magicMicro, 0);
  b.writeUInt16LE(2, 4);
  b.writeUInt16LE(4, 6);
  // thiszone and sigfigs stay 0, as every modern writer leaves them.
  b.writeUInt32LE(opts.snaplen ?? defaultSnaplen, 16);
  b.writeUInt32LE(opts.linktype ?? linktypeEthernet, 20);
  return b;
}

/** One record: header and (up to snaplen bytes of) the frame. */
export function pcapRecord(frame: { timestampUs: number; data: Uint8Array; originalLength?: number }, snaplen = defaultSnaplen): Buffer {
  if (!Number.isSafeInteger(frame.timestampUs) || frame.timestampUs < 0) throw new RangeError(`bad pcap timestamp: ${frame.timestampUs}`);
  const caplen = Math.min(frame.data.length, snaplen);
  const b = Buffer.alloc(pcapRecordHeaderLength + caplen);
  b.writeUInt32LE(Math.floor(frame.timestampUs / 1e6), 0);
  b.writeUInt32LE(frame.timestampUs % 1e6, 4);
  b.writeUInt32LE(caplen, 8);
  b.writeUInt32LE(Math.max(frame.originalLength ?? frame.data.length, caplen), 12);
  b.set(frame.data.subarray(0, caplen), pcapRecordHeaderLength);
  return b;
}

/** Thrown by the reader on a stream that is not pcap; the caller turns it into a SkiffError with its context. */
export class PcapFormatError extends Error {
  override readonly name = "PcapFormatError";
}

/** Splits a pcap byte stream into its header and frames, whatever the chunking. */
export class PcapReader {
  #buffered: Buffer = Buffer.alloc(0);
  #header: PcapHeader | undefined;
  #littleEndian = true;
  #nano = false;

  get header(): PcapHeader | undefined {
    return this.#header;
  }

  /** Take the next piece of the stream; returns the frames it completed. */
  push(chunk: Uint8Array): PcapFrame[] {
    this.#buffered = this.#buffered.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#buffered, chunk]);
    const frames: PcapFrame[] = [];
    let at = 0;
    if (this.#header === undefined) {
      if (this.#buffered.length < pcapHeaderLength) return frames;
      this.#header = this.#readHeader(this.#buffered);
      at = pcapHeaderLength;
    }
    const b = this.#buffered;
    const u32 = (off: number): number => (this.#littleEndian ? b.readUInt32LE(off) : b.readUInt32BE(off));
    while (b.length - at >= pcapRecordHeaderLength) {
      const caplen = u32(at + 8);
      // A record bigger than the snapshot length (with slack for writers that round up) means a broken stream.
      if (caplen > Math.max(this.#header.snaplen, defaultSnaplen)) throw new PcapFormatError(`pcap record of ${caplen} bytes exceeds the snapshot length ${this.#header.snaplen}`);
      if (b.length - at < pcapRecordHeaderLength + caplen) break;
      const fraction = u32(at + 4);
      frames.push({
        timestampUs: u32(at) * 1_000_000 + (this.#nano ? Math.floor(fraction / 1000) : fraction),
        originalLength: u32(at + 12),
        data: Buffer.from(b.subarray(at + pcapRecordHeaderLength, at + pcapRecordHeaderLength + caplen)),
      });
      at += pcapRecordHeaderLength + caplen;
    }
    this.#buffered = b.subarray(at);
    return frames;
  }

  #readHeader(b: Buffer): PcapHeader {
    const le = b.readUInt32LE(0);
    const be = b.readUInt32BE(0);
    if (le === magicMicro || le === magicNano) this.#littleEndian = true;
    else if (be === magicMicro || be === magicNano) this.#littleEndian = false;
    else throw new PcapFormatError(`not a pcap stream (magic 0x${be.toString(16).padStart(8, "0")})`);
    this.#nano = (this.#littleEndian ? le : be) === magicNano;
    const u32 = (off: number): number => (this.#littleEndian ? b.readUInt32LE(off) : b.readUInt32BE(off));
    return { snaplen: u32(16), linktype: u32(20) & 0x0fff_ffff };
  }
}
