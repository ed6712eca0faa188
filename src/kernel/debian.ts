/**
 * The default guest kernel: a Debian `linux-image-*` package installed on the
 * host. Its compressed bzImage is turned once into the uncompressed PVH
 * vmlinux, which boots ~3 s faster under TCG (no decompressor run in the
 * guest), and cached by kernel version and the vmlinuz's size+mtime.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, statSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { SkiffError } from "../errors.js";
import { spawnToFile } from "../process/spawn-file.js";

export interface KernelInfo {
  version: string;
  vmlinuzPath: string;
  modulesDir: string;
}

const kernelHint = "run `./setup.sh` (or `apt-get install linux-image-amd64`), or set SKIFF_KERNEL=/boot/vmlinuz-VERSION";

function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, "en", { numeric: true });
}

/** The newest /boot/vmlinuz-* that has its modules under /lib/modules, or the one SKIFF_KERNEL names. */
export function findDebianKernel(env: NodeJS.ProcessEnv = process.env, bootDir = "/boot", modulesRoot = "/lib/modules"): KernelInfo {
  const chosen = env.SKIFF_KERNEL;
  if (chosen !== undefined && chosen !== "") {
    const version = chosen.replace(/^.*vmlinuz-/, "");
    if (!existsSync(chosen)) {
      throw new SkiffError("ERR_SKIFF_KERNEL_MISSING", `kernel file cannot be opened: ${chosen} (ENOENT)`, {
        place: "SKIFF_KERNEL",
        hint: kernelHint,
      });
    }
    return { version, vmlinuzPath: chosen, modulesDir: join(modulesRoot, version) };
  }
  let candidates: string[] = [];
  try {
    candidates = readdirSync(bootDir)
      .filter((f) => f.startsWith("vmlinuz-"))
      .map((f) => f.slice("vmlinuz-".length))
      .filter((v) => existsSync(join(modulesRoot, v, "modules.dep")))
      .sort(compareVersions);
  } catch {
    candidates = [];
  }
  const version = candidates.at(-1);
  if (version === undefined) {
    throw new SkiffError("ERR_SKIFF_KERNEL_MISSING", `no Debian kernel found in ${bootDir} (vmlinuz-* with modules in ${modulesRoot})`, {
      hint: kernelHint,
    });
  }
  return { version, vmlinuzPath: join(bootDir, `vmlinuz-${version}`), modulesDir: join(modulesRoot, version) };
}

const magics: { name: "xz" | "zstd" | "gzip"; bytes: number[] }[] = [
  { name: "xz", bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { name: "zstd", bytes: [0x28, 0xb5, 0x2f, 0xfd] },
  { name: "gzip", bytes: [0x1f, 0x8b, 0x08, 0x00] },
];

function findPayload(image: Buffer): { format: "xz" | "zstd" | "gzip"; offset: number } | undefined {
  let best: { format: "xz" | "zstd" | "gzip"; offset: number } | undefined;
  for (const m of magics) {
    const offset = image.indexOf(Buffer.from(m.bytes));
    if (offset >= 0 && (best === undefined || offset < best.offset)) best = { format: m.name, offset };
  }
  return best;
}

async function decompress(format: "xz" | "zstd" | "gzip", data: Buffer, scratch: string): Promise<Buffer> {
  if (format === "gzip") return gunzipSync(data, { finishFlush: 2 });
  // Trailing bytes after the stream are expected (the bzImage goes on): decode one stream only.
  const args = format === "xz" ? ["-dc", "--single-stream"] : ["-dc"];
  await writeFile(`${scratch}.in`, data);
  try {
    await spawnToFile({
      command: format === "xz" ? "xz" : "zstd",
      args,
      stdinPath: `${scratch}.in`,
      stdoutPath: `${scratch}.out`,
      debianPackage: format === "xz" ? "xz-utils" : "zstd",
    });
    return await readFile(`${scratch}.out`);
  } finally {
    await rm(`${scratch}.in`, { force: true });
    await rm(`${scratch}.out`, { force: true });
  }
}

/** Path of the cached uncompressed vmlinux for this kernel, extracting it on first use. */
export async function ensureVmlinux(kernel: KernelInfo, cacheDir: string): Promise<string> {
  const st = statSync(kernel.vmlinuzPath);
  const key = createHash("sha256").update(`${kernel.vmlinuzPath}:${st.size}:${st.mtimeMs}`).digest("hex").slice(0, 12);
  const dir = join(cacheDir, "kernels", `${kernel.version}-${key}`);
  const target = join(dir, "vmlinux");
  if (existsSync(target)) return target;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const image = await readFile(kernel.vmlinuzPath);
  let vmlinux: Buffer | undefined;
  if (image.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) {
    vmlinux = image; // already an ELF vmlinux
  } else {
    const payload = findPayload(image);
    if (payload !== undefined) vmlinux = await decompress(payload.format, image.subarray(payload.offset), `${target}.${process.pid}`);
  }
  if (vmlinux === undefined || !vmlinux.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) {
    throw new SkiffError("ERR_SKIFF_KERNEL_MISSING", `cannot extract an ELF vmlinux from ${kernel.vmlinuzPath}`, {
      hint: "use a Debian linux-image-amd64 kernel (xz, zstd or gzip compressed bzImage)",
    });
  }
  const tmp = `${target}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, vmlinux);
    await rename(tmp, target);
  } finally {
    await rm(tmp, { force: true });
  }
  return target;
}
