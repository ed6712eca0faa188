/**
 * The jailer (src/jail/skiff-jail.c) on its own, with a shell in place of
 * QEMU: what a QEMU taken over by its guest could do from inside the jail.
 * It runs as root, in a network namespace this test makes for the TAP case.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "./harness.js";

const jailer = join(repoRoot, "dist", "jail", "skiff-jail");
const uid = 1_599_990_001;
const dir = mkdtempSync(join(tmpdir(), "skiff-jail-test-"));
const root = join(dir, "root");
const share = join(dir, "share");
const log = join(dir, "log");
const ns = `skt-jail-${process.pid}`;

/** Run `script` with sh inside a jail as `uid`; its stdout and stderr come back through the log. */
function inJail(script: string, extra: string[] = [], netns?: string, fds: (number | "ignore")[] = []): { status: number | null; out: string; stderr: string } {
  writeFileSync(log, "");
  const argv = [jailer, "--uid", String(uid), "--gid", String(uid), "--root", root, "--log", log, "--idmap", `${share}:0:0`, "--dev", "null", ...extra, "--", "/bin/sh", "-c", script];
  const [cmd, args] = netns === undefined ? [argv[0]!, argv.slice(1)] : ["ip", ["netns", "exec", netns, ...argv]];
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 20_000, stdio: ["ignore", "pipe", "pipe", ...fds] });
  relaysEnded(log);
  return { status: r.status, out: existsSync(log) ? execFileSync("cat", [log], { encoding: "utf8" }) : "", stderr: r.stderr };
}

/** stdio entries 3–10 left out, so the next one is the child's fd 11. */
const fillerTo11: "ignore"[] = Array<"ignore">(8).fill("ignore");

beforeAll(() => {
  mkdirSync(root);
  mkdirSync(share);
  execFileSync("ip", ["netns", "add", ns]);
  execFileSync("ip", ["-n", ns, "link", "add", "skt-br", "type", "bridge"]);
});

afterAll(() => {
  execFileSync("ip", ["netns", "del", ns]);
  rmSync(dir, { recursive: true, force: true });
});

