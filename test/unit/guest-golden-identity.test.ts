/**
 * Golden tests of SKIFF-IDENTITY: the lines renderIdentityLine
 * (src/guest/identity.ts) writes, read by a relay's own line reader and
 * parser (guest/identity.c) compiled on the host. What the guest
 * understands must be exactly what the host was asked; what it cannot take
 * (malformed, more than its limits, too long) is answered with an error or,
 * for a line past the reader's bound, dropped whole, never cut and applied.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { guestLimits } from "../../src/guest/limits.js";
import { renderIdentityLine, type GuestIdentity } from "../../src/guest/identity.js";
import { GoldenHarness, type ParsedIdentity, type PortLine } from "./fixtures/guest-golden.js";

let harness: GoldenHarness;
beforeAll(() => {
  harness = GoldenHarness.build();
});
afterAll(() => harness.close());

const nonce = "0123456789abcdef01234567";
const many = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));
const mac = (i: number) => `52:54:00:aa:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;
const seed = Buffer.from(many(64, (i) => String.fromCharCode(i * 3)).join(""), "latin1");

const base: GuestIdentity = {
  timeMs: 1_767_225_600_123,
  seed,
  hostname: "web-2",
  nics: [
    { mac: mac(1), name: "eth0", address: "10.0.2.15/24" },
    { mac: mac(2), name: "eth1", address: "10.90.0.7/24" },
  ],
  gateway: "10.0.2.2",
  hosts: "127.0.0.1\tlocalhost\n10.90.0.7\tweb-2\n10.90.0.3\tdb\n",
};

/** What the guest should understand of `identity`. */
function meaning(identity: GuestIdentity): ParsedIdentity {
  return {
    time: identity.timeMs!,
    seed: identity.seed!,
    hostname: identity.hostname,
    nics: identity.nics.map((n) => ({ mac: n.mac, name: n.name, addr: n.address })),
    gateway: identity.gateway ?? null,
    hosts: Buffer.from(identity.hosts),
    warm: identity.warm === true,
  };
}

const ok = `SKIFF-IDENTITY-OK ${nonce}\n`;
/** The one line the relay would answer for `line`. */
function only(lines: PortLine[]): { answer: string | null; identity: ParsedIdentity | null } {
  expect(lines).toHaveLength(1);
  const [line] = lines;
  if (line === undefined || "other" in line) throw new Error(`not an identity line: ${JSON.stringify(line)}`);
  return line;
}
/** A line as a host that does not check would send it: the payload text, hex-encoded. */
const raw = (payload: string) => `SKIFF-IDENTITY ${nonce} ${Buffer.from(payload).toString("hex")}\n`;
const header = (lines: string[]) => [`time=1`, `seed=${"ab".repeat(64)}`, "hostname=h", ...lines].join("\n") + "\n--\n";

describe("SKIFF-IDENTITY: host encoder → the relay's parser", () => {
  const cases: [string, GuestIdentity][] = [
    ["ordinary: two NICs, a gateway", base],
    ["no NICs, no gateway, empty /etc/hosts", { timeMs: 1, seed, hostname: "h", nics: [], hosts: "" }],
    ["16 NICs, an IPv6 address, the longest names", { ...base, hostname: "h".repeat(64), nics: many(16, (i) => ({ mac: mac(i), name: `n${i}`.padEnd(15, "x"), address: i === 3 ? "fd00:1234::7/64" : `10.${i}.0.2/24` })) }],
    ["hosts with unicode, tabs, CR, a `--` line and no final newline", { ...base, hosts: "10.0.0.1\tünï 🚀\r\n--\n\n# end -- here" }],
    ["hosts with hundreds of peers", { ...base, hosts: many(400, (i) => `10.90.${i >> 8}.${i & 255}\tpeer-${i}`).join("\n") + "\n" }],
    ["the clock at 0", { ...base, timeMs: 0 }],
    ["the clock at the largest time", { ...base, timeMs: 999_999_999_999_999 }],
    ["warm: a command to run once it is applied", { ...base, warm: true }],
    ["warm left out", { ...base, warm: false }],
  ];

  it.each(cases)("%s", (_name, identity) => {
    const got = only(harness.portLines(renderIdentityLine(identity, nonce)));
    expect(got.answer).toBe(ok);
    expect(got.identity).toEqual(meaning(identity));
  });

  it("takes a payload of exactly the limit, and the host refuses one byte more before sending", () => {
    const framing = `SKIFF-IDENTITY ${nonce} \n`.length;
    const withoutHosts = (renderIdentityLine({ ...base, hosts: "" }, nonce).length - framing) / 2;
    const atLimit = { ...base, hosts: "x".repeat(guestLimits.identityBytes - withoutHosts) };
    const line = renderIdentityLine(atLimit, nonce);
    expect(line.length - framing).toBe(2 * guestLimits.identityBytes);
    expect(only(harness.portLines(line))).toEqual({ answer: ok, identity: meaning(atLimit) });
    expect(() => renderIdentityLine({ ...atLimit, hosts: `${atLimit.hosts}x` }, nonce)).toThrow(/16385 bytes, more than the 16384/);
  });

  it("keeps other lines (HELLO) apart, and answers a repeated copy the same", () => {
    const line = renderIdentityLine(base, nonce);
    const lines = harness.portLines(`SKIFF-HELLO abc\n${line}${line}`);
    expect(lines[0]).toEqual({ other: "SKIFF-HELLO abc" });
    expect(lines.slice(1)).toEqual([
      { answer: ok, identity: meaning(base) },
      { answer: ok, identity: meaning(base) },
    ]);
  });
});

