/**
 * `skiff network tcpdump` with real guests under TCG, on each kind of
 * network: a private one (skiff listens on the multicast group), a link
 * (a filter-dump inside one member's QEMU) and a bridge (tcpdump on the
 * bridge). Everything runs in a network namespace this test makes.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QmpClient } from "../../src/qemu/qmp.js";
import { collect, Harness, type CliResult } from "../vm/harness.js";

const h = Harness.inNewNetns("skt-cap");

afterAll(() => h.cleanup());

interface RunningCapture {
  /** Resolves once skiff says it captures (frames sent after this are seen). */
  ready: Promise<void>;
  result: Promise<CliResult>;
  kill(signal: NodeJS.Signals): void;
}

function capture(args: string[]): RunningCapture {
  const child = h.spawn(["network", "tcpdump", ...args]);
  const result = collect(child, { timeoutMs: 90_000 });
  let stderr = "";
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes("capturing on network")) resolve();
    });
    child.on("close", (code) => reject(new Error(`tcpdump ended before it captured (exit ${code}): ${stderr}`)));
  });
  ready.catch(() => undefined);
  return { ready, result, kill: (signal) => child.kill(signal) };
}

/** Two VMs booted side by side; --ip, so which has which address does not depend on who asked first. */
async function bootPair(network: string, vms: [string, string][]): Promise<void> {
  await Promise.all(vms.map(([name, ip]) => h.ok(["run", "-d", "--name", name, "--network", network, "--ip", ip, "base"])));
}

/** Capture `-c 4 icmp` on `network` while `from` pings `to` twice: what tcpdump printed, four lines. */
async function captureTwoPings(network: string, from: string, to: string): Promise<CliResult> {
  const cap = capture([network, "-c", "4", "icmp"]);
  await cap.ready;
  await h.ok(["exec", from, "ping", "-c", "2", "-W", "5", to]);
  const r = await cap.result;
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout.trim().split("\n")).toHaveLength(4);
  return r;
}

function expectEcho(text: string, from: string, to: string): void {
  const re = (s: string) => s.replaceAll(".", "\\.");
  expect(text).toMatch(new RegExp(`IP ${re(from)} > ${re(to)}: ICMP echo request`));
  expect(text).toMatch(new RegExp(`IP ${re(to)} > ${re(from)}: ICMP echo reply`));
}

function decode(file: string): string {
  return execFileSync("tcpdump", ["-n", "-r", file], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
}

async function qomObjects(vm: string): Promise<string[]> {
  const [info] = JSON.parse(await h.ok(["inspect", vm])) as { id: string }[];
  const qmp = await QmpClient.connect(join(h.home, "vms", info!.id, "run", "qmp.sock"));
  try {
    return (await qmp.execute<{ name: string }[]>("qom-list", { path: "/objects" })).map((o) => o.name);
  } finally {
    qmp.close();
  }
}

describe("tcpdump on a private network", () => {
  beforeAll(async () => {
    await h.ok(["network", "create", "lan"]);
    await bootPair("lan", [["a", "10.90.0.2"], ["b", "10.90.0.3"]]);
  });
  afterAll(async () => {
    await h.ok(["rm", "-f", "a", "b"]);
  });

  it("shows the ICMP exchange between two VMs as tcpdump text and stops after -c", async () => {
    const r = await captureTwoPings("lan", "a", "10.90.0.3");
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{6} IP 10\.90\.0\.2 > 10\.90\.0\.3: ICMP echo request, id \d+, seq 0, length 64$/);
    expect(lines[1]).toMatch(/IP 10\.90\.0\.3 > 10\.90\.0\.2: ICMP echo reply, id \d+, seq 0, length 64$/);
    expect(r.stderr).toMatch(/capturing on network lan \(private: multicast 239\.255\.\d+\.\d+:\d+ on loopback\)/);
  });

  it("writes pcap that tcpdump -r reads, with the filter applied", async () => {
    const file = join(h.home, "lan.pcap");
    const cap = capture(["lan", "-w", file, "-c", "2", "icmp", "and", "host", "10.90.0.3"]);
    await cap.ready;
    await h.ok(["exec", "b", "ping", "-c", "1", "-W", "5", "10.90.0.2"]);
    expect((await cap.result).code).toBe(0);
    const text = decode(file);
    expectEcho(text, "10.90.0.3", "10.90.0.2");
    expect(text).not.toMatch(/ARP/);
  });

  it("ends cleanly on SIGTERM, and refuses bad input with coded errors", async () => {
    const cap = capture(["lan"]);
    await cap.ready;
    cap.kill("SIGTERM");
    expect((await cap.result).code).toBe(0);
    const unknown = await h.run(["network", "tcpdump", "nosuch"]);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain("ERR_SKIFF_NETWORK_NOT_FOUND");
    expect(unknown.stderr).not.toMatch(/\n\s+at /);
    const badFilter = await h.run(["network", "tcpdump", "lan", "icmp", "and", "("]);
    expect(badFilter.code).toBe(2);
    expect(badFilter.stderr).toContain("ERR_SKIFF_USAGE");
  });
});

