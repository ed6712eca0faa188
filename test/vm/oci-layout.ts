/**
 * Test images written from a description: an OCI image layout directory
 * (`oci-layout`, `index.json`, `blobs/sha256/`) whose layers are tars made
 * entry by entry (files with content, mode and owner, dirs, symlinks, hard
 * links, whiteouts, opaque dirs, device nodes), each compressed with gzip,
 * zstd (the `zstd` CLI) or not at all, and optionally an index of several
 * platforms that share layers. Push it with skopeo (see registry.ts).
 *
 * Everything is deterministic (fixed mtimes, gzip without a timestamp), so
 * the same description gives the same digests.
 */
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import tarStream, { type Header, type Pack } from "tar-stream";
import { ProcessRunner } from "../../src/process/runner.js";

const { pack } = tarStream;

export type TarEntry =
  | { type: "file"; path: string; content?: string | Buffer; mode?: number; uid?: number; gid?: number }
  | { type: "dir"; path: string; mode?: number; uid?: number; gid?: number }
  | { type: "symlink"; path: string; target: string; uid?: number; gid?: number }
  /** `target` is the path (inside the image) of an earlier entry in the same layer. */
  | { type: "hardlink"; path: string; target: string }
  /** Deletes `path` from the layers below (`dir/.wh.name`). */
  | { type: "whiteout"; path: string }
  /** Hides everything the layers below have in directory `path` (`path/.wh..wh..opq`). */
  | { type: "opaque"; path: string }
  | { type: "chardev"; path: string; major: number; minor: number; mode?: number; uid?: number; gid?: number };

export type Compression = "gzip" | "zstd" | "none";

export interface LayerSpec {
  entries: TarEntry[];
  compression?: Compression;
}

export interface ConfigSpec {
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  WorkingDir?: string;
  User?: string;
  ExposedPorts?: string[];
  Labels?: Record<string, string>;
}

export interface PlatformSpec {
  os: string;
  architecture: string;
  variant?: string;
}

export interface ImageSpec {
  layers: LayerSpec[];
  config?: ConfigSpec;
  /** Default linux/amd64. */
  platform?: PlatformSpec;
}

export interface LayoutSpec {
  /** The ref name in index.json (skopeo's `oci:DIR:TAG`); default "latest". */
  tag?: string;
  /** One image, or several (then an image index names them by platform). */
  images: ImageSpec[];
}

export interface BuiltLayer {
  mediaType: string;
  digest: string;
  size: number;
  /** sha256 of the uncompressed tar. */
  diffId: string;
}

export interface BuiltImage {
  manifestDigest: string;
  manifestSize: number;
  configDigest: string;
  platform: PlatformSpec;
  layers: BuiltLayer[];
}

export interface BuiltLayout {
  dir: string;
  tag: string;
  /** The index's digest, when the layout holds several platforms. */
  indexDigest?: string;
  /** What the tag points at: the index, or the one manifest. */
  topDigest: string;
  images: BuiltImage[];
}

const mtime = new Date("2024-01-01T00:00:00Z");
const layerTypes: Record<Compression, string> = {
  gzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  zstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  none: "application/vnd.oci.image.layer.v1.tar",
};

export async function buildOciLayout(dir: string, spec: LayoutSpec): Promise<BuiltLayout> {
  const tag = spec.tag ?? "latest";
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const images: BuiltImage[] = [];
  for (const image of spec.images) images.push(await writeImage(dir, image));
  let top: { mediaType: string; digest: string; size: number };
  let indexDigest: string | undefined;
  if (spec.images.length === 1) {
    const only = images[0]!;
    top = { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: only.manifestDigest, size: only.manifestSize };
  } else {
    const index = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: images.map((img) => ({
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: img.manifestDigest,
        size: img.manifestSize,
        platform: img.platform,
      })),
    };
    top = { mediaType: index.mediaType, ...(await writeJsonBlob(dir, index)) };
    indexDigest = top.digest;
  }
  await writeFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ ...top, annotations: { "org.opencontainers.image.ref.name": tag } }],
    }),
  );
  return { dir, tag, ...(indexDigest === undefined ? {} : { indexDigest }), topDigest: top.digest, images };
}