describe("inside the jail", () => {
  it("runs as the jail user with no capabilities, no_new_privs and a seccomp filter", () => {
    const r = inJail("id -u; id -g; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status");
    expect(r.status).toBe(0);
    expect(r.out).toBe(`${uid}\n${uid}\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n`);
  });

  it("sees only what it was given: no /etc/passwd, no /root, no home, a read-only root", () => {
    const r = inJail("ls /; echo --; ls /etc; echo --; test -e /etc/passwd && echo passwd; test -e /root && echo root; touch /x 2>&1 || echo ro; ls /proc | grep -c '^[0-9]'");
    const [top, etc] = r.out.split("--\n");
    expect(top!.trim().split("\n")).toEqual(["bin", "dev", "etc", "lib", "lib64", "proc", "sbin", "tmp", "usr"]);
    expect(etc!.trim().split("\n").every((f) => f === "ld.so.cache" || f === "resolv.conf")).toBe(true);
    expect(r.out).not.toMatch(/^(passwd|root)$/m);
    expect(r.out).toMatch(/Read-only file system\nro\n/);
    // Its own proc shows its own processes only (hidepid): the shell and ls and grep.
    expect(Number(r.out.trim().split("\n").at(-1))).toBeLessThan(5);
  });

  it("cannot make set-id files, device nodes or fifos where it may write, but plain files yes", () => {
    const r = inJail(
      [
        "cd /" + share.slice(1),
        "echo x > plain; echo made",
        "chmod 4755 plain 2>&1; chmod g+s plain 2>&1",
        "python3 -c \"import os; os.open('setuid', os.O_CREAT | os.O_WRONLY, 0o4755)\" 2>&1 | tail -1",
        "mknod mem c 1 1 2>&1; mkfifo fifo 2>&1",
        "ls -ln",
      ].join("; "),
    );
    expect(r.out).toContain("made");
    expect(r.out.match(/Operation not permitted/g)?.length).toBeGreaterThanOrEqual(5);
    expect(existsSync(join(share, "setuid"))).toBe(false);
    expect(existsSync(join(share, "mem"))).toBe(false);
    const plain = lstatSync(join(share, "plain"));
    // On disk the jail user's file is the share owner's (root here), and never set-id.
    expect([plain.uid, plain.mode & 0o7000]).toEqual([0, 0]);
  });

  it("gets its TAP as an open descriptor, on its bridge, gone when it exits", () => {
    const r = inJail("readlink /proc/self/fd/3; cat /sys/class/net/sktap0/master/uevent 2>/dev/null | head -1; echo ok", ["--tap", "sktap0:skt-br:3"], ns);
    // Opened before the jail's root replaced the host's, so the kernel shows its path relative to nothing it can see.
    expect(r.out).toMatch(/^\S*\/net\/tun\nok\n$/);
    expect(execFileSync("ip", ["-n", ns, "-o", "link", "show"], { encoding: "utf8" })).not.toContain("sktap0");
  });

  it("keeps stdin, stdout and stderr its own with TAPs at 3 and 4 (they once replaced /dev/null and the log)", () => {
    const r = inJail("readlink /proc/self/fd/0 /proc/self/fd/3 /proc/self/fd/4; echo out; echo err >&2", ["--tap", "sktap0:skt-br:3", "--tap", "sktap1:skt-br:4"], ns);
    expect(r.status).toBe(0);
    // Opened before the jail's root: /dev/null shows relative to nothing, as the TAPs do.
    expect(r.out).toMatch(/^\S*\/null\n\S*\/net\/tun\n\S*\/net\/tun\nout\nerr\n$/);
  });

  it("gets a sealed RAM memfd at --ram-fd that it can read and map privately but never change", () => {
    const memFile = join(dir, "mem");
    writeFileSync(memFile, Buffer.concat([Buffer.from("guest-ram"), Buffer.alloc(8192 - 9)]));
    const addon = createRequire(import.meta.url)(join(repoRoot, "dist", "snapshot", "memfd.node")) as { sealedCopy(path: string, name: string): number };
    const fd = addon.sealedCopy(memFile, "skiff-ram");
    expect(fd).toBeGreaterThan(2);
    try {
      const at11 = [...fillerTo11, fd];
      const r = inJail(
        [
          "readlink /proc/self/fd/11",
          "head -c 9 /proc/self/fd/11; echo",
          "echo x >> /proc/self/fd/11 2>&1 || echo no-append",
          "echo x 1<>/proc/self/fd/11 2>&1 || echo no-write",
          "truncate -s 0 /proc/self/fd/11 2>&1 || echo no-truncate",
          "fallocate -p -o 0 -l 4096 /proc/self/fd/11 2>&1 || echo no-hole",
          // QEMU's own mapping: private and writable is allowed (copy-on-write), shared and writable is not.
          "python3 -c \"import mmap,os; f=os.open('/proc/self/fd/11', os.O_RDWR); m=mmap.mmap(f, 8192, mmap.MAP_PRIVATE); m[0:1]=b'G'; print('private', m[0:9].decode())\"",
          "python3 -c \"import mmap,os; f=os.open('/proc/self/fd/11', os.O_RDWR); mmap.mmap(f, 8192, mmap.MAP_SHARED)\" 2>&1 | tail -1",
        ].join("; "),
        [`--ram-fd`, "11"],
        undefined,
        at11,
      );
      expect(r.status).toBe(0);
      const lines = r.out.trim().split("\n");
      expect(lines[0]).toMatch(/^\/memfd:skiff-ram/);
      expect(lines[1]).toBe("guest-ram");
      for (const refused of ["no-append", "no-write", "no-truncate", "no-hole"]) expect(lines).toContain(refused);
      expect(lines).toContain("private Guest-ram");
      expect(lines.at(-1)).toMatch(/PermissionError|Operation not permitted/);
    } finally {
      closeSync(fd);
    }
    // A descriptor that is not sealed could be every fork's RAM changed from one: refused before QEMU runs.
    const plain = openSync(memFile, "r");
    try {
      const r = inJail("echo ran", ["--ram-fd", "11"], undefined, [...fillerTo11, plain]);
      expect(r.status).toBe(125);
      expect(r.stderr).toMatch(/^skiff-jail: --ram-fd 11 is not a sealable memfd/);
      expect(r.out).not.toContain("ran");
    } finally {
      closeSync(plain);
    }
  });

  it("refuses what it cannot do safely, before anything runs", () => {
    const noRoot = spawnSync(jailer, ["--uid", "1", "--gid", "1", "--log", log, "--", "/bin/true"], { encoding: "utf8" });
    expect([noRoot.status, noRoot.stderr]).toEqual([125, "skiff-jail: bad arguments: --root is required\n"]);
    const relative = spawnSync(jailer, ["--uid", "1", "--gid", "1", "--root", root, "--log", log, "--ro", "etc/passwd", "--", "/bin/true"], { encoding: "utf8" });
    expect(relative.status).toBe(125);
    const dots = spawnSync(jailer, ["--uid", "1", "--gid", "1", "--root", root, "--log", log, "--ro", "/a/../etc/shadow", "--", "/bin/true"], { encoding: "utf8" });
    expect(dots.status).toBe(125);
    const tiny = spawnSync(jailer, ["--uid", "1", "--gid", "1", "--root", root, "--log", log, "--log-limit", "100", "--", "/bin/true"], { encoding: "utf8" });
    expect([tiny.status, tiny.stderr]).toEqual([125, "skiff-jail: bad arguments: --log-limit\n"]);
  });
});

