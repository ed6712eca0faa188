/**
 * The host's side of SKIFF-IDENTITY: the line renderIdentityLine writes
 * (defaults, refusals), identityFor, and sendIdentity on a unix socket
 * played by a guest: one that runs skiff-init's own parser (the golden
 * harness) for its answers, and guests that refuse, stay silent, hang up
 * or flood the port.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { SkiffError } from "../../src/errors.js";
import { identityFor, renderIdentityLine, sendIdentity, type GuestIdentity } from "../../src/guest/identity.js";
import { renderGuestConfig } from "../../src/guest/initramfs.js";
import { guestNetwork } from "../../src/network/guest.js";
import { attachmentMac } from "../../src/network/nics.js";
import { errorOf, rejectionOf } from "./fixtures/errors.js";
import { GoldenHarness } from "./fixtures/guest-golden.js";
import { LinePorts } from "./fixtures/line-port.js";
import { machineSpec } from "./fixtures/spec.js";

const nonce = "00112233445566778899aabb";
const identity: GuestIdentity = {
  hostname: "clone-1",
  nics: [{ mac: "52:54:00:12:34:56", name: "eth0", address: "10.0.2.15/24" }],
  gateway: "10.0.2.2",
  hosts: "127.0.0.1\tlocalhost\n",
};

/** The payload of a line, decoded. */
function payloadOf(line: string): string {
  const m = /^SKIFF-IDENTITY ([0-9a-f]{24}) ([0-9a-f]*)\n$/.exec(line);
  if (m === null) throw new Error(`not an identity line: ${line}`);
  return Buffer.from(m[2]!, "hex").toString("utf8");
}

describe("renderIdentityLine", () => {
  it("writes the payload in the wire format, with the given clock and seed", () => {
    const seed = Buffer.alloc(64, 0xa5);
    const line = renderIdentityLine({ ...identity, timeMs: 1234, seed }, nonce);
    expect(line.startsWith(`SKIFF-IDENTITY ${nonce} `)).toBe(true);
    expect(payloadOf(line)).toBe(
      `time=1234\nseed=${"a5".repeat(64)}\nhostname=clone-1\nnic.0=52:54:00:12:34:56 eth0 10.0.2.15/24\ngateway=10.0.2.2\n--\n127.0.0.1\tlocalhost\n`,
    );
  });

  it("fills the clock with now and the seed with fresh random bytes", () => {
    const before = Date.now();
    const [a, b] = [renderIdentityLine(identity, nonce), renderIdentityLine(identity, nonce)].map(payloadOf);
    const time = Number(/^time=(\d+)$/m.exec(a!)![1]);
    expect(time).toBeGreaterThanOrEqual(before);
    expect(time).toBeLessThanOrEqual(Date.now());
    const seedOf = (p: string) => /^seed=([0-9a-f]+)$/m.exec(p)![1]!;
    expect(seedOf(a!)).toHaveLength(128);
    expect(seedOf(a!)).not.toBe(seedOf(b!));
  });

  it.each([
    ["a hostname with a space", { ...identity, hostname: "a b" }, "hostname"],
    ["a hostname of 65 characters", { ...identity, hostname: "h".repeat(65) }, "hostname"],
    ["a hostname with a newline, which would add a line", { ...identity, hostname: "h\ngateway=1.2.3.4" }, "hostname"],
    ["17 NICs", { ...identity, nics: Array.from({ length: 17 }, (_, i) => ({ mac: "52:54:00:00:00:01", name: `eth${i}`, address: "10.0.0.2/24" })) }, "nics"],
    ["a NIC name with a space", { ...identity, nics: [{ mac: "52:54:00:00:00:01", name: "eth 0", address: "10.0.0.2/24" }] }, "nics[0]"],
    ["a NIC without a prefix", { ...identity, nics: [{ mac: "52:54:00:00:00:01", name: "eth0", address: "10.0.0.2" }] }, "nics[0]"],
    ["a bad MAC", { ...identity, nics: [{ mac: "52:54:00:00:00", name: "eth0", address: "10.0.0.2/24" }] }, "nics[0]"],
    ["an IPv6 gateway", { ...identity, gateway: "fd00::1" }, "gateway"],
    ["/etc/hosts with a NUL", { ...identity, hosts: "a\0b" }, "hosts"],
    ["/etc/hosts past 16 KiB", { ...identity, hosts: "x".repeat(16_384) }, "hosts"],
    ["a seed of 32 bytes", { ...identity, seed: Buffer.alloc(32) }, "seed"],
    ["a clock before 1970", { ...identity, timeMs: -1 }, "timeMs"],
  ])("refuses %s before sending, naming the field", (_what, bad, place) => {
    const err = errorOf(() => renderIdentityLine(bad, nonce));
    expect(err.code).toBe("ERR_SKIFF_IDENTITY");
    expect(err.place).toBe(place);
  });

  it("refuses a nonce that is not 24 lowercase hex digits", () => {
    expect(() => renderIdentityLine(identity, "XYZ")).toThrow(/bad nonce/);
  });
});

