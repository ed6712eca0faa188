/**
 * The security suite: each exploit found against skiff, tried as an
 * attacker would (from inside a guest, as another local user, or as a
 * QEMU taken over by its guest), must fail. Copying out of a hostile guest
 * has its own file (security-cp.test.ts); the jailer's filter against set-id
 * files, tried by a process in the jail itself, is in test/vm/jail.test.ts.
 *
 * Everything happens in two network namespaces this test makes: "host",
 * where skiff and its QEMUs run with a service on the host's loopback, and
 * "outside", the world beyond the default route, with two web servers.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeHostAndOutside, removeNamespaces } from "../vm/outside.js";
import { Harness, sharedCache } from "../vm/harness.js";

const hostNs = `skt-sech-${process.pid}`;
const outNs = `skt-seco-${process.pid}`;
const h = new Harness({ netns: hostNs });
const open = { SKIFF_USERNET_RESTRICT: "0" };
const servers: ChildProcess[] = [];
const share = mkdtempSync(join(tmpdir(), "skiff-sec-share-"));

function server(ns: string, address: string, port: number): void {
  const code = `require("http").createServer((q, r) => r.end("hello from ${address}:${port}\\n")).listen(${port}, "${address}")`;
  servers.push(spawn("ip", ["netns", "exec", ns, process.execPath, "-e", code], { stdio: "ignore" }));
}

/** What the guest gets when it connects to ADDR:PORT: the first line of the answer, or how it failed. */
async function fetchFrom(vm: string, address: string, port: number): Promise<string> {
  const r = await h.run(["exec", vm, "sh", "-c", `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${address} ${port} | tail -1`]);
  return (r.stdout.trim() || r.stderr.trim() || `exit ${r.code}`).split("\n")[0]!;
}

async function qemuPid(vm: string): Promise<number> {
  const info = JSON.parse(await h.ok(["inspect", vm]))[0] as { pid?: number };
  expect(info.pid).toBeGreaterThan(0);
  return info.pid!;
}

function procStatus(pid: number): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
    const [k, v] = line.split(":\t");
    if (k !== undefined && v !== undefined) fields[k] = v.trim();
  }
  return fields;
}

function vmConfig(vm: string): { id: string; jail?: { uid: number; gid: number } } {
  for (const id of readdirSync(join(h.home, "vms"))) {
    const path = join(h.home, "vms", id, "config.json");
    if (!existsSync(path)) continue;
    const config = JSON.parse(readFileSync(path, "utf8")) as { id: string; spec: { name: string }; jail?: { uid: number; gid: number } };
    if (config.spec.name === vm) return config;
  }
  throw new Error(`no VM ${vm}`);
}

/** Run `code` in node as user `nobody` (65534): another local user. */
function asNobody(code: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["-e", code], { uid: 65534, gid: 65534, encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  makeHostAndOutside(hostNs, outNs);
  server(hostNs, "127.0.0.1", 8099);
  server(outNs, "192.0.2.2", 80);
  server(outNs, "192.0.2.2", 81);
  mkdirSync(join(share, "sub"));
  await Promise.all([
    h.ok(["run", "-d", "--name", "a", "-v", `${share}:/share`, "base"], { env: open }),
    h.ok(["run", "-d", "--name", "lb", "--host-loopback", "base"], { env: open }),
  ]);
  await Promise.all([
    h.ok(["run", "-d", "--name", "only80", "--egress", "allow=192.0.2.2:80", "base"], { env: open }),
    h.ok(["run", "-d", "--name", "none", "--egress", "deny", "base"], { env: open }),
  ]);
}, 600_000);

afterAll(async () => {
  for (const s of servers) s.kill("SIGKILL");
  await h.ok(["rm", "-f", "a", "lb", "only80", "none"]).catch(() => "");
  await h.cleanup();
  removeNamespaces(hostNs, outNs);
  rmSync(share, { recursive: true, force: true });
});