describe("SKIFF-IDENTITY the guest refuses", () => {
  it.each([
    ["an odd number of hex digits", `SKIFF-IDENTITY ${nonce} abc\n`, /odd number of hex digits \(3\)/],
    ["a character that is not a hex digit", `SKIFF-IDENTITY ${nonce} 74696dzz\n`, /not a lowercase hex digit at 6/],
    ["uppercase hex", `SKIFF-IDENTITY ${nonce} 74696D65\n`, /not a lowercase hex digit at 5/],
    ["no payload", `SKIFF-IDENTITY ${nonce}\n`, /no payload/],
    ["more hex than the guest takes", `SKIFF-IDENTITY ${nonce} ${"20".repeat(guestLimits.identityBytes + 1)}\n`, /32770 hex digits, more than 32768/],
    ["a NUL byte in the payload", raw(`${header([])}a\0b`), /NUL byte/],
    ["no `--` line", raw(header([]).replace("--\n", "")), /no line -- before/],
    ["no time", raw(header([]).replace("time=1\n", "")), /no time=/],
    ["a time that is not a number", raw(header([]).replace("time=1", "time=-5")), /bad time=-5/],
    ["a seed of 63 bytes", raw(header([]).replace(`seed=${"ab".repeat(64)}`, `seed=${"ab".repeat(63)}`)), /seed= of 126 hex digits, not 128/],
    ["a hostname longer than 64", raw(header([]).replace("hostname=h", `hostname=${"h".repeat(65)}`)), /bad hostname=/],
    ["a hostname with a space", raw(header([]).replace("hostname=h", "hostname=a b")), /bad hostname=a b/],
    ["an unknown key", raw(header(["dns=1.1.1.1"])), /unknown key dns/],
    ["a key given twice", raw(header(["hostname=again"])), /hostname= given twice/],
    ["a line without '='", raw(header(["garbage"])), /not KEY=VALUE: garbage/],
    ["nic.1 without nic.0", raw(header([`nic.1=${mac(1)} eth1 10.0.0.2/24`])), /not numbered 0, 1, 2/],
    ["nic.0 twice", raw(header([`nic.0=${mac(1)} eth0 10.0.0.2/24`, `nic.0=${mac(2)} eth1 10.0.0.3/24`])), /not numbered 0, 1, 2/],
    ["17 NICs", raw(header(many(guestLimits.nics + 1, (i) => `nic.${i}=${mac(i)} eth${i} 10.${i}.0.2/24`))), /nic\.16: more than 16 NICs/],
    ["a NIC field missing", raw(header([`nic.0=${mac(1)} eth0`])), /bad nic\.0/],
    ["a bad MAC", raw(header(["nic.0=52:54:00:zz:00:01 eth0 10.0.0.2/24"])), /nic\.0: bad MAC/],
    ["an interface name `ip` would read as an option", raw(header([`nic.0=${mac(1)} -x 10.0.0.2/24`])), /nic\.0: bad interface name -x/],
    ["an interface name `ip` would read as two", raw(header([`nic.0=${mac(1)} a/b 10.0.0.2/24`])), /bad interface name a\/b/],
    ["an address without a prefix", raw(header([`nic.0=${mac(1)} eth0 10.0.0.2`])), /bad address 10\.0\.0\.2 /],
    ["a prefix too long", raw(header([`nic.0=${mac(1)} eth0 10.0.0.2/33`])), /bad address/],
    ["an address that is no address", raw(header([`nic.0=${mac(1)} eth0 dev/24`])), /bad address dev\/24/],
    ["a gateway that is no IPv4 address", raw(header(["gateway=fd00::1"])), /bad gateway=fd00::1/],
    ["warm= neither 0 nor 1", raw(header(["warm=yes"])), /bad warm=yes \(0 or 1\)/],
    ["warm= given twice", raw(header(["warm=1", "warm=1"])), /warm= given twice/],
  ])("%s", (_what, line, reason) => {
    const got = only(harness.portLines(line));
    expect(got.identity).toBeNull();
    expect(got.answer).toMatch(new RegExp(`^SKIFF-IDENTITY-ERR ${nonce} [\\x20-\\x7e]+\\n$`));
    expect(got.answer).toMatch(reason);
  });

  it("answers with the reason on one line of visible ASCII, whatever the payload held", () => {
    const got = only(harness.portLines(raw(header(["k\x01\x7f\u00e9\r=x"]))));
    expect(got.answer).toBe(`SKIFF-IDENTITY-ERR ${nonce} unknown key k?????\n`);
  });

  it("does not answer a line without a proper nonce", () => {
    for (const line of ["SKIFF-IDENTITY zz 00\n", "SKIFF-IDENTITY 0123456789ABCDEF01234567 00\n", `SKIFF-IDENTITY ${nonce}0 00\n`]) {
      expect(only(harness.portLines(line))).toEqual({ answer: null, identity: null });
    }
  });

  it("drops a line past its bound whole, and one holding a NUL, then reads the next", () => {
    const maxLine = 2 * guestLimits.identityBytes + 64;
    const good = renderIdentityLine(base, nonce);
    // A valid line padded past the bound: cut at the bound it would still start as a valid identity.
    const long = `${good.slice(0, -1)}${"0".repeat(maxLine)}\n`;
    const withNul = `${good.slice(0, 60)}\0${good.slice(60)}`;
    expect(harness.portLines(`${long}${withNul}${good}`)).toEqual([{ answer: ok, identity: meaning(base) }]);
    // At the bound exactly the line is read whole (and refused for its length, not dropped).
    const atBound = `SKIFF-IDENTITY ${nonce} ${"0".repeat(maxLine - 40)}\n`;
    expect(atBound.length - 1).toBe(maxLine);
    expect(only(harness.portLines(atBound)).answer).toMatch(/32792 hex digits, more than 32768/);
  });
});