describe("identityFor", () => {
  it("gives the NICs, gateway and /etc/hosts the boot config gives the same VM, in the same lines", () => {
    const spec = machineSpec("web", {
      network: { mode: "user", restrict: true, forwards: [] },
      networks: [{ network: "lan", driver: "private", ip: "10.90.0.5", prefix: 24, mac: attachmentMac("web", "lan") }],
    });
    const network = guestNetwork({ spec, networks: new Map(), peers: [], hostDns: [] });
    const got = identityFor("web", network);
    expect(got).toEqual({ hostname: "web", nics: network.nics.map(({ mac, name, address }) => ({ mac, name, address })), gateway: "10.0.2.2", hosts: network.hosts });
    const boot = renderGuestConfig({ hostname: "web", env: {}, network, authorizedKey: "k", agentPorts: 1, hostKey: Buffer.from("") });
    const sameLines = (text: string) => text.split("\n").filter((l) => /^(nic\.\d+|gateway)=/.test(l));
    expect(sameLines(payloadOf(renderIdentityLine(got, nonce)))).toEqual(sameLines(boot));
    expect(sameLines(boot)).toHaveLength(3);
    const { gateway: _none, ...withoutGateway } = network;
    expect(identityFor("web", withoutGateway)).not.toHaveProperty("gateway");
  });
});

describe("sendIdentity", () => {
  let dir: string;
  let ports: LinePorts;
  let harness: GoldenHarness;
  beforeAll(() => {
    harness = GoldenHarness.build();
  });
  afterAll(() => harness.close());
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "skiff-identity-"));
    ports = new LinePorts(dir);
  });
  afterEach(async () => {
    await ports.close();
    await rm(dir, { recursive: true, force: true });
  });
  const port = (onLine: (line: string, socket: Socket, count: number) => void) => ports.port(onLine);

  async function failure(promise: Promise<void>): Promise<SkiffError> {
    const err = await rejectionOf(promise);
    expect(err.code).toBe("ERR_SKIFF_IDENTITY");
    return err;
  }

  /** A guest that answers as skiff-init's relay would (its own parser), after ignoring the first `missed` lines. */
  const parsingGuest = (missed: number, seen: string[]) => (line: string, socket: Socket, count: number) => {
    seen.push(line);
    if (count <= missed) return;
    const [answer] = harness.portLines(`${line}\n`);
    if (answer !== undefined && "answer" in answer && answer.answer !== null) socket.write(`stale bytes\nSKIFF-IDENTITY-OK ffffffffffffffffffffffff\n${answer.answer}`);
  };

  it("repeats the line until the guest answers OK, and returns once it has", async () => {
    const seen: string[] = [];
    const path = await port(parsingGuest(2, seen));
    await sendIdentity(path, identity, { budgetMs: 5_000, repeatMs: 20 });
    expect(seen.length).toBeGreaterThanOrEqual(3);
    expect(new Set(seen).size).toBe(1); // the same line, nonce, clock and seed each time
  });

  it("throws the guest's refusal, from skiff-init's own parser", async () => {
    const path = await port(parsingGuest(0, []));
    // A line the guest refuses: identity the host would not render, so its payload is forged on the way.
    const forged = await port((line, socket) => {
      const bad = line.replace(/ ([0-9a-f]+)$/, (_m, hex: string) => ` ${Buffer.from(Buffer.from(hex, "hex").toString().replace("hostname=clone-1", "hostname=clone-1\nhostname=twice")).toString("hex")}\n`);
      const [answer] = harness.portLines(bad);
      if (answer !== undefined && "answer" in answer) socket.write(answer.answer ?? "");
    });
    await sendIdentity(path, identity, { budgetMs: 5_000 });
    const err = await failure(sendIdentity(forged, identity, { budgetMs: 5_000, vm: "clone-1" }));
    expect(err.message).toBe("the guest refused its new identity: hostname= given twice");
    expect(err.place).toBe("clone-1");
    expect(err.details).toEqual({ outcome: "refused" });
  });

  it("cleans a hostile refusal: printable, at most 200 characters, split across writes", async () => {
    const path = await port((line, socket, count) => {
      // One answer, in two writes 20 ms apart; the host's repeats meanwhile (5 and 15 ms) are not answered again.
      if (count > 1) return;
      const n = /^SKIFF-IDENTITY ([0-9a-f]{24}) /.exec(line)![1]!;
      socket.write(`SKIFF-IDENTITY-ERR ${n} \x1b[31mred\x07`);
      setTimeout(() => socket.write(`${"x".repeat(500)}\n`), 20);
    });
    const err = await failure(sendIdentity(path, identity, { budgetMs: 5_000 }));
    const reason = err.message.slice("the guest refused its new identity: ".length);
    expect(reason).toMatch(/^\?\[31mred\?x+$/);
    expect(reason).toHaveLength(200);
  });

  it("throws when the guest is silent past the budget, or floods the port without answering", async () => {
    const silent = await port(() => {});
    const started = Date.now();
    const err = await failure(sendIdentity(silent, identity, { budgetMs: 200 }));
    expect(err.message).toMatch(/did not answer its new identity within 200 ms/);
    expect(Date.now() - started).toBeLessThan(1_000);
    const flood = await port((_line, socket, count) => {
      if (count === 1) socket.write(Buffer.alloc(8 << 20, "S"));
    });
    expect((await failure(sendIdentity(flood, identity, { budgetMs: 1_000 }))).details).toEqual({ outcome: "silent" });
  });

  it("throws when the port closes, or is not there", async () => {
    const closing = await port((_line, socket) => socket.destroy());
    expect((await failure(sendIdentity(closing, identity, { budgetMs: 5_000 }))).message).toMatch(/port closed the connection/);
    const absent = await failure(sendIdentity(join(dir, "none.sock"), identity, { budgetMs: 5_000 }));
    expect(absent.message).toMatch(/no agent port at .*none\.sock \(ENOENT\)/);
  });
});