describe("QEMU, taken over by its guest, holds nothing", () => {
  it("runs as a jail user of its own, with no capabilities, no_new_privs and seccomp", async () => {
    const pid = await qemuPid("a");
    const jail = vmConfig("a").jail;
    expect(jail?.uid).toBeGreaterThanOrEqual(1_600_000_001);
    const st = procStatus(pid);
    expect(st.Uid).toBe(`${jail!.uid}\t${jail!.uid}\t${jail!.uid}\t${jail!.uid}`);
    expect(st.Gid?.split("\t")[0]).toBe(String(jail!.gid));
    for (const caps of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]) expect(st[caps], caps).toBe("0000000000000000");
    expect(st.NoNewPrivs).toBe("1");
    expect(st.Seccomp).toBe("2");
    // QEMU's own -sandbox filter stacked on the jailer's.
    expect(Number(st.Seccomp_filters)).toBeGreaterThanOrEqual(2);
  });

  it("sees a private root holding only its own VM's files", async () => {
    const pid = await qemuPid("a");
    const root = `/proc/${pid}/root`;
    // The system's programs and libraries read-only, a few devices, its own proc, and the paths of its files
    // (the VM's under the home in /tmp, the image base and kernel under the cache's top directory).
    const top = [...new Set(["bin", "dev", "etc", "lib", "lib64", "proc", "sbin", "tmp", "usr", sharedCache.split("/")[1]!])].sort();
    expect(readdirSync(root).sort()).toEqual(top);
    expect(existsSync(join(root, "etc/shadow"))).toBe(false);
    expect(readdirSync(join(root, "etc")).sort()).toEqual(expect.arrayContaining(["resolv.conf"]));
    const vms = readdirSync(join(root, h.home, "vms"));
    expect(vms).toEqual([vmConfig("a").id]);
    // The VM's keys and records are not there: only what QEMU's argv names.
    expect(readdirSync(join(root, h.home, "vms", vms[0]!)).sort()).toEqual(["initrd.img", "overlay.qcow2", "run"]);
    expect(existsSync(join(root, h.home, "locks"))).toBe(false);
  });

  it("cannot touch another VM's disk: each overlay belongs to its own jail user alone", () => {
    const a = vmConfig("a");
    const b = vmConfig("lb");
    expect(a.jail!.uid).not.toBe(b.jail!.uid);
    const overlay = lstatSync(join(h.home, "vms", b.id, "overlay.qcow2"));
    expect([overlay.uid, overlay.mode & 0o777]).toEqual([b.jail!.uid, 0o600]);
    const code = `try { require("fs").readFileSync(${JSON.stringify(join(h.home, "vms", b.id, "overlay.qcow2"))}); console.log("read") } catch (e) { console.log(e.code) }`;
    const r = spawnSync(process.execPath, ["-e", code], { uid: a.jail!.uid, gid: a.jail!.gid, encoding: "utf8" });
    expect(r.stdout.trim()).toBe("EACCES");
  });

  it("is kept to its cgroup's memory and process limits", async () => {
    // In the host's own mount namespace: `ip netns exec` hides the host's cgroup hierarchies from what it runs.
    const plain = new Harness();
    try {
      await plain.ok(["run", "-d", "--name", "limited", "base"]);
      await checkLimits(plain);
    } finally {
      await plain.cleanup();
    }
  });
});

async function checkLimits(plain: Harness): Promise<void> {
  const pid = (JSON.parse(await plain.ok(["inspect", "limited"]))[0] as { pid: number }).pid;
  const groups = readFileSync(`/proc/${pid}/cgroup`, "utf8");
  const memory = /^\d+:memory:(\S+)$/m.exec(groups)?.[1] ?? /^0::(\S+)$/m.exec(groups)?.[1];
  expect(memory).toMatch(/skiff-[0-9a-f]{12}\/vm-[0-9a-f]{12}$/);
  const v1 = join("/sys/fs/cgroup/memory", memory!, "memory.limit_in_bytes");
  const limit = Number(readFileSync(existsSync(v1) ? v1 : join("/sys/fs/cgroup", memory!, "memory.max"), "utf8"));
  // 256 MiB of guest, TCG's translation cache and QEMU: bounded, far below the host's 24 GiB.
  expect(limit).toBe((256 + 1280) * 2 ** 20);
  const pids = /^\d+:pids:(\S+)$/m.exec(groups)?.[1];
  const pidsMax = pids === undefined ? join("/sys/fs/cgroup", memory!, "pids.max") : join("/sys/fs/cgroup/pids", pids, "pids.max");
  expect(readFileSync(pidsMax, "utf8").trim()).toBe("512");
}

