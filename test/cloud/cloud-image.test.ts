/**
 * Cloud images end to end: a real bootable disk (Debian bookworm from
 * mmdebstrap with its kernel, SYSLINUX, OpenSSH and cloud-init, built by
 * build-disk.sh and cached in the shared test cache by the script's hash),
 * served over HTTP on loopback, `skiff run -d --image-url` on q35 under TCG,
 * configured by skiff's NoCloud seed, then reached with `skiff exec` over SSH
 * on the user-net forward.
 *
 * Timings here (2 cores, TCG): building the disk ~2 min once (then cached);
 * `run -d` (download 650 MiB from loopback, overlay, seed, boot until SSH
 * answers as the seeded user) ~50 s; the whole file ~65 s warm.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readdirSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Harness, repoRoot, sharedCache } from "../vm/harness.js";

const script = join(repoRoot, "test", "cloud", "build-disk.sh");
const recipe = createHash("sha256").update(readFileSync(script)).digest("hex").slice(0, 16);
const diskDir = join(sharedCache, "cloud-disk");
const disk = join(diskDir, `${recipe}.qcow2`);

const h = new Harness();
let server: Server;
let base = "";
const requests: string[] = [];
const files = new Map<string, string>();

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
  files.set("/disk.qcow2", disk);
  files.set("/tiny.qcow2.gz", `${tiny}.gz`);
  server = createServer((req, res) => {
    requests.push(req.url ?? "");
    const file = files.get(req.url ?? "");
    if (file === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-length": statSync(file).size, "content-type": "application/octet-stream" });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 25 * 60_000);

afterAll(async () => {
  await h.cleanup();
  await new Promise((resolve) => server?.close(resolve));
});

describe("cloud images", () => {
  it("image pull fetches a URL once, decompresses .gz and detects the format", async () => {
    const first = JSON.parse(await h.ok(["--json", "image", "pull", `${base}/tiny.qcow2.gz`])) as { format: string; path: string; downloaded: boolean };
    expect(first.format).toBe("qcow2");
    expect(first.downloaded).toBe(true);
    expect(first.path).toMatch(/\/cloud\/[0-9a-f]{64}\.qcow2$/);
    const seen = requests.length;
    const again = JSON.parse(await h.ok(["--json", "image", "pull", `${base}/tiny.qcow2.gz`])) as { path: string; downloaded: boolean };
    expect(again.path).toBe(first.path);
    expect(again.downloaded).toBe(false);
    expect(requests.length).toBe(seen);
  });

  it("an unknown URL is a clear error", async () => {
    const r = await h.run(["image", "pull", `${base}/nope.qcow2`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("ERR_SKIFF_IMAGE_NOT_FOUND");
  });

  it("runs a cloud image from a URL and execs in it over SSH", async () => {
    const userData = join(h.home, "user-data");
    writeFileSync(userData, "#cloud-config\nwrite_files:\n  - path: /etc/skiff-test\n    content: from-user-data\n");
    const t0 = Date.now();
    const name = (await h.ok(["run", "-d", "--image-url", `${base}/disk.qcow2`, "--name", "c1", "--disk", "3G", "--user-data", userData], { timeoutMs: 300_000 })).trim();
    const bootS = (Date.now() - t0) / 1000;
    expect(name).toBe("c1");
    const t1 = Date.now();
    const uname = await h.ok(["exec", "c1", "uname", "-a"]);
    const execS = (Date.now() - t1) / 1000;
    console.log(`cloud image: run -d until SSH answers ${bootS.toFixed(1)} s, first exec ${execS.toFixed(2)} s`);
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

    await h.ok(["rm", "-f", "c1"]);
  }, 600_000);
});
