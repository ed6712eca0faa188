/**
 * SKIFF-IDENTITY against a real guest: a VM booted by the CLI on user
 * networking and a private network is told a new hostname, a new MAC and
 * address on its private NIC, a clock an hour ahead and a new /etc/hosts
 * over its agent port (as a VM restored from a snapshot will be), and
 * `skiff exec` then finds all of it in the guest. The private network's
 * multicast runs in a network namespace this test makes.
 */
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SkiffError } from "../../src/errors.js";
import { newNonce } from "../../src/guest/agent-handshake.js";
import { renderIdentityLine, sendIdentity, type GuestIdentity } from "../../src/guest/identity.js";
import { tryLock } from "../../src/store/lock.js";
import { vmFiles } from "../../src/store/vmdir.js";
import { Harness } from "./harness.js";

const h = Harness.inNewNetns("skt-ident");
let socketPath: string;
let vmId: string;
let identity: GuestIdentity;
const hourMs = 3_600_000;

/** The agent port 0, held as the engine holds a port: no `skiff exec` of this home takes it meanwhile. */
async function onPort<T>(use: () => Promise<T>): Promise<T> {
  const lock = await tryLock(`vm-${vmId}-agent-0`, { home: h.home, purpose: "identity test" });
  if (lock === undefined) throw new Error("agent port 0 is taken");
  try {
    return await use();
  } finally {
    await lock.release();
  }
}

/** Write `text` on the port every 100 ms (as a host repeats its lines) until what came back matches `until`; that text. */
function rawExchange(text: string, until: RegExp, timeoutMs = 20_000): Promise<string> {
  return onPort(
    () =>
      new Promise((resolve, reject) => {
        const socket = connect(socketPath);
        let seen = "";
        const repeat = setInterval(() => socket.write(text), 100);
        const done = (err?: Error) => {
          clearInterval(repeat);
          clearTimeout(timer);
          socket.destroy();
          if (err) reject(err);
          else resolve(seen);
        };
        const timer = setTimeout(() => done(new Error(`no ${until} within ${timeoutMs} ms; seen: ${seen.slice(-500)}`)), timeoutMs);
        socket.on("connect", () => socket.write(text));
        socket.on("data", (chunk) => {
          seen = (seen + chunk.toString("latin1")).slice(-8192);
          if (until.test(seen)) done();
        });
        socket.on("error", done);
      }),
  );
}

const exec = async (...argv: string[]) => h.ok(["exec", "a", ...argv]);

beforeAll(async () => {
  await h.ok(["network", "create", "lan"]);
  await h.ok(["run", "-d", "--name", "a", "--network", "user", "--network", "lan", "base"]);
  const [info] = JSON.parse(await h.ok(["inspect", "a"])) as { id: string; dir: string; interfaces: { name: string; mac: string; address: string }[] }[];
  vmId = info!.id;
  socketPath = join(info!.dir, vmFiles.agentSockets[0]!);
  expect(info!.interfaces.map((i) => [i.name, i.address])).toEqual([
    ["eth0", "10.0.2.15/24"],
    ["eth1", "10.90.0.2/24"],
  ]);
  identity = {
    timeMs: Date.now() + hourMs,
    hostname: "renamed-a",
    // eth0 as it is (applying it again must be harmless); eth1 renumbered.
    nics: [
      { name: "eth0", mac: info!.interfaces[0]!.mac, address: "10.0.2.15/24" },
      { name: "eth1", mac: "52:54:00:ab:cd:ef", address: "10.90.0.77/24" },
    ],
    gateway: "10.0.2.2",
    hosts: "127.0.0.1\tlocalhost\n10.90.0.77\trenamed-a\n10.90.0.9\tsome-peer\n",
  };
});
afterAll(async () => {
  if (process.env.SKIFF_KEEP_LOGS) console.log(h.consoleLogs());
  await h.cleanup();
});