async function writeImage(dir: string, image: ImageSpec): Promise<BuiltImage> {
  const platform = image.platform ?? { os: "linux", architecture: "amd64" };
  const layers: BuiltLayer[] = [];
  for (const layer of image.layers) layers.push(await writeLayer(dir, layer));
  const c = image.config ?? {};
  const config = {
    created: mtime.toISOString(),
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: {
      ...(c.Entrypoint ? { Entrypoint: c.Entrypoint } : {}),
      ...(c.Cmd ? { Cmd: c.Cmd } : {}),
      ...(c.Env ? { Env: c.Env } : {}),
      ...(c.WorkingDir ? { WorkingDir: c.WorkingDir } : {}),
      ...(c.User ? { User: c.User } : {}),
      ...(c.ExposedPorts ? { ExposedPorts: Object.fromEntries(c.ExposedPorts.map((p) => [p, {}])) } : {}),
      ...(c.Labels ? { Labels: c.Labels } : {}),
    },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({ created: mtime.toISOString(), created_by: "skiff test fixture" })),
  };
  const configBlob = await writeJsonBlob(dir, config);
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...configBlob },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const manifestBlob = await writeJsonBlob(dir, manifest);
  return { manifestDigest: manifestBlob.digest, manifestSize: manifestBlob.size, configDigest: configBlob.digest, platform, layers };
}

async function writeLayer(dir: string, layer: LayerSpec): Promise<BuiltLayer> {
  const compression = layer.compression ?? "gzip";
  const tar = await makeTar(layer.entries);
  const blob = compression === "gzip" ? gzipSync(tar) : compression === "zstd" ? await zstd(tar) : tar;
  const { digest, size } = await writeBlobFile(dir, blob);
  return { mediaType: layerTypes[compression], digest, size, diffId: sha256(tar) };
}

/** A tar of `entries`, in order, as a layer holds them. */
export async function makeTar(entries: TarEntry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    p.on("data", (chunk: unknown) => chunks.push(chunk as Buffer));
    p.on("end", () => resolve(Buffer.concat(chunks)));
    p.on("error", reject);
  });
  for (const entry of entries) {
    const name = entry.path.replace(/^\/+/, "");
    const owner = "uid" in entry || "gid" in entry ? { uid: (entry as { uid?: number }).uid ?? 0, gid: (entry as { gid?: number }).gid ?? 0 } : { uid: 0, gid: 0 };
    switch (entry.type) {
      case "file": {
        const content = typeof entry.content === "string" ? Buffer.from(entry.content) : entry.content ?? Buffer.alloc(0);
        await add(p, { name, type: "file", mode: entry.mode ?? 0o644, mtime, ...owner, size: content.length }, content);
        break;
      }
      case "dir":
        await add(p, { name: `${name}/`, type: "directory", mode: entry.mode ?? 0o755, mtime, ...owner });
        break;
      case "symlink":
        await add(p, { name, type: "symlink", linkname: entry.target, mode: 0o777, mtime, ...owner });
        break;
      case "hardlink":
        await add(p, { name, type: "link", linkname: entry.target.replace(/^\/+/, ""), mode: 0o644, mtime, uid: 0, gid: 0 });
        break;
      case "whiteout": {
        const slash = name.lastIndexOf("/");
        const wh = `${name.slice(0, slash + 1)}.wh.${name.slice(slash + 1)}`;
        await add(p, { name: wh, type: "file", mode: 0o644, mtime, uid: 0, gid: 0, size: 0 }, Buffer.alloc(0));
        break;
      }
      case "opaque":
        await add(p, { name: `${name}/.wh..wh..opq`, type: "file", mode: 0o644, mtime, uid: 0, gid: 0, size: 0 }, Buffer.alloc(0));
        break;
      case "chardev":
        await add(p, {
          name,
          type: "character-device",
          devmajor: entry.major,
          devminor: entry.minor,
          mode: entry.mode ?? 0o666,
          mtime,
          ...owner,
        });
        break;
    }
  }
  p.finalize();
  return done;
}

function add(p: Pack, header: Partial<Header> & { name: string }, content?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const cb = (err?: Error | null) => (err ? reject(err) : resolve());
    if (content === undefined) p.entry(header, cb);
    else p.entry(header, content, cb);
  });
}

async function zstd(data: Buffer): Promise<Buffer> {
  const work = await mkdtemp(join(tmpdir(), "skiff-zstd-"));
  try {
    await writeFile(join(work, "in"), data);
    await new ProcessRunner().run("zstd", ["-q", "-3", "-o", join(work, "out"), join(work, "in")], {
      check: true,
      timeoutMs: 30_000,
      debianPackage: "zstd",
    });
    return await readFile(join(work, "out"));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function sha256(data: Buffer): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

async function writeBlobFile(dir: string, data: Buffer): Promise<{ digest: string; size: number }> {
  const digest = sha256(data);
  await writeFile(join(dir, "blobs", "sha256", digest.slice("sha256:".length)), data);
  return { digest, size: data.length };
}

async function writeJsonBlob(dir: string, value: unknown): Promise<{ digest: string; size: number }> {
  return writeBlobFile(dir, Buffer.from(JSON.stringify(value)));
}