describe("a guest's root cannot plant anything on the host through a bind mount", () => {
  beforeAll(async () => {
    await h.ok([
      "exec",
      "a",
      "sh",
      "-c",
      [
        "cp /bin/busybox /share/rootshell && chmod 4755 /share/rootshell",
        "cp /bin/busybox /share/sub/groupshell && chmod 2755 /share/sub/groupshell",
        "mknod /share/mem c 1 1 && mknod /share/disk b 8 0 && mkfifo /share/fifo",
        "echo data > /share/theirs && chown 1234:1234 /share/theirs",
        "ln -s /etc/shadow /share/shadow",
      ].join(" && "),
    ]);
  });

  it("keeps what the guest set in the guest: modes, owners, device nodes, symlinks", async () => {
    const out = await h.ok(["exec", "a", "ls", "-ln", "/share"]);
    expect(out).toMatch(/^-rwsr-xr-x\s+1 0\s+0 .* rootshell$/m);
    expect(out).toMatch(/^crw-[-rw]+\s+1 0\s+0\s+1,\s+1 .* mem$/m);
    expect(out).toMatch(/^-rw-r--r--\s+1 1234\s+1234 .* theirs$/m);
    expect(out).toMatch(/^lrwxrwxrwx .* shadow -> \/etc\/shadow$/m);
  });

  it("lands as plain files of the directory's owner, without set-id bits, devices, fifos or symlinks", () => {
    const owner = statSync(share);
    for (const name of ["rootshell", "sub/groupshell", "mem", "disk", "fifo", "theirs", "shadow"]) {
      const st = lstatSync(join(share, name));
      expect(st.isFile(), name).toBe(true);
      expect(st.mode & 0o7000, name).toBe(0);
      expect([st.uid, st.gid], name).toEqual([owner.uid, owner.gid]);
    }
  });

  it("gives another local user nothing to run as root", () => {
    const r = spawnSync(join(share, "rootshell"), ["id", "-u"], { uid: 65534, gid: 65534, encoding: "utf8" });
    // Not even runnable (0600); and were it runnable, not as root.
    expect((r.stdout ?? "").trim()).not.toBe("0");
    expect(r.error?.message ?? "").toMatch(/EACCES/);
  });
});

describe("where a guest may connect is decided on the host", () => {
  it("a guest cannot reach the host's loopback services by default", async () => {
    expect(await fetchFrom("a", "10.0.2.2", 8099)).not.toContain("hello");
  });

  it("--host-loopback lets it", async () => {
    expect(await fetchFrom("lb", "10.0.2.2", 8099)).toBe("hello from 127.0.0.1:8099");
  });

  it("by default the rest of the world is reachable", async () => {
    expect(await fetchFrom("a", "192.0.2.2", 80)).toBe("hello from 192.0.2.2:80");
    expect(await fetchFrom("a", "192.0.2.2", 81)).toBe("hello from 192.0.2.2:81");
  });

  it("--egress allow= reaches exactly what it lists", async () => {
    expect(await fetchFrom("only80", "192.0.2.2", 80)).toBe("hello from 192.0.2.2:80");
    expect(await fetchFrom("only80", "192.0.2.2", 81)).not.toContain("hello");
    expect(await fetchFrom("only80", "10.0.2.2", 8099)).not.toContain("hello");
  });

  it("--egress deny reaches nothing, and guest root cannot lift it", async () => {
    expect(await fetchFrom("none", "192.0.2.2", 80)).not.toContain("hello");
    // Whatever the guest does to its own firewall, the rules are the host's.
    await h.run(["exec", "none", "sh", "-c", "iptables -F 2>/dev/null; nft flush ruleset 2>/dev/null; true"]);
    expect(await fetchFrom("none", "192.0.2.2", 80)).not.toContain("hello");
  });
});

describe("another local user", () => {
  it("can read none of skiff's files: not its home, not a privately pulled image base", () => {
    const base = readdirSync(join(h.home, "vms")).map((id) => JSON.parse(readFileSync(join(h.home, "vms", id, "config.json"), "utf8")) as { image?: { basePath?: string } })[0]?.image?.basePath;
    expect(base).toBeDefined();
    const st = statSync(base!);
    expect(st.mode & 0o007).toBe(0);
    const r = asNobody(
      `for (const p of ${JSON.stringify([h.home, join(h.home, "vms"), base!])}) { try { require("fs").readdirSync(p) } catch (e) { try { require("fs").readFileSync(p) ; console.log("read " + p) } catch (e2) { console.log(e2.code) } } }`,
    );
    expect(r.stdout.trim().split("\n")).toEqual(["EACCES", "EACCES", "EACCES"]);
  });

  it("cannot take or block skiff's locks", async () => {
    const r = asNobody(
      `const fs = require("fs"); for (const f of ["names.lock", "x.lock"]) { try { fs.openSync(${JSON.stringify(join(h.home, "locks"))} + "/" + f, "a"); console.log("opened") } catch (e) { console.log(e.code) } }`,
    );
    expect(r.stdout.trim().split("\n")).toEqual(["EACCES", "EACCES"]);
    await h.ok(["create", "--name", "after", "base"]);
    await h.ok(["rm", "after"]);
  });
});
