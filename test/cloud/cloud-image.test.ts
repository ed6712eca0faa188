/**
 * Cloud images end to end: a real bootable disk (Debian bookworm from
 * mmdebstrap with its kernel, SYSLINUX, OpenSSH, cloud-init and
 * cloud-guest-utils, built by build-disk.sh and cached in the shared test
 * cache by the script's hash), served over HTTP on loopback, booted on q35
 * under TCG, configured by skiff's NoCloud seed, and reached over SSH on the
 * user-net forward: `run -d` with a main command (a systemd unit), exec,
 * `--disk` growing the root filesystem, cp both ways, stock OpenSSH through
 * `ssh-config` and `proxy`, and a foreground `run --rm CMD`.
 *
 * Timings here (2 cores, TCG): building the disk 2 min 16 s once (then
 * cached); `run -d` until cloud-init has finished 83 s, the foreground
 * `run --rm` 83 s (150–220 s per boot while other suites boot VMs, hence
 * the longer boot timeout below). A cloud VM has one vCPU, so the
 * foreground VM boots on the second core while the first is tested: it
 * starts (in a home of its own) once the first's image is in the cache.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serveFiles, type FileServer } from "../vm/file-server.js";
import { cliPath, Harness, repoRoot, sharedCache, type CliResult } from "../vm/harness.js";

const script = join(repoRoot, "test", "cloud", "build-disk.sh");
const recipe = createHash("sha256").update(readFileSync(script)).digest("hex").slice(0, 16);
const diskDir = join(sharedCache, "cloud-disk");
const disk = join(diskDir, `${recipe}.qcow2`);

const h = new Harness();
/** The foreground `run --rm` VM's home: its checks (no VM, no QEMU left) are about that VM alone. */
const fg = new Harness();
/** Boots under TCG on a 2-core host that other suites load too: cloud-init's Python stages alone take a minute or more. */
const slowBoot = { timeoutMs: 420_000, env: { SKIFF_BOOT_TIMEOUT_MS: "360000" } };
let server: FileServer;
let base = "";

function runAsync(cmd: string, args: string[], timeoutMs: number): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-6000)));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stderr });
    });
  });
}