/**
 * In the foreground the jailer becomes the program, and the relay is a process of its own that writes
 * what it read last after the program has ended: wait up to 2 s for it to end. The relays still
 * there after that (none, once it ends with its last writer). It is waited for as a holder of the
 * log: it holds it from its fork on, while it names itself only later (on a busy host, after the
 * program has ended: a wait that looked for its name found none, and the log was read empty).
 */
function relaysEnded(file: string): ReturnType<typeof relaysOf> {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 100 && holdersOf(file).length > 0; i++) Atomics.wait(pause, 0, 0, 20);
  return relaysOf(file);
}

/** The processes other than this one with `file` open. */
function holdersOf(file: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const fds = readdirSync(`/proc/${entry}/fd`);
      if (fds.some((fd) => linkOf(`/proc/${entry}/fd/${fd}`) === file)) pids.push(Number(entry));
    } catch {
      // ended meanwhile, or not readable
    }
  }
  return pids;
}

function linkOf(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

/** The log relays writing to `file`: pid, and what /proc says of each. */
function relaysOf(file: string): { pid: number; cmdline: string; status: string }[] {
  const found: { pid: number; cmdline: string; status: string }[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() !== "skiff-jail-log") continue;
      if (readlinkSync(`/proc/${entry}/fd/1`) !== file) continue;
      found.push({ pid: Number(entry), cmdline: readFileSync(`/proc/${entry}/cmdline`, "latin1"), status: readFileSync(`/proc/${entry}/status`, "utf8") });
    } catch {
      // ended meanwhile, or not readable
    }
  }
  return found;
}

