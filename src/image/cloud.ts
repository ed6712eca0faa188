/**
 * Cloud images: whole bootable disks (their own bootloader, kernel and
 * cloud-init) fetched by URL or taken from a path, decompressed, their format
 * found with `qemu-img info`, and cached read-only by URL at
 * `<cache>/cloud/<sha256(url)>.<format>`, so a second fetch of a URL
 * downloads nothing. VMs boot them on `-M q35` from a qcow2 overlay.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { pathExists, readdirOrEmpty } from "../util/fs.js";
import { basename, join, resolve as resolvePath } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { errnoOf, SkiffError } from "../errors.js";
import { defaultRunner, type Runner } from "../process/runner.js";
import { sealSharedInput } from "../jail/ids.js";

export type CloudImageFormat = "qcow2" | "raw";

export interface CloudImage {
  /** The URL or absolute path it came from. */
  source: string;
  /** Read-only cached disk. */
  path: string;
  format: CloudImageFormat;
  /** Disk size the guest sees (qemu-img's virtual-size). */
  virtualSize: number;
  /** sha256 of the cached (decompressed) file, "sha256:<hex>". */
  digest: string;
  /** False when the cache already had it. */
  downloaded: boolean;
}

/** True for what `run`/`image pull` should treat as a cloud image rather than an OCI reference. */
export function isCloudRef(ref: string): boolean {
  if (/^https?:\/\//i.test(ref)) return true;
  return /\.(qcow2|img|raw)(\.(zst|xz|gz))?$/i.test(ref);
}

export interface FetchCloudOptions {
  cacheDir: string;
  runner?: Runner;
  /** Refetch even when the URL is cached (`--pull always`). */
  refetch?: boolean;
  place?: string;
}

interface CacheEntry {
  source: string;
  format: CloudImageFormat;
  virtualSize: number;
  digest: string;
  fetchedAt: string;
}

export async function fetchCloudImage(urlOrPath: string, opts: FetchCloudOptions): Promise<CloudImage> {
  const runner = opts.runner ?? defaultRunner;
  const isUrl = /^https?:\/\//i.test(urlOrPath);
  const source = isUrl ? urlOrPath : resolvePath(urlOrPath.replace(/^file:\/\//, ""));
  const dir = join(opts.cacheDir, "cloud");
  const key = createHash("sha256").update(source).digest("hex");
  const metaPath = join(dir, `${key}.json`);
  if (opts.refetch !== true) {
    const hit = await readEntry(metaPath);
    if (hit) {
      const path = join(dir, `${key}.${hit.format}`);
      if (await pathExists(path)) return { source, path, format: hit.format, virtualSize: hit.virtualSize, digest: hit.digest, downloaded: false };
    }
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.tmp-${key}-${randomBytes(4).toString("hex")}`);
  try {
    const fetched = `${tmp}.fetch`;
    await download(source, isUrl, fetched, opts.place);
    const compression = await detectCompression(fetched, source);
    if (compression === undefined) await rename(fetched, tmp);
    else {
      await decompress(runner, compression, fetched, tmp, source, opts.place);
      await rm(fetched, { force: true });
    }
    const info = await qemuImgInfo(runner, tmp);
    if (info.format !== "qcow2" && info.format !== "raw") {
      throw new SkiffError("ERR_SKIFF_BAD_ARCHIVE", `${source} is a ${info.format} disk; skiff boots qcow2 and raw cloud images`, {
        hint: "convert it with `qemu-img convert -O qcow2`",
        ...(opts.place === undefined ? {} : { place: opts.place }),
      });
    }
    if (info.backing !== undefined) {
      throw new SkiffError("ERR_SKIFF_BAD_ARCHIVE", `${source} has a backing file (${info.backing}); a cloud image must stand alone`, {
        hint: "flatten it with `qemu-img convert -O qcow2`",
      });
    }
    if (info.format === "qcow2") await runner.run("qemu-img", ["check", "-q", tmp], { check: true, debianPackage: "qemu-utils" });
    const digest = `sha256:${await sha256File(tmp)}`;
    const path = join(dir, `${key}.${info.format}`);
    await sealSharedInput(tmp);
    await rename(tmp, path);
    const entry: CacheEntry = { source, format: info.format, virtualSize: info.virtualSize, digest, fetchedAt: new Date().toISOString() };
    await writeFile(`${metaPath}.tmp`, JSON.stringify(entry, null, 2) + "\n");
    await rename(`${metaPath}.tmp`, metaPath);
    return { source, path, format: info.format, virtualSize: info.virtualSize, digest, downloaded: true };
  } finally {
    await rm(tmp, { force: true });
    await rm(`${tmp}.fetch`, { force: true });
  }
}

async function download(source: string, isUrl: boolean, dest: string, place: string | undefined): Promise<void> {
  const where = place === undefined ? {} : { place };
  if (!isUrl) {
    try {
      await pipeline(createReadStream(source), createWriteStream(dest));
    } catch (err) {
      throw new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `cannot read cloud image ${source}: ${errnoOf(err) ?? String(err)}`, { ...where, cause: err });
    }
    return;
  }
  let res: Response;
  try {
    res = await fetch(source, { redirect: "follow" });
  } catch (err) {
    throw new SkiffError("ERR_SKIFF_REGISTRY", `cannot download ${source}: ${err instanceof Error ? err.message : String(err)}`, {
      hint: "check the URL and the network",
      ...where,
      cause: err,
    });
  }
  if (!res.ok || res.body === null) {
    throw new SkiffError(res.status === 404 ? "ERR_SKIFF_IMAGE_NOT_FOUND" : "ERR_SKIFF_REGISTRY", `cannot download ${source}: HTTP ${res.status}`, {
      hint: "check the URL",
      ...where,
    });
  }
  const expected = Number(res.headers.get("content-length") ?? NaN);
  let got = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      got += chunk.length;
      cb(null, chunk);
    },
  });
  try {
    await pipeline(Readable.fromWeb(res.body as import("node:stream/web").ReadableStream<Uint8Array>), count, createWriteStream(dest));
  } catch (err) {
    throw new SkiffError("ERR_SKIFF_REGISTRY", `download of ${source} broke off after ${got} bytes`, { hint: "retry", ...where, cause: err });
  }
  if (Number.isFinite(expected) && got !== expected) {
    throw new SkiffError("ERR_SKIFF_REGISTRY", `download of ${source} is ${got} bytes, the server announced ${expected}`, { hint: "retry", ...where });
  }
}

/** A truncated or corrupt download is the image's fault, not the host's: say so, with the URL. */
async function decompress(runner: Runner, compression: "zst" | "xz" | "gz", from: string, to: string, source: string, place: string | undefined): Promise<void> {
  const [tool, pkg] = { zst: ["zstd", "zstd"], xz: ["xz", "xz-utils"], gz: ["gzip", "gzip"] }[compression];
  const r = await runner.run("sh", ["-c", `${tool} -dc < "$1" > "$2"`, "sh", from, to], { debianPackage: pkg });
  if (r.code === 0) return;
  const where = place === undefined ? {} : { place };
  if (r.code === 127) throw new SkiffError("ERR_SKIFF_TOOL_MISSING", `${tool} not found on the host`, { hint: `install it: apt-get install ${pkg}`, ...where });
  throw new SkiffError("ERR_SKIFF_BAD_ARCHIVE", `cannot decompress ${source} (${compression}): ${r.stderr.trim() || `${tool} exited with code ${r.code}`}`, {
    hint: "the file is truncated or corrupt: download it again (refetch it, or pull always) or check the URL",
    ...where,
  });
}

/** By magic first (a server may name a compressed file .qcow2), else by extension. */
async function detectCompression(path: string, source: string): Promise<"zst" | "xz" | "gz" | undefined> {
  const fd = await open(path, "r");
  const head = Buffer.alloc(6);
  try {
    await fd.read(head, 0, 6, 0);
  } finally {
    await fd.close();
  }
  if (head.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return "zst";
  if (head.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return "xz";
  if (head[0] === 0x1f && head[1] === 0x8b) return "gz";
  const ext = /\.(zst|xz|gz)$/i.exec(basename(source))?.[1]?.toLowerCase();
  return ext as "zst" | "xz" | "gz" | undefined;
}

export async function qemuImgInfo(runner: Runner, path: string): Promise<{ format: string; virtualSize: number; backing?: string }> {
  const r = await runner.run("qemu-img", ["info", "--output=json", path], { check: true, debianPackage: "qemu-utils" });
  const info = JSON.parse(r.stdout) as { format: string; "virtual-size": number; "backing-filename"?: string };
  return { format: info.format, virtualSize: info["virtual-size"], ...(info["backing-filename"] ? { backing: info["backing-filename"] } : {}) };
}

/** A cached cloud image as `image ls` shows it: named after its file, with the URL (or path) as its reference. */
export interface CachedCloudImage {
  name: string;
  source: string;
  digest: string;
  path: string;
  /** The meta file beside it, which goes with it on removal. */
  metaPath: string;
  virtualSize: number;
  diskUsageBytes: number;
  fetchedAt: string;
}

export async function listCloudImages(cacheDir: string): Promise<CachedCloudImage[]> {
  const dir = join(cacheDir, "cloud");
  const found: CachedCloudImage[] = [];
  for (const file of await readdirOrEmpty(dir)) {
    if (!/^[0-9a-f]{64}\.json$/.test(file)) continue;
    const metaPath = join(dir, file);
    const entry = await readEntry(metaPath);
    if (entry === undefined) continue;
    const path = join(dir, file.replace(/\.json$/, `.${entry.format}`));
    const st = await stat(path).catch(() => undefined);
    if (st === undefined) continue;
    const name = basename(entry.source.replace(/[?#].*$/, "")) || entry.source;
    found.push({ name, source: entry.source, digest: entry.digest, path, metaPath, virtualSize: entry.virtualSize, diskUsageBytes: st.blocks * 512, fetchedAt: entry.fetchedAt });
  }
  return found;
}

async function readEntry(path: string): Promise<CacheEntry | undefined> {
  try {
    const entry = JSON.parse(await readFile(path, "utf8")) as CacheEntry;
    return entry.format === "qcow2" || entry.format === "raw" ? entry : undefined;
  } catch {
    return undefined;
  }
}


async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(path), hash);
  return hash.digest("hex");
}

/** The user skiff reaches a cloud image as (made by cloud-init from the seed, with passwordless sudo). */
export const cloudSshUser = "skiff";

/** The NoCloud seed's two files. */
export function cloudInitSeed(opts: {
  instanceId: string;
  hostname: string;
  /** The user skiff logs in as (default `skiff`); made by cloud-init if the image lacks it. */
  user?: string;
  authorizedKey: string;
  /** The guest's ed25519 host key (OpenSSH private and public), so skiff pins it instead of trusting on first use. */
  hostKey?: { privateKey: string; publicKey: string };
  /**
   * A user's own user-data: a #cloud-config is appended to skiff's (a key given in both is the user's:
   * YAML's last one wins, so setting ssh_authorized_keys there drops skiff's key); anything else replaces skiff's.
   */
  userData?: string;
}): { metaData: string; userData: string } {
  const metaData = `instance-id: ${opts.instanceId}\nlocal-hostname: ${opts.hostname}\n`;
  const key = JSON.stringify(opts.authorizedKey);
  const lines = [
    "#cloud-config",
    `hostname: ${JSON.stringify(opts.hostname)}`,
    // The hostname must resolve, or every `sudo` (cp, run -d) warns "unable to resolve host" on stderr.
    "manage_etc_hosts: localhost",
    "ssh_pwauth: false",
    // The image's default user (debian, ubuntu, …) gets the key, and so does a `skiff` user that
    // exists on every image alike: skiff connects as that one, whatever the distribution calls its own.
    "ssh_authorized_keys:",
    `  - ${key}`,
    "users:",
    "  - default",
    `  - name: ${opts.user ?? cloudSshUser}`,
    "    shell: /bin/sh",
    "    sudo: \"ALL=(ALL) NOPASSWD:ALL\"",
    "    lock_passwd: true",
    "    ssh_authorized_keys:",
    `      - ${key}`,
  ];
  if (opts.hostKey) {
    lines.push(
      "ssh_deletekeys: true",
      "ssh_genkeytypes: []",
      "ssh_keys:",
      `  ed25519_private: ${JSON.stringify(opts.hostKey.privateKey)}`,
      `  ed25519_public: ${JSON.stringify(opts.hostKey.publicKey)}`,
    );
  }
  const ours = lines.join("\n") + "\n";
  if (opts.userData === undefined) return { metaData, userData: ours };
  if (!opts.userData.startsWith("#cloud-config")) return { metaData, userData: opts.userData };
  // Top-level keys of YAML: the user's lines after ours, minus the header; cloud-init takes the last of a repeated key.
  const theirs = opts.userData.split("\n").slice(1).join("\n");
  return { metaData, userData: `${ours}${theirs.endsWith("\n") || theirs === "" ? theirs : `${theirs}\n`}` };
}

/** Write a NoCloud seed ISO (volume label `cidata`). */
export async function writeSeedIso(runner: Runner, dest: string, files: { metaData: string; userData: string }): Promise<void> {
  const dir = `${dest}.d`;
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  try {
    await writeFile(join(dir, "meta-data"), files.metaData);
    await writeFile(join(dir, "user-data"), files.userData);
    await runner.run(
      "genisoimage",
      ["-quiet", "-output", dest, "-volid", "cidata", "-joliet", "-rock", join(dir, "user-data"), join(dir, "meta-data")],
      { check: true, debianPackage: "genisoimage" },
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
