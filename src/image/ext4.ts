/**
 * Turn an image manifest into an ext4 file without root: stage the tree in
 * a directory, `mke2fs -d` it into a fresh sparse file, then one debugfs
 * pass writes owners and timestamps from the manifest.
 *
 * Why the debugfs pass: `mke2fs -d` copies uid/gid and times from the staged
 * files. Run rootless, every file would belong to the building user (whose
 * uid is often 1000, the guest's `user`: it would own /bin/busybox), and
 * ctime can never be set on the host. Writing owners and times into the
 * inodes makes a root build and a rootless build the same filesystem.
 *
 * Reproducibility: the UUID and directory hash seed come from the digest,
 * E2FSPROGS_FAKE_TIME pins the superblock and mke2fs-made inodes, and the
 * pass pins the rest, so two builds on one host are byte-identical. Across
 * hosts they may still differ in layout (mke2fs 1.47.0 adds entries in
 * readdir order, and a host's mke2fs.conf picks the features); the digest,
 * which names the content, does not.
 */
import { copyFile, chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { SkiffError } from "../errors.js";
import { defaultRunner, type Runner } from "../process/runner.js";
import { digestHex, type ImageManifest, normalizeManifest, sha256Hex } from "./manifest.js";

/** 2025-01-01T00:00:00Z: every inode and the superblock carry this time. */
export const imageEpoch = 1_735_689_600;

export interface Ext4BuildOptions {
  manifest: ImageManifest;
  /** The manifest's digest; seeds the filesystem UUID and hash seed. */
  digest: string;
  /** File to create. It must not exist: mke2fs is told the storage is already zero. */
  target: string;
  /** Directory to stage the tree in (a fresh subdirectory is made and removed). */
  scratchDir: string;
  runner?: Runner;
}

/** An RFC 9562 version-8 (custom) UUID from 16 bytes of the digest. */
export function uuidFromDigest(digest: string, part: 0 | 1 = 0): string {
  const bytes = Buffer.from(digestHex(digest).slice(part * 32, part * 32 + 32), "hex");
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x80;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export async function buildExt4(opts: Ext4BuildOptions): Promise<void> {
  const manifest = normalizeManifest(opts.manifest);
  const runner = opts.runner ?? defaultRunner;
  const { sizeBytes, label } = manifest.fs;
  if (sizeBytes <= 0 || sizeBytes % 4096 !== 0) {
    throw new SkiffError("ERR_SKIFF_INTERNAL", `image size must be a positive multiple of 4 KiB: ${sizeBytes}`);
  }
  await mkdir(opts.scratchDir, { recursive: true, mode: 0o700 });
  const staging = await mkdtemp(join(opts.scratchDir, "stage-"));
  try {
    await stage(manifest, staging);
    await rm(opts.target, { force: true });
    await mke2fsFromDir({ sourceDir: staging, target: opts.target, sizeBytes, label, digest: opts.digest, runner });
    await runDebugfsScript({ target: opts.target, script: fixupScript(manifest), scriptPath: `${staging}.debugfs`, runner, purpose: "set owners and times" });
  } catch (err) {
    await rm(opts.target, { force: true });
    throw err;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

export interface Mke2fsOptions {
  /** The tree to copy in (`mke2fs -d`). Its owners, modes, times, xattrs and nodes are copied; the root's are not. */
  sourceDir: string;
  /** File to create; it must not exist (mke2fs is told the storage is already zero). */
  target: string;
  sizeBytes: number;
  label: string;
  /** Seeds the filesystem UUID and directory hash seed. */
  digest: string;
  /** Inode count (`-N`); default: mke2fs's own ratio. */
  inodes?: number;
  runner?: Runner;
}

/** Environment of every e2fsprogs run: fixed superblock time, C locale for parseable messages. */
export const e2fsEnv = (): NodeJS.ProcessEnv => ({ ...process.env, E2FSPROGS_FAKE_TIME: String(imageEpoch), LC_ALL: "C" });

/** `mke2fs -d`: a fresh sparse ext4 holding `sourceDir`, UUID and hash seed derived from `digest`. */
export async function mke2fsFromDir(opts: Mke2fsOptions): Promise<void> {
  await (opts.runner ?? defaultRunner).run(
    "mke2fs",
    [
      "-q",
      "-t",
      "ext4",
      "-d",
      opts.sourceDir,
      "-L",
      opts.label,
      "-U",
      uuidFromDigest(opts.digest, 0),
      ...(opts.inodes === undefined ? [] : ["-N", String(opts.inodes)]),
      // A file mke2fs creates itself is sparse, so it reads as zeros: no
      // zeroing of journal and inode tables, and no ext4lazyinit in every
      // guest writing them into its overlay.
      "-E",
      `root_owner=0:0,hash_seed=${uuidFromDigest(opts.digest, 1)},assume_storage_prezeroed=1`,
      "-F",
      opts.target,
      `${opts.sizeBytes / 1024}k`,
    ],
    { check: true, env: e2fsEnv(), debianPackage: "e2fsprogs", timeoutMs: 600_000 },
  );
}

export interface DebugfsScriptOptions {
  target: string;
  /** debugfs commands, one per line. */
  script: string;
  /** Where to write the script for `debugfs -f` (removed afterwards). */
  scriptPath: string;
  /** What the script does, for the error ("set owners and times"). */
  purpose: string;
  runner?: Runner;
}

/** Run a debugfs script read-write on `target`; any complaint on stderr fails it (debugfs itself exits 0). */
export async function runDebugfsScript(opts: DebugfsScriptOptions): Promise<void> {
  await writeFile(opts.scriptPath, opts.script);
  try {
    const result = await (opts.runner ?? defaultRunner).run("debugfs", ["-w", "-f", opts.scriptPath, opts.target], {
      check: true,
      env: e2fsEnv(),
      debianPackage: "e2fsprogs",
      timeoutMs: 600_000,
    });
    const complaints = result.stderr.split("\n").filter((line) => line.trim() !== "" && !/^debugfs \d/.test(line));
    if (complaints.length > 0) {
      throw new SkiffError("ERR_SKIFF_TOOL_FAILED", `debugfs could not ${opts.purpose} in ${opts.target}: ${complaints.slice(0, 5).join("; ")}`, {
        details: { stderr: complaints.slice(0, 50) },
      });
    }
  } finally {
    await rm(opts.scriptPath, { force: true });
  }
}

/** Lay the tree out on the host. Owners and times are left to the fixup pass. */
async function stage(manifest: ImageManifest, root: string): Promise<void> {
  // Sorted by path, so a directory always comes before what it holds.
  for (const entry of manifest.entries) {
    const hostPath = join(root, entry.path);
    switch (entry.type) {
      case "dir":
        await mkdir(hostPath);
        await chmod(hostPath, entry.mode); // mkdir's mode is cut by the umask, and sticky bits with it
        break;
      case "symlink":
        await symlink(entry.target, hostPath);
        break;
      case "file": {
        if ("text" in entry.source) await writeFile(hostPath, entry.source.text);
        else await copyFile(entry.source.hostPath, hostPath);
        // The digest promised these bytes; a package upgrade mid-build must not break that promise.
        const actual = sha256Hex(await readFile(hostPath));
        if (actual !== entry.sha256) {
          const from = "hostPath" in entry.source ? entry.source.hostPath : "inline text";
          throw new SkiffError("ERR_SKIFF_HOST", `${from} changed while the image was being built (${entry.path})`, {
            hint: "run the command again",
            details: { path: entry.path, expected: entry.sha256, actual },
          });
        }
        await chmod(hostPath, entry.mode);
        break;
      }
    }
  }
}

/** debugfs commands that give every inode its manifest owner and the fixed epoch. */
export function fixupScript(manifest: ImageManifest): string {
  const lines: string[] = [];
  const times = (path: string) => {
    for (const field of ["atime", "mtime", "ctime", "crtime"]) lines.push(`sif "${path}" ${field} @${imageEpoch}`);
  };
  times("/");
  times("/lost+found");
  for (const entry of manifest.entries) {
    lines.push(`sif "${entry.path}" uid ${entry.uid}`, `sif "${entry.path}" gid ${entry.gid}`);
    times(entry.path);
  }
  return lines.join("\n") + "\n";
}
