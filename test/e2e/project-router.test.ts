/**
 * examples/router-web end to end, as a user runs it: `router` (layers base +
 * the example's own `router` layer: forwarding, DNAT and masquerade) and
 * `web` (busybox httpd on a private network, its only way out through the
 * router). Inside a network namespace this test makes, with unrestricted
 * user networking (it can reach nothing but the namespace's loopback):
 *
 *   host 127.0.0.1:8080 -> router (user-net forward, DNAT) -> web:80
 *   web -> router (its gateway, masquerade) -> 192.0.2.10:8000, a server on
 *   a dummy interface of the namespace (not its loopback: guests reach the
 *   host's loopback only when allowed to)
 *
 * The router's layers are built first outside the namespace, from the
 * tests' loopback Debian repository, into the shared cache; `up` then finds
 * them cached.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureDebian, serveAptRepo } from "../vm/apt-repo.js";
import { Harness, repoRoot } from "../vm/harness.js";

const example = join(repoRoot, "examples", "router-web", "skiff.yml");
const project = ["-f", example, "-p", "routerweb"];
const unrestricted = { SKIFF_USERNET_RESTRICT: "0" };
const build = new Harness();
const h = Harness.inNewNetns("skt-rtr");
let repo: Awaited<ReturnType<typeof serveAptRepo>> | undefined;
let outside: ChildProcess | undefined;

/** Node inside the test's namespace, running `script`; its stdout. */
function inNetns(script: string): string {
  const r = spawnSync("ip", ["netns", "exec", h.netns!, process.execPath, "-e", script], { encoding: "utf8", timeout: 60_000 });
  if (r.status !== 0) throw new Error(`node in ${h.netns} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  repo = await serveAptRepo();
  await ensureDebian(build, repo.mirror);
  await build.ok(["build", ...project], { timeoutMs: 1_800_000, env: { SKIFF_APT_MIRROR: repo.mirror } });
  // "The internet" as far as web knows: a server on an address of the namespace's own (TEST-NET-1, on a veth: this kernel has no dummy links).
  const dummy = spawnSync("ip", ["netns", "exec", h.netns!, "sh", "-ec", "ip link add outside0 type veth peer name outside1; ip addr add 192.0.2.10/32 dev outside0; ip link set outside1 up; ip link set outside0 up"], { encoding: "utf8" });
  if (dummy.status !== 0) throw new Error(`cannot make the outside address: ${dummy.stderr}`);
  outside = spawn("ip", ["netns", "exec", h.netns!, process.execPath, "-e", "require('http').createServer((q, s) => s.end('outside-ok ' + q.socket.remoteAddress + '\\n')).listen(8000, '192.0.2.10')"], { stdio: "ignore" });
  await h.ok(["up", "-d", "--wait", ...project], { timeoutMs: 600_000, env: unrestricted });
}, 2_400_000);

afterAll(async () => {
  await h.run(["down", ...project], { timeoutMs: 120_000, env: unrestricted });
  outside?.kill("SIGKILL");
  await h.cleanup();
  await build.cleanup();
  await repo?.close();
});

describe("the router + web example", () => {
  it("serves web's page on the host's port 8080 through the router", async () => {
    const page = inNetns("fetch('http://127.0.0.1:8080/').then(async (r) => process.stdout.write(r.status + ' ' + (await r.text())))");
    expect(page).toBe("200 hello from web, through the router\n");
  });

  it("gives web no way out but through the router, which masquerades it", async () => {
    expect(await h.ok(["compose", ...project, "exec", "web", "ip", "route"])).toMatch(/^default via 10\.80\.0\.1 dev eth0/m);
    expect(await h.ok(["compose", ...project, "exec", "web", "ip", "-o", "link"])).not.toMatch(/eth1/);
    const out = await h.ok(["compose", ...project, "exec", "web", "wget", "-q", "-O", "-", "http://192.0.2.10:8000/"]);
    // The server saw the namespace's own address (slirp's socket for the router), not web's private address.
    expect(out).toBe("outside-ok 192.0.2.10\n");
    expect(await h.ok(["compose", ...project, "logs", "router"])).toMatch(/router: forwarding and NAT rules in place/);
    // -n N: the last N lines of each VM's log, each prefixed with the VM's name.
    const tail = (await h.ok(["compose", ...project, "logs", "-n", "2", "router", "web"])).split("\n").filter((l) => l !== "");
    expect(tail).toHaveLength(4);
    expect(tail.slice(0, 2).every((l) => /^\S*router\S* +\| /.test(l))).toBe(true);
    expect(tail.slice(2).every((l) => /^\S*web\S* +\| /.test(l))).toBe(true);
  });
});
