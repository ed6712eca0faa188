import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { defaultSnaplen, linktypeEthernet, pcapHeader, PcapFormatError, PcapReader, pcapRecord } from "../../src/network/pcap.js";
import { filterCheckArgs, renderArgs } from "../../src/network/capture.js";

/** An Ethernet + IPv4 + ICMP echo request from 10.90.0.2 to 10.90.0.3 (checksums are not checked by the decoder). */
function icmpEcho(): Buffer {
  const eth = Buffer.from("525400aabbcc525400ddeeff0800", "hex");
  const ip = Buffer.from("450000540001400040010000" + "0a5a0002" + "0a5a0003", "hex");
  const icmp = Buffer.alloc(64);
  icmp.writeUInt8(8, 0); // echo request
  icmp.writeUInt16BE(0x1234, 4); // id
  icmp.writeUInt16BE(7, 6); // seq
  return Buffer.concat([eth, ip, icmp]);
}

describe("pcap writer", () => {
  it("writes the classic little-endian microsecond header for Ethernet", () => {
    const h = pcapHeader();
    expect(h.length).toBe(24);
    expect(h.toString("hex")).toBe("d4c3b2a1" + "0200" + "0400" + "00000000" + "00000000" + "00000400" + "01000000");
    expect(pcapHeader({ snaplen: 65535, linktype: 113 }).readUInt32LE(16)).toBe(65535);
    expect(pcapHeader({ snaplen: 65535, linktype: 113 }).readUInt32LE(20)).toBe(113);
  });

  it("writes records with seconds, microseconds, captured and original length", () => {
    const frame = Buffer.from("0102030405", "hex");
    const r = pcapRecord({ timestampUs: 1_700_000_000_123_456, data: frame });
    expect(r.length).toBe(16 + 5);
    expect([r.readUInt32LE(0), r.readUInt32LE(4), r.readUInt32LE(8), r.readUInt32LE(12)]).toEqual([1_700_000_000, 123_456, 5, 5]);
    expect(r.subarray(16)).toEqual(frame);
  });

  it("cuts frames at the snapshot length and keeps their length on the wire", () => {
    const r = pcapRecord({ timestampUs: 0, data: Buffer.alloc(100, 7), originalLength: 1500 }, 60);
    expect([r.readUInt32LE(8), r.readUInt32LE(12), r.length]).toEqual([60, 1500, 76]);
  });

  it("refuses timestamps that cannot be written", () => {
    expect(() => pcapRecord({ timestampUs: -1, data: Buffer.alloc(1) })).toThrow(RangeError);
    expect(() => pcapRecord({ timestampUs: 1.5, data: Buffer.alloc(1) })).toThrow(RangeError);
  });

  it("makes a file tcpdump reads and decodes", () => {
    const file = Buffer.concat([pcapHeader(), pcapRecord({ timestampUs: 1_000_000 * 3600 + 250, data: icmpEcho() })]);
    const r = spawnSync("tcpdump", ["-n", "-tt", "-r", "-"], { input: file, encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe("3600.000250 IP 10.90.0.2 > 10.90.0.3: ICMP echo request, id 4660, seq 7, length 64");
  });
});

describe("pcap reader", () => {
  const frames = [Buffer.alloc(60, 1), Buffer.alloc(1514, 2), Buffer.alloc(42, 3)];
  const stream = Buffer.concat([pcapHeader(), ...frames.map((data, i) => pcapRecord({ timestampUs: 5_000_000 + i, data }))]);

  it("reads back what the writer wrote, however the stream is cut", () => {
    for (const size of [1, 7, 16, 24, 100, stream.length]) {
      const reader = new PcapReader();
      const got = [];
      for (let at = 0; at < stream.length; at += size) got.push(...reader.push(stream.subarray(at, at + size)));
      expect(reader.header).toEqual({ snaplen: defaultSnaplen, linktype: linktypeEthernet });
      expect(got.map((f) => [f.timestampUs, f.originalLength, f.data.length, f.data[0]])).toEqual([
        [5_000_000, 60, 60, 1],
        [5_000_001, 1514, 1514, 2],
        [5_000_002, 42, 42, 3],
      ]);
    }
  });

  it("reads big-endian and nanosecond files", () => {
    const h = Buffer.alloc(24);
    h.writeUInt32BE(0xa1b23c4d, 0);
    h.writeUInt16BE(2, 4);
    h.writeUInt16BE(4, 6);
    h.writeUInt32BE(65535, 16);
    h.writeUInt32BE(1, 20);
    const rec = Buffer.alloc(16 + 3);
    rec.writeUInt32BE(10, 0);
    rec.writeUInt32BE(123_456_789, 4);
    rec.writeUInt32BE(3, 8);
    rec.writeUInt32BE(3, 12);
    const reader = new PcapReader();
    const [frame] = reader.push(Buffer.concat([h, rec]));
    expect(reader.header).toEqual({ snaplen: 65535, linktype: 1 });
    expect(frame!.timestampUs).toBe(10_123_456);
  });

  it("reads the pcap tcpdump writes", () => {
    const r = spawnSync("tcpdump", ["-r", "-", "-w", "-"], { input: stream });
    expect(r.status).toBe(0);
    const got = new PcapReader().push(r.stdout);
    expect(got.map((f) => f.data.length)).toEqual([60, 1514, 42]);
  });

  it("rejects a stream that is not pcap, and a record too big to be one", () => {
    expect(() => new PcapReader().push(Buffer.alloc(24, 0x41))).toThrow(PcapFormatError);
    const bad = Buffer.concat([pcapHeader({ snaplen: 1000 }), Buffer.alloc(16)]);
    bad.writeUInt32LE(10_000_000, 24 + 8);
    expect(() => new PcapReader().push(bad)).toThrow(/exceeds the snapshot length/);
  });
});

describe("the tcpdump that renders a capture", () => {
  it("reads stdin, writes text or pcap to stdout, and never takes filter words for options", () => {
    expect(renderArgs({ format: "text", filter: [] })).toEqual(["-r", "-", "-n", "-l"]);
    expect(renderArgs({ format: "pcap", count: 4, filter: ["icmp"] })).toEqual(["-r", "-", "-U", "-w", "-", "-c", "4", "--", "icmp"]);
    expect(filterCheckArgs(["-w", "/etc/passwd"])).toEqual(["-r", "-", "-d", "--", "-w", "/etc/passwd"]);
  });

  it("filters and counts what skiff writes", () => {
    const other = icmpEcho();
    other.writeUInt8(6, 14 + 9); // TCP, not ICMP
    const input = Buffer.concat([pcapHeader(), ...[other, icmpEcho(), icmpEcho(), icmpEcho()].map((data, i) => pcapRecord({ timestampUs: i, data }))]);
    const r = spawnSync("tcpdump", renderArgs({ format: "text", count: 2, filter: ["icmp"] }), { input, encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split("\n")).toHaveLength(2);
    expect(r.stdout).toContain("ICMP echo request");
  });
});