/** What the guest should show after `identity` was applied (the clock aside). */
async function expectApplied(): Promise<void> {
  expect(await exec("hostname")).toBe("renamed-a\n");
  expect(await exec("cat", "/etc/hostname")).toBe("renamed-a\n");
  expect(await exec("cat", "/etc/hosts")).toBe(identity.hosts);
  expect(await exec("cat", "/sys/class/net/eth1/address")).toBe("52:54:00:ab:cd:ef\n");
  const addrs = await exec("ip", "-o", "-4", "addr", "show", "eth1");
  expect(addrs.match(/inet \S+/g)).toEqual(["inet 10.90.0.77/24"]);
  expect(await exec("ip", "-o", "-4", "addr", "show", "eth0")).toContain("inet 10.0.2.15/24");
  expect(await exec("ip", "route")).toMatch(/^default via 10\.0\.2\.2 dev eth0/m);
}

describe("a new identity over the agent port", () => {
  it("is applied: hostname, /etc/hosts, MAC, address, default route, clock", async () => {
    const started = performance.now();
    await onPort(() => sendIdentity(socketPath, identity, { budgetMs: 20_000, vm: "a" }));
    console.log(`identity sent and applied in ${(performance.now() - started).toFixed(0)} ms`);
    await expectApplied();
    const guestNow = Number((await exec("date", "+%s")).trim());
    // An hour ahead of the host, give or take the time the execs took.
    expect(guestNow - Date.now() / 1000).toBeGreaterThan(hourMs / 1000 - 120);
    expect(guestNow - Date.now() / 1000).toBeLessThan(hourMs / 1000 + 120);
    // The clock, the seed (write, RNDADDENTROPY, RNDRESEEDCRNG) and each step ran: the guest said so, and nothing else.
    const logs = await h.ok(["logs", "a"]);
    expect(logs).toContain("new identity: renamed-a");
    expect(logs).not.toMatch(/identity refused|ip .*: exit/);
  });

  it("is applied again harmlessly: a new nonce, and copies of one line answered alike", async () => {
    await onPort(() => sendIdentity(socketPath, identity, { budgetMs: 20_000, vm: "a" }));
    const nonce = newNonce();
    const seen = await rawExchange(renderIdentityLine(identity, nonce), new RegExp(`(SKIFF-IDENTITY-OK ${nonce}\\n){3}`));
    expect(seen).not.toContain("SKIFF-IDENTITY-ERR");
    await expectApplied();
    // Each copy of one line is applied once (the nonce remembered); the sendIdentity above is applied again.
    const logs = await h.ok(["logs", "a"]);
    expect(logs.match(/new identity: renamed-a/g)).toHaveLength(3);
  });

  it("answers ERR to a malformed line and to an identity it cannot apply, and the VM works on", async () => {
    const bad = newNonce();
    const dropped = newNonce();
    // A line past the relay's bound is dropped whole, not answered; the next line on the port still is.
    const long = `SKIFF-IDENTITY ${dropped} ${"0".repeat(40_000)}\n`;
    const seen = await rawExchange(`${long}SKIFF-IDENTITY ${bad} abc\n`, new RegExp(`SKIFF-IDENTITY-ERR ${bad} .*\\n`));
    expect(seen).toMatch(new RegExp(`SKIFF-IDENTITY-ERR ${bad} payload of an odd number of hex digits \\(3\\)\\n`));
    expect(seen).not.toContain(dropped);
    // Well-formed, but there is no eth9 to renumber: the guest's reason comes back as the error.
    const err = await onPort(() => sendIdentity(socketPath, { ...identity, nics: [{ name: "eth9", mac: "52:54:00:00:00:99", address: "10.9.9.9/24" }] }, { budgetMs: 20_000, vm: "a" })).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SkiffError);
    expect((err as SkiffError).code).toBe("ERR_SKIFF_IDENTITY");
    expect((err as SkiffError).message).toBe("the guest refused its new identity: no network device eth9");
    expect(await exec("echo", "still here")).toBe("still here\n");
    await expectApplied();
  });
});