beforeAll(async () => {
  if (!existsSync(disk)) {
    mkdirSync(diskDir, { recursive: true });
    const t0 = Date.now();
    // Asynchronously: a worker blocked for minutes in spawnSync misses vitest's RPC deadlines.
    const r = await runAsync(script, [disk, join(diskDir, `work-${recipe}`)], 20 * 60_000);
    if (r.status !== 0) throw new Error(`build-disk.sh failed (${r.status}):\n${r.stderr.slice(-3000)}`);
    console.log(`cloud test disk built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  const tiny = join(h.home, "tiny.qcow2");
  spawnSync("qemu-img", ["create", "-q", "-f", "qcow2", tiny, "16M"]);
  writeFileSync(`${tiny}.gz`, gzipSync(readFileSync(tiny)));
  server = await serveFiles();
  base = server.base;
  server.routes.set("/disk.qcow2", disk);
  server.routes.set("/tiny.qcow2.gz", `${tiny}.gz`);
}, 25 * 60_000);

afterAll(async () => {
  await h.cleanup();
  await fg.cleanup();
  await server?.close();
});

describe("cloud images", () => {
  it("image pull fetches a URL once, decompresses .gz and detects the format", async () => {
    const first = JSON.parse(await h.ok(["--json", "image", "pull", `${base}/tiny.qcow2.gz`])) as { format: string; path: string; downloaded: boolean };
    expect(first.format).toBe("qcow2");
    expect(first.downloaded).toBe(true);
    expect(first.path).toMatch(/\/cloud\/[0-9a-f]{64}\.qcow2$/);
    const seen = server.requests.length;
    const again = JSON.parse(await h.ok(["--json", "image", "pull", `${base}/tiny.qcow2.gz`])) as { path: string; downloaded: boolean };
    expect(again.path).toBe(first.path);
    expect(again.downloaded).toBe(false);
    expect(server.requests.length).toBe(seen);
  });

  it("an unknown URL is a clear error", async () => {
    const r = await h.run(["image", "pull", `${base}/nope.qcow2`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("ERR_SKIFF_IMAGE_NOT_FOUND");
  });

  it("runs a cloud image from a URL with a detached main command, and execs in it over SSH", async () => {
    const userData = join(h.home, "user-data");
    writeFileSync(userData, "#cloud-config\nwrite_files:\n  - path: /etc/skiff-test\n    content: from-user-data\n");
    const t0 = Date.now();
    const detached = h.ok(
      ["run", "-d", "--image-url", `${base}/disk.qcow2`, "--name", "c1", "--disk", "3G", "--user-data", userData, "-e", "GREETING=hello"]
        .concat(["sh", "-c", 'echo "main says $GREETING as $(id -un) in $PWD"; exec sleep 3600']),
      slowBoot,
    );
    // Once c1 has fetched the image (not before: both would download it), the last test's VM boots alongside.
    const stop = new AbortController();
    await Promise.race([imageCached(`${base}/disk.qcow2`, stop.signal), detached]).finally(() => stop.abort());
    startForeground();
    const name = (await detached).trim();
    const bootS = (Date.now() - t0) / 1000;
    expect(name).toBe("c1");
    const t1 = Date.now();
    const uname = await h.ok(["exec", "c1", "uname", "-a"]);
    const execS = (Date.now() - t1) / 1000;
    console.log(`cloud image: run -d until cloud-init finished ${bootS.toFixed(1)} s, first exec ${execS.toFixed(2)} s`);
    expect(uname).toMatch(/^Linux c1 6\.\d+\.\d+.* x86_64/);

    expect(await h.ok(["exec", "c1", "cat", "/etc/skiff-test"])).toBe("from-user-data");
    expect(await h.ok(["exec", "c1", "sh", "-c", "id -un; sudo -n id -u"])).toBe("skiff\n0\n");
    expect(await h.ok(["exec", "c1", "printf", "%s|", "it's", "a b", "$HOME"])).toBe("it's|a b|$HOME|");
    const failed = await h.run(["exec", "c1", "sh", "-c", "echo oops >&2; exit 7"]);
    expect(failed.code).toBe(7);
    expect(failed.stderr).toBe("oops\n");

    const [id] = readdirSync(join(h.home, "vms"));
    const info = JSON.parse(spawnSync("qemu-img", ["info", "--output=json", "-U", join(h.home, "vms", id ?? "", "overlay.qcow2")], { encoding: "utf8" }).stdout) as {
      "virtual-size": number;
      "backing-filename-format": string;
    };
    expect(info["virtual-size"]).toBe(3 * 2 ** 30);
    expect(info["backing-filename-format"]).toBe("qcow2");
    // cloud-init's growpart + resizefs grew the root partition and filesystem (the image's root is 1.5 GiB).
    const [size = 0, used = 0] = (await h.ok(["exec", "c1", "df", "-B1", "--output=size,used", "/"])).trim().split("\n")[1]?.trim().split(/\s+/).map(Number) ?? [];
    console.log(`cloud image: root filesystem ${(size / 2 ** 30).toFixed(2)} GiB after --disk 3G (${(used / 2 ** 30).toFixed(2)} GiB used)`);
    expect(size).toBeGreaterThan(2.7 * 2 ** 30);
  }, 700_000);

  it("gives back memory its guest frees (free page reporting): QEMU's RSS falls once a tmpfs is emptied", async () => {
    const [info] = JSON.parse(await h.ok(["inspect", "c1"])) as { pid?: number }[];
    const rssMiB = () => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${info!.pid}/status`, "utf8"))?.[1] ?? NaN) / 1024;
    await h.ok(["exec", "c1", "sudo", "-n", "sh", "-c", "mkdir -p /run/fill && mount -t tmpfs -o size=300m tmpfs /run/fill && dd if=/dev/zero of=/run/fill/f bs=1M count=192 2>/dev/null"]);
    const full = rssMiB();
    await h.ok(["exec", "c1", "sudo", "-n", "sh", "-c", "rm /run/fill/f && umount /run/fill"]);
    const deadline = Date.now() + 30_000;
    while (rssMiB() > full - 120 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    console.log(`cloud image: QEMU's RSS ${full.toFixed(0)} MiB with 192 MiB in a tmpfs, ${rssMiB().toFixed(0)} MiB after emptying it`);
    expect(rssMiB()).toBeLessThan(full - 120);
  }, 120_000);

  it("run -d CMD: the command runs on in a systemd unit, its output in skiff logs", async () => {
    // As root: the test image, like a minimal one, has no D-Bus for an unprivileged systemctl.
    expect(await h.ok(["exec", "c1", "sudo", "-n", "systemctl", "is-active", "skiff-main"])).toBe("active\n");
    let logs = "";
    for (let i = 0; i < 40 && !logs.includes("main says"); i++) {
      logs = await h.ok(["logs", "c1"]);
      if (!logs.includes("main says")) await new Promise((r) => setTimeout(r, 250));
    }
    expect(logs).toContain("main says hello as skiff in /home/skiff");
    expect(await h.ok(["exec", "c1", "sudo", "-n", "journalctl", "-u", "skiff-main", "-o", "cat"])).toContain("main says hello as skiff in /home/skiff");
    // -e reaches exec on a cloud image too, as skiff-init's environment does on a microVM.
    expect(await h.ok(["exec", "c1", "sh", "-c", "echo $GREETING"])).toBe("hello\n");
    expect((JSON.parse(await h.ok(["inspect", "c1"])) as { command: string[] }[])[0]?.command).toEqual(["sh", "-c", 'echo "main says $GREETING as $(id -un) in $PWD"; exec sleep 3600']);
  });

  it("cp copies both ways over SSH, as the cloud user where it may write and as root elsewhere", async () => {
    const src = join(h.home, "cp-src");
    mkdirSync(join(src, "sub"), { recursive: true });
    writeFileSync(join(src, "run.sh"), "#!/bin/sh\necho hi\n", { mode: 0o750 });
    writeFileSync(join(src, "sub", "data"), "payload\n");
    await h.ok(["cp", join(src, "run.sh"), "c1:/home/skiff/"]);
    await h.ok(["cp", src, "c1:/home/skiff/tree"]);
    await h.ok(["cp", join(src, "sub", "data"), "c1:/etc/skiff-data"]);
    const owners = await h.ok(["exec", "c1", "stat", "-c", "%U %a %n", "/home/skiff/run.sh", "/home/skiff/tree/sub/data", "/etc/skiff-data"]);
    expect(owners).toBe("skiff 750 /home/skiff/run.sh\nskiff 644 /home/skiff/tree/sub/data\nroot 644 /etc/skiff-data\n");
    expect(await h.ok(["exec", "c1", "/home/skiff/run.sh"])).toBe("hi\n");

    const out = join(h.home, "cp-out");
    mkdirSync(out);
    // Root's own files come out too (read under sudo), and a directory whole.
    await h.ok(["exec", "c1", "sudo", "-n", "sh", "-c", "umask 077; echo secret > /root/private"]);
    await h.ok(["cp", "c1:/root/private", out]);
    await h.ok(["cp", "c1:/home/skiff/tree", join(out, "tree")]);
    expect(readFileSync(join(out, "private"), "utf8")).toBe("secret\n");
    expect(readFileSync(join(out, "tree", "sub", "data"), "utf8")).toBe("payload\n");
    expect(statSync(join(out, "tree", "run.sh")).mode & 0o777).toBe(0o750);

    const missing = await h.run(["cp", "c1:/nope", out]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("ERR_SKIFF_FILE_NOT_FOUND");
  }, 300_000);

  it("ssh-config and proxy let stock OpenSSH in as the cloud user", async () => {
    const config = await h.ok(["ssh-config", "c1"]);
    expect(config).toMatch(/^\s+HostName 127\.0\.0\.1$/m);
    expect(config).toMatch(/^\s+Port \d+$/m);
    expect(config).toMatch(/^\s+User skiff$/m);
    expect(config).not.toContain("ProxyCommand");
    const configPath = join(h.home, "ssh_config");
    writeFileSync(configPath, config);
    const ssh = (extra: string[]) =>
      spawnSync("ssh", ["-F", configPath, "-o", "BatchMode=yes", ...extra, "c1", "id -un; hostname"], { encoding: "utf8", env: h.env, timeout: 60_000 });
    const direct = ssh([]);
    expect(direct.stderr).toBe("");
    expect(direct.stdout).toBe("skiff\nc1\n");
    // `skiff proxy` relays to the same forward, for configs that go through a ProxyCommand.
    const proxied = ssh(["-o", `ProxyCommand=${process.execPath} ${cliPath} proxy c1`]);
    expect(proxied.stdout).toBe("skiff\nc1\n");
    const scp = spawnSync("scp", ["-F", configPath, "-o", "BatchMode=yes", "c1:/etc/hostname", join(h.home, "hostname")], { env: h.env, timeout: 60_000 });
    expect(scp.status).toBe(0);
    expect(readFileSync(join(h.home, "hostname"), "utf8")).toBe("c1\n");
  }, 120_000);

  it("rm -f ends the cloud VM", async () => {
    await h.ok(["rm", "-f", "c1"]);
    expect(h.qemuProcessesUnderHome()).toEqual([]);
  });

  it("run --rm --image-url URL CMD runs CMD in the foreground: its output, its exit code, then the VM goes", async () => {
    // Started in the third test (startForeground): here its end is awaited.
    const r = await (foreground ?? startForeground());
    expect(r.stdout).toBe("out 1\n");
    expect(r.stderr).toContain("err\n");
    expect(r.code).toBe(3);
    expect(JSON.parse(await fg.ok(["--json", "ps", "-a"]))).toEqual([]);
    expect(fg.qemuProcessesUnderHome()).toEqual([]);
  }, 600_000);
});

let foreground: Promise<CliResult> | undefined;

/** The last test's `run --rm`, started once; its failure is that test's, not an unhandled rejection now. */
function startForeground(): Promise<CliResult> {
  if (foreground !== undefined) return foreground;
  const t0 = Date.now();
  const run = fg.run(["run", "--rm", "--image-url", `${base}/disk.qcow2`, "--name", "c2", "-e", "X=1", "sh", "-c", "echo out $X; echo err >&2; exit 3"], slowBoot);
  run.then(() => console.log(`cloud image: foreground run --rm (boot, command, stop) ${((Date.now() - t0) / 1000).toFixed(1)} s`), () => undefined);
  foreground = run;
  return run;
}

/** Resolves once `url` is in the image cache (`image ls`), polled each second, or when `stop` aborts. */
async function imageCached(url: string, stop: AbortSignal): Promise<void> {
  while (!stop.aborted) {
    const images = JSON.parse(await fg.ok(["--json", "image", "ls"])) as { kind: string; ref?: string }[];
    if (images.some((i) => i.kind === "cloud" && i.ref === url)) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}
