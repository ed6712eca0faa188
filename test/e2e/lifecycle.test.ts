/**
 * One VM through its life: exec in all its forms, cp both ways, OpenSSH
 * through ssh-config, persistence across stop/start, and the ways it can
 * end (stop, stop escalation, crash, rm).
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { alive, cliPath, collect, Harness } from "../vm/harness.js";

const h = new Harness();
const vm = "life";
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "skiff-life-"));
  expect(await h.ok(["run", "-d", "--name", vm, "base"])).toBe(`${vm}\n`);
});
afterAll(async () => {
  await h.cleanup();
  rmSync(work, { recursive: true, force: true });
});

function inspect(name = vm): { state: string; pid?: number; dir: string; exit?: { reason?: string } } {
  return JSON.parse(execFileSync(process.execPath, [cliPath, "inspect", name], { env: h.env }).toString())[0];
}

describe("a running VM", () => {
  it("shows in ps with its resources, and in inspect", async () => {
    const ps = await h.ok(["ps"]);
    expect(ps).toMatch(new RegExp(`^${vm}\\s+running \\(.*\\)\\s+base\\s+1\\s+256m`, "m"));
    const json = JSON.parse(await h.ok(["ps", "--format", "json"])) as { name: string; state: string }[];
    expect(json.map((v) => [v.name, v.state])).toEqual([[vm, "running"]]);
    expect(inspect().state).toBe("running");
  });

  it("refuses a second VM with the same name", async () => {
    const r = await h.run(["create", "--name", vm, "base"]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain("ERR_SKIFF_NAME_IN_USE");
  });

  it("exec returns exit codes and keeps streams apart", async () => {
    const r = await h.run(["exec", vm, "sh", "-c", "echo out; echo err >&2; exit 42"]);
    expect(r).toMatchObject({ code: 42, stdout: "out\n", stderr: "err\n" });
  });

  it("exec honours -u, -w and -e", async () => {
    const out = await h.ok(["exec", "-u", "user", "-w", "/tmp", "-e", "X=y z", vm, "sh", "-c", 'id -u; pwd; echo "$X"']);
    expect(out).toBe("1000\n/tmp\ny z\n");
  });

  it("exec -i forwards stdin until EOF", async () => {
    const input = Array.from({ length: 2000 }, (_, i) => `line ${i}`).join("\n") + "\n";
    const out = await h.ok(["exec", "-i", vm, "wc", "-l"], { input });
    expect(out.trim()).toBe("2000");
  });

  it("runs 8 execs at the same time", async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => h.run(["exec", vm, "sh", "-c", `sleep 1; echo exec-${i}`])),
    );
    expect(results.map((r) => r.code)).toEqual(Array(8).fill(0));
    expect(results.map((r) => r.stdout.trim()).sort()).toEqual(Array.from({ length: 8 }, (_, i) => `exec-${i}`).sort());
  });

  it("exec -t gives a real PTY with the terminal's size", async () => {
    const cmd = `stty cols 123 rows 45; ${process.execPath} ${cliPath} exec -it ${vm} sh -c 'tty; stty size'`;
    const out = execFileSync("script", ["-qec", cmd, "/dev/null"], { env: h.env, input: "" }).toString();
    expect(out).toMatch(/\/dev\/pts\/\d+/);
    expect(out).toContain("45 123");
  });

  it("Ctrl-C (SIGINT) reaches the guest command", async () => {
    const child = h.spawn(["exec", vm, "sh", "-c", "trap 'echo got-int; exit 130' INT; echo started; while true; do sleep 0.1; done"]);
    const done = collect(child);
    await new Promise<void>((resolve) => child.stdout?.on("data", (d: Buffer) => d.toString().includes("started") && resolve()));
    child.kill("SIGINT");
    const r = await done;
    expect(r.stdout).toContain("got-int");
    expect(r.code).toBe(130);
  });

  it("exec --timeout kills a command that runs too long", async () => {
    const r = await h.run(["exec", "--timeout", "2s", vm, "sleep", "60"]);
    expect(r.code).toBe(7);
    expect(r.stderr).toContain("ERR_SKIFF_TIMEOUT");
  });

  it("cp copies files and directories both ways", async () => {
    const src = join(work, "tree");
    mkdirSync(join(src, "sub"), { recursive: true });
    writeFileSync(join(src, "a.txt"), "alpha\n");
    writeFileSync(join(src, "sub", "run.sh"), "#!/bin/sh\necho ran\n", { mode: 0o755 });
    await h.ok(["cp", src, `${vm}:/root/`]);
    expect(await h.ok(["exec", vm, "/root/tree/sub/run.sh"])).toBe("ran\n");
    await h.ok(["cp", join(src, "a.txt"), `${vm}:/tmp/renamed.txt`]);
    expect(await h.ok(["exec", vm, "cat", "/tmp/renamed.txt"])).toBe("alpha\n");

    await h.ok(["exec", vm, "sh", "-c", "mkdir -p /srv/out && echo beta > /srv/out/b.txt && chmod 600 /srv/out/b.txt"]);
    const back = join(work, "back");
    mkdirSync(back);
    await h.ok(["cp", `${vm}:/srv/out`, back]);
    expect(readFileSync(join(back, "out", "b.txt"), "utf8")).toBe("beta\n");
    expect(statSync(join(back, "out", "b.txt")).mode & 0o777).toBe(0o600);
    await h.ok(["cp", `${vm}:/etc/hostname`, join(work, "hn")]);
    expect(readFileSync(join(work, "hn"), "utf8")).toBe(`${vm}\n`);

    const missing = await h.run(["cp", `${vm}:/no/such/file`, work]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain("ERR_SKIFF_FILE_NOT_FOUND");
  });

  it("cp with - streams a tar both ways, as docker cp does", async () => {
    const skiff = (args: string[], input?: Buffer) => execFileSync(process.execPath, [cliPath, ...args], { env: h.env, ...(input === undefined ? {} : { input }) });
    // Out: the path under its own name, a directory with its contents.
    const out = skiff(["cp", `${vm}:/srv/out`, "-"]);
    expect(execFileSync("tar", ["-t", "-f", "-"], { input: out }).toString().split("\n").sort()).toEqual(["", "out/", "out/b.txt"]);
    expect(execFileSync("tar", ["-x", "-O", "-f", "-", "out/b.txt"], { input: out }).toString()).toBe("beta\n");
    // In: unpacked into an existing directory, owned by root there (the archive says uid 4242).
    const src = join(work, "tarsrc");
    mkdirSync(src);
    writeFileSync(join(src, "in.txt"), "gamma\n");
    const tar = execFileSync("tar", ["-c", "-f", "-", "--owner=4242", "--group=4242", "-C", src, "in.txt"]);
    skiff(["cp", "-", `${vm}:/tmp`], tar);
    expect(await h.ok(["exec", vm, "sh", "-c", "cat /tmp/in.txt; stat -c %u /tmp/in.txt"])).toBe("gamma\n0\n");
    const nodir = await h.run(["cp", "-", `${vm}:/no/such/dir`], { input: "" });
    expect(nodir.code).toBe(3);
    expect(nodir.stderr).toContain("ERR_SKIFF_FILE_NOT_FOUND");
  });

  it("lets stock OpenSSH in through ssh-config (ssh, scp, sftp)", async () => {
    const config = join(work, "ssh_config");
    writeFileSync(config, await h.ok(["ssh-config", vm]));
    const ssh = execFileSync("ssh", ["-F", config, vm, "echo via-openssh; hostname"], { env: h.env }).toString();
    expect(ssh).toBe(`via-openssh\n${vm}\n`);
    writeFileSync(join(work, "scp.txt"), "scp works\n");
    execFileSync("scp", ["-F", config, join(work, "scp.txt"), `${vm}:/tmp/scp.txt`], { env: h.env });
    expect(await h.ok(["exec", vm, "cat", "/tmp/scp.txt"])).toBe("scp works\n");
    const sftp = execFileSync("sftp", ["-F", config, "-b", "-", vm], { env: h.env, input: "ls /tmp\n" }).toString();
    expect(sftp).toContain("scp.txt");
  });

  it("skiff ssh runs a command", async () => {
    expect(await h.ok(["ssh", vm, "echo", "hello-ssh"])).toBe("hello-ssh\n");
  });

  it("top lists the guest's processes, logs show the console", async () => {
    const top = await h.ok(["top", vm]);
    expect(top).toMatch(/PID/);
    expect(top).toContain("skiff-relay");
    const logs = await h.ok(["logs", "--lines", "50", vm]);
    expect(logs).toContain("skiff: ready");
  });
});

describe("stop and start", () => {
  it("keeps writes to the root filesystem across stop/start", async () => {
    await h.ok(["exec", vm, "sh", "-c", "echo persisted > /root/keep.txt"]);
    await h.ok(["stop", vm]);
    expect(inspect()).toMatchObject({ state: "stopped", exit: { reason: "stopped" } });
    const r = await h.run(["exec", vm, "true"]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain("ERR_SKIFF_VM_NOT_RUNNING");
    await h.ok(["start", vm]);
    expect(await h.ok(["exec", vm, "cat", "/root/keep.txt"])).toBe("persisted\n");
  });

  it("restart brings it back", async () => {
    await h.ok(["restart", vm]);
    expect(inspect().state).toBe("running");
  });

  it("escalates to SIGKILL when QEMU does not react", async () => {
    const pid = inspect().pid as number;
    process.kill(pid, "SIGSTOP"); // frozen: no QMP, no power-off, SIGTERM pending forever
    await h.ok(["stop", "--timeout", "1", vm]);
    expect(alive(pid)).toBe(false);
    expect(inspect()).toMatchObject({ state: "stopped", exit: { reason: "stopped (sigkill)" } });
  });

  it("shows crashed when QEMU dies behind skiff's back, and rm cleans up", async () => {
    await h.ok(["start", vm]);
    const { pid, dir } = inspect();
    process.kill(pid as number, "SIGKILL");
    await new Promise((r) => setTimeout(r, 300));
    const ps = await h.ok(["ps", "-a"]);
    expect(ps).toMatch(new RegExp(`^${vm}\\s+crashed`, "m"));
    expect(await h.ok(["ps"])).not.toContain(vm);
    await h.ok(["rm", vm]);
    expect(existsSync(dir)).toBe(false);
  });

  it("rm refuses a running VM without -f and removes every trace with it", async () => {
    await h.ok(["run", "-d", "--name", "doomed", "base"]);
    const { pid, dir } = inspect("doomed");
    const r = await h.run(["rm", "doomed"]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain("ERR_SKIFF_VM_RUNNING");
    await h.ok(["rm", "-f", "doomed"]);
    expect(alive(pid as number)).toBe(false);
    expect(existsSync(dir)).toBe(false);
    expect(h.qemuProcessesUnderHome()).toEqual([]);
  });

  it("kill -s sends a signal to QEMU", async () => {
    await h.ok(["run", "-d", "--name", "victim", "base"]);
    await h.ok(["kill", "victim"]);
    expect(inspect("victim")).toMatchObject({ state: "stopped", exit: { reason: "killed" } });
    await h.ok(["rm", "victim"]);
  });
});


describe("console", () => {
  it("attaches to a root shell on the serial console and detaches with Ctrl-]", async () => {
    await h.ok(["run", "-d", "--name", "tty", "base"]);
    const cmd = `${process.execPath} ${cliPath} console tty`;
    // Type after the console is attached, then Ctrl-] (0x1d).
    const child = spawn("script", ["-qec", cmd, "/dev/null"], { env: h.env });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    await new Promise((r) => setTimeout(r, 2000));
    child.stdin.write("echo console-$((40+2))\n");
    await new Promise((r) => setTimeout(r, 2000));
    child.stdin.write("\x1d");
    const code = await new Promise((r) => child.on("exit", r));
    expect(out).toContain("console-42");
    expect(out).toContain("Detached");
    expect(code).toBe(0);
    await h.ok(["rm", "-f", "tty"]);
  });
});
