/**
 * User networking (restrict=on, as every test guest): -p forwards reached
 * from the host on loopback, `skiff port`, `skiff port-forward` on a running
 * VM, and the errors for ports that are taken.
 */
import { createServer, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Harness } from "../vm/harness.js";
import { freeLoopbackPort } from "../../src/network/ports.js";

const h = new Harness();
let hostPort = 0;
let addedPort = 0;
let blocker: Server | undefined;

beforeAll(async () => {
  hostPort = await freeLoopbackPort(new Set());
  addedPort = await freeLoopbackPort(new Set([hostPort]));
});

afterAll(async () => {
  blocker?.close();
  await h.cleanup();
});

async function fetchText(port: number): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${port}/hostname`, { signal: AbortSignal.timeout(10_000) });
  return r.text();
}

describe("user networking port forwards", () => {
  beforeAll(async () => {
    await h.ok(["run", "-d", "--name", "web", "-p", `${hostPort}:80`, "base"]);
    // busybox httpd daemonizes itself: it outlives the exec.
    await h.ok(["exec", "web", "httpd", "-p", "80", "-h", "/etc"]);
  });

  it("reaches a guest service through -p from the host", async () => {
    expect(await fetchText(hostPort)).toBe("web\n");
    expect(await h.ok(["port", "web"])).toBe(`80/tcp -> 127.0.0.1:${hostPort}\n`);
    expect(await h.ok(["ps"])).toContain(`127.0.0.1:${hostPort}->80/tcp`);
  });

  it("adds a forward to the running VM and removes it again", async () => {
    expect(await h.ok(["port-forward", "web", `${addedPort}:80`])).toBe(`127.0.0.1:${addedPort}->80/tcp\n`);
    expect(await fetchText(addedPort)).toBe("web\n");
    expect(await h.ok(["port", "web"])).toContain(`80/tcp -> 127.0.0.1:${addedPort} (added)`);
    await h.ok(["port-forward", "--remove", "web", `${addedPort}:80`]);
    await expect(fetchText(addedPort)).rejects.toThrow();
    expect(await h.ok(["port", "web"])).not.toContain(String(addedPort));
  });

  it("refuses a host port another VM forwards, or one the host uses, making nothing", async () => {
    const clash = await h.run(["create", "--name", "clash", "-p", `${hostPort}:8080`, "base"]);
    expect(clash.code).toBe(4);
    expect(clash.stderr).toContain("ERR_SKIFF_PORT_IN_USE");
    expect(clash.stderr).toContain("already forwarded to web");
    const busyPort = await freeLoopbackPort(new Set([hostPort, addedPort]));
    blocker = createServer();
    await new Promise<void>((resolve) => blocker!.listen(busyPort, "127.0.0.1", resolve));
    const busy = await h.run(["port-forward", "web", `${busyPort}:80`]);
    expect(busy.code).toBe(4);
    expect(busy.stderr).toContain("in use on this host");
    const bad = await h.run(["create", "-p", "80:99999", "base"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("(--publish)");
    expect((await h.ok(["ps", "-a", "-q"])).trim()).toBe("web");
  });

  it("gives no interface at all with --network none", async () => {
    const r = await h.ok(["run", "--rm", "--network", "none", "base", "ls", "/sys/class/net"]);
    expect(r).toBe("lo\n");
  });
});