describe("QEMU's log, bounded (--log-limit)", () => {
  const flood = (lines: number) => `i=0; while [ $i -lt ${lines} ]; do echo "flood line $i: a guest making QEMU complain"; i=$((i+1)); done >&2; echo the-last-word >&2`;

  it("keeps the start and the end of what the jailed program writes, and counts what it dropped", () => {
    const r = inJail(flood(8000), ["--log-limit", "65536"]);
    expect(r.status).toBe(0);
    const size = lstatSync(log).size;
    // 64 KiB, two notes and the last 16 KiB, of the ~370 KB written.
    expect(size).toBeGreaterThan(65536 + 16384);
    expect(size).toBeLessThan(65536 + 16384 + 1024);
    expect(r.out.startsWith("flood line 0: ")).toBe(true);
    const reached = /\nskiff-jail: the log reached its limit[^\n]*\n/.exec(r.out);
    expect(reached?.index).toBe(65536);
    const dropped = /skiff-jail: (\d+) bytes of QEMU's output dropped; its last 16384 bytes:\n/.exec(r.out);
    expect(dropped).not.toBeNull();
    expect(r.out.endsWith("flood line 7999: a guest making QEMU complain\nthe-last-word\n")).toBe(true);
    // Nothing lost but what the note counts: the program's bytes in the file plus the dropped ones are all it wrote.
    const wrote = spawnSync("sh", ["-c", flood(8000)], { encoding: "utf8" }).stderr.length;
    expect(size - reached![0].length - dropped![0].length + Number(dropped![1])).toBe(wrote);
    // The relay ended with the last writer.
    expect(relaysOf(log)).toEqual([]);
  });

  it("writes output below the limit as it comes, and moves a log already at the limit to FILE.1", () => {
    expect(inJail("echo hello; echo world >&2", ["--log-limit", "65536"]).out).toBe("hello\nworld\n");
    writeFileSync(log, "x".repeat(70_000));
    const argv = ["--uid", String(uid), "--gid", String(uid), "--root", root, "--log", log, "--log-limit", "65536", "--dev", "null", "--", "/bin/sh", "-c", "echo after"];
    expect(spawnSync(jailer, argv).status).toBe(0);
    expect(relaysEnded(log)).toEqual([]);
    expect(readFileSync(log, "utf8")).toBe("after\n");
    expect(lstatSync(`${log}.1`).size).toBe(70_000);
    rmSync(`${log}.1`);
  });

  it("relays through a process with no privileges and no VM's command line, holding only the pipe and the log", async () => {
    writeFileSync(log, "");
    const argv = ["--uid", String(uid), "--gid", String(uid), "--root", root, "--log", log, "--log-limit", "65536", "--dev", "null", "--", "/bin/sh", "-c", "ls -l /proc/self/fd/2; sleep 2; echo done"];
    const child = spawn(jailer, argv, { stdio: "ignore" });
    const ended = new Promise((resolve) => child.on("exit", resolve));
    let relays = relaysOf(log);
    for (let i = 0; i < 100 && relays.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
      relays = relaysOf(log);
    }
    expect(relays).toHaveLength(1);
    const relay = relays[0]!;
    expect(relay.cmdline.replace(/\0+$/, "")).toBe("skiff-jail-log");
    expect(relay.status).toMatch(/^CapEff:\s+0+$/m);
    expect(relay.status).toMatch(/^CapBnd:\s+0+$/m);
    expect(relay.status).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(readdirSync(`/proc/${relay.pid}/fd`).sort()).toEqual(["0", "1"]);
    await ended;
    for (let i = 0; i < 100 && relaysOf(log).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(relaysOf(log)).toEqual([]);
    // The jailed program's stderr was the pipe, never the log itself.
    expect(readFileSync(log, "utf8")).toMatch(/ \/proc\/self\/fd\/2 -> pipe:\[\d+\]\ndone\n$/);
  }, 20_000);
});

describe("the console log, rotated (--console-log FILE --console-fd N)", () => {
  const consoleLog = join(dir, "console.log");
  const lines = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `console line ${from + i}\n`).join("");

  it("gets what the program writes to /proc/self/fd/N, and keeps the latest output across FILE.1 and FILE", () => {
    rmSync(consoleLog, { force: true });
    rmSync(`${consoleLog}.1`, { force: true });
    writeFileSync(consoleLog, "from an earlier start\n");
    // ~190 KB through the pipe, as QEMU writes its console log (logfile=/proc/self/fd/12).
    const script = `i=0; while [ $i -lt 9000 ]; do echo "console line $i"; i=$((i+1)); done > /proc/self/fd/12; echo to-stderr >&2`;
    const r = inJail(script, ["--log-limit", "65536", "--console-log", consoleLog, "--console-fd", "12"]);
    expect(r.status).toBe(0);
    expect(r.out).toBe("to-stderr\n");
    const older = readFileSync(`${consoleLog}.1`, "utf8");
    const newer = readFileSync(consoleLog, "utf8");
    expect(older.length).toBe(65536);
    expect(newer.length).toBeLessThanOrEqual(65536);
    // Rotated at the limit each time: the two files are the end of everything written, in order, nothing lost.
    const written = `from an earlier start\n${lines(0, 9000)}`;
    expect(written.endsWith(older + newer)).toBe(true);
    expect(newer.endsWith("console line 8999\n")).toBe(true);
    expect(relaysOf(log)).toEqual([]);
  });

  it("moves a console log already at the limit aside before the start, and refuses a descriptor it cannot give", () => {
    writeFileSync(consoleLog, "y".repeat(65536));
    rmSync(`${consoleLog}.1`, { force: true });
    expect(inJail("echo booted > /proc/self/fd/12", ["--log-limit", "65536", "--console-log", consoleLog, "--console-fd", "12"]).status).toBe(0);
    expect(readFileSync(consoleLog, "utf8")).toBe("booted\n");
    expect(lstatSync(`${consoleLog}.1`).size).toBe(65536);
    const clash = spawnSync(jailer, ["--uid", "1", "--gid", "1", "--root", root, "--log", log, "--log-limit", "65536", "--ram-fd", "12", "--console-log", consoleLog, "--console-fd", "12", "--", "/bin/true"], { encoding: "utf8" });
    expect([clash.status, clash.stderr]).toEqual([125, "skiff-jail: bad arguments: --ram-fd and --console-fd name one descriptor\n"]);
    const unbounded = spawnSync(jailer, ["--uid", "1", "--gid", "1", "--root", root, "--log", log, "--console-log", consoleLog, "--console-fd", "12", "--", "/bin/true"], { encoding: "utf8" });
    expect([unbounded.status, unbounded.stderr]).toEqual([125, "skiff-jail: bad arguments: --console-log needs --log-limit\n"]);
  });
});