describe("tcpdump on a link network", () => {
  const runDir = (): string => join(h.home, "networks", "wire.d");
  const fifos = (): string[] => (existsSync(runDir()) ? readdirSync(runDir()).filter((f) => f.endsWith(".fifo")) : []);

  beforeAll(async () => {
    await h.ok(["network", "create", "wire", "--driver", "link", "--subnet", "10.77.0.0/30"]);
    await h.ok(["run", "-d", "--name", "left", "--network", "wire", "base"]);
    await h.ok(["run", "-d", "--name", "right", "--network", "wire", "base"]);
  });
  afterAll(async () => {
    await h.ok(["rm", "-f", "left", "right"]);
  });

  it("sees both directions through a filter inside QEMU, and takes it out again", async () => {
    const r = await captureTwoPings("wire", "left", "10.77.0.2");
    expectEcho(r.stdout, "10.77.0.1", "10.77.0.2");
    expect(r.stderr).toContain("inside left's QEMU");
    expect((await qomObjects("left")).filter((o) => o.startsWith("skiff-capture-"))).toEqual([]);
    expect(fifos()).toEqual([]);
  });

  it("survives a capture killed outright: the link keeps working and the next capture sweeps up", async () => {
    const killed = capture(["wire"]);
    await killed.ready;
    killed.kill("SIGKILL");
    await killed.result;
    expect((await qomObjects("left")).some((o) => o.startsWith("skiff-capture-"))).toBe(true);
    // QEMU finds nobody reading the FIFO and stops dumping; the guest's traffic is not held up.
    expect(await h.ok(["exec", "left", "ping", "-c", "2", "-W", "5", "10.77.0.2"])).toMatch(/2 packets received/);
    const file = join(h.home, "wire.pcap");
    const cap = capture(["wire", "-w", file, "-c", "2", "icmp"]);
    await cap.ready;
    expect((await qomObjects("left")).filter((o) => o.startsWith("skiff-capture-"))).toHaveLength(1);
    await h.ok(["exec", "right", "ping", "-c", "1", "-W", "5", "10.77.0.1"]);
    expect((await cap.result).code).toBe(0);
    expect(decode(file)).toMatch(/IP 10\.77\.0\.2 > 10\.77\.0\.1: ICMP echo request/);
    expect(fifos()).toEqual([]);
  });

  it("captures through the other end when one VM is stopped, and says so when none runs", async () => {
    await h.ok(["stop", "left"]);
    const cap = capture(["wire", "-c", "1", "arp", "or", "icmp"]);
    await cap.ready;
    // Nobody answers; right's own frames are what there is to see.
    await h.run(["exec", "right", "ping", "-c", "1", "-W", "2", "10.77.0.1"]);
    const r = await cap.result;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("inside right's QEMU");
    expect(r.stdout).toMatch(/ARP, Request who-has 10\.77\.0\.1 tell 10\.77\.0\.2|IP 10\.77\.0\.2 > 10\.77\.0\.1: ICMP echo request/);
    await h.ok(["stop", "right"]);
    const none = await h.run(["network", "tcpdump", "wire"]);
    expect(none.code).toBe(4);
    expect(none.stderr).toContain("ERR_SKIFF_VM_NOT_RUNNING");
    expect(none.stderr).toContain("no VM on link network wire is running (left, right)");
    expect(none.stderr).toContain("skiff start left");
  });
});

describe("tcpdump on a bridge network", () => {
  beforeAll(async () => {
    await h.ok(["network", "create", "br", "--driver", "bridge", "--subnet", "10.91.0.0/24"]);
    await bootPair("br", [["c", "10.91.0.2"], ["d", "10.91.0.3"]]);
  });
  afterAll(async () => {
    await h.ok(["rm", "-f", "c", "d"]);
    await h.ok(["network", "rm", "br"]);
  });

  it("shows traffic the bridge forwards between two VMs", async () => {
    const r = await captureTwoPings("br", "c", "10.91.0.3");
    expectEcho(r.stdout, "10.91.0.2", "10.91.0.3");
    expect(r.stderr).toMatch(/capturing on network br \(bridge skb-br\)/);
  });
});
