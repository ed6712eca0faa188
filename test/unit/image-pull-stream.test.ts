/**
 * A pull and the build of its base as one pass: the download's bytes reach
 * the unpacker through a feed (registry/blob-feed.ts), once each even when
 * a transfer is cut and retried, and a layer is good only once its
 * download has verified it.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { SkiffError } from "../../src/errors.js";
import { BlobFeed, feedsFor, FeedPool } from "../../src/image/registry/blob-feed.js";
import { blobPath, ingestBlob, ingestDir, sha256Digest, writeBlob } from "../../src/image/registry/blob-store.js";
import { RegistryClient } from "../../src/image/registry/client.js";
import { startPull } from "../../src/image/registry/pull.js";
import { parseReference } from "../../src/image/registry/reference.js";
import { readRefIndex } from "../../src/image/registry/refs.js";
import { applyLayers, type LayerSource } from "../../src/image/unpack/apply.js";
import { baseSourceFromPulled } from "../../src/image/unpack/pulled.js";
import { gzip, makeTar, sha256 } from "./fixtures/tar-fixtures.js";

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "skiff-stream-test-"));
});
afterAll(() => rm(work, { recursive: true, force: true }));

const fresh = async (name: string) => mkdtemp(join(work, `${name}-`));

/** Everything a feed's reader gets, joined. */
async function readAll(bytes: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of bytes) parts.push(chunk);
  return Buffer.concat(parts);
}

/** `data` in pieces of `size` (the last one shorter). */
function pieces(data: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) out.push(data.subarray(at, at + size));
  return out;
}

describe("BlobFeed", () => {
  test("a reader gets every byte in order, and its stream ends only when the download has verified the blob", async () => {
    const feed = new BlobFeed(new FeedPool());
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const parts = pieces(data, 40_000);
    feed.push(parts[0]!);
    const bytes = await feed.take();
    expect(bytes).toBeDefined();
    let ended = false;
    const reading = readAll(bytes!).then((all) => {
      ended = true;
      return all;
    });
    for (const part of parts.slice(1)) await feed.push(part);
    await new Promise((r) => setTimeout(r, 20));
    expect(ended).toBe(false);
    feed.end();
    expect((await reading).equals(data)).toBe(true);
    await expect(feed.stored).resolves.toBeUndefined();
    // Only the first reader gets the bytes.
    expect(await feed.take()).toBeUndefined();
  });

  test("a failed download fails the reader with the download's error", async () => {
    const feed = new BlobFeed(new FeedPool());
    feed.push(Buffer.alloc(600_000, 1));
    const bytes = await feed.take();
    const reading = readAll(bytes!);
    const error = new SkiffError("ERR_SKIFF_DIGEST_MISMATCH", "bad blob");
    feed.fail(error);
    await expect(reading).rejects.toBe(error);
    await expect(feed.stored).rejects.toBe(error);
  });

  test("a download that fails after its blob matched (the store could not keep it) leaves the reader its good bytes", async () => {
    const feed = new BlobFeed(new FeedPool());
    const data = randomBytes(700_000);
    feed.push(data);
    const bytes = await feed.take();
    feed.matched();
    const error = new Error("EIO on fsync");
    feed.fail(error);
    expect((await readAll(bytes!)).equals(data)).toBe(true);
    await expect(feed.verified).resolves.toBeUndefined();
    await expect(feed.stored).rejects.toBe(error);
  });

  test("a blob that was stored already, or a feed that went past the budget, is read from the store", async () => {
    const stored = new BlobFeed(new FeedPool());
    const taking = stored.take();
    stored.release();
    stored.end();
    expect(await taking).toBeUndefined();

    const pool = new FeedPool(1000);
    const small = new BlobFeed(pool);
    const big = new BlobFeed(pool);
    small.push(Buffer.alloc(400));
    big.push(Buffer.alloc(700)); // 1100 > 1000: this one gives its chunks up
    expect(pool.used).toBe(400);
    big.end();
    expect(await big.take()).toBeUndefined();
    small.end();
    expect((await readAll((await small.take())!)).length).toBe(400);
    expect(pool.used).toBe(0);
  });

  test("a download runs at most a few MiB ahead of its reader, and is let go if the reader stops", async () => {
    const feed = new BlobFeed(new FeedPool());
    feed.push(Buffer.alloc(1));
    const bytes = (await feed.take())!;
    let held: Promise<void> | undefined;
    for (let i = 0; i < 64 && held === undefined; i++) held = feed.push(Buffer.alloc(1024 * 1024)) ?? undefined;
    expect(held).toBeDefined();
    const iterator = bytes[Symbol.asyncIterator]();
    await iterator.next();
    await held; // room again
    held = undefined;
    for (let i = 0; i < 64 && held === undefined; i++) held = feed.push(Buffer.alloc(1024 * 1024)) ?? undefined;
    expect(held).toBeDefined();
    await iterator.return?.(undefined);
    await held; // the reader is gone: the download goes on
    expect(feed.push(Buffer.alloc(10))).toBeUndefined();
  });
});

describe("layers applied from their downloads", () => {
  const big = randomBytes(2 * 1024 * 1024);
  let tar: Buffer;
  let layerGz: Buffer;
  beforeAll(async () => {
    tar = await makeTar([
      { name: "etc/", type: "directory" },
      { name: "etc/motd", body: "streamed\n" },
      { name: "big", body: big },
    ]);
    layerGz = gzip(tar);
  });

  const layerOf = (path: string, feed: BlobFeed): LayerSource => ({
    path,
    mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
    digest: sha256(layerGz),
    size: layerGz.length,
    diffId: sha256(tar),
    feed,
  });

  test("the tree is the same as from the stored blob, which is not read", async () => {
    const root = await fresh("root");
    const feed = new BlobFeed(new FeedPool());
    // No file at the path: a read of the store would fail.
    const applying = applyLayers([layerOf(join(work, "absent"), feed)], root, { ownership: "fixup" });
    for (const part of pieces(layerGz, 16_384)) await feed.push(part);
    feed.end();
    await applying;
    expect(readFileSync(join(root, "etc/motd"), "utf8")).toBe("streamed\n");
    expect(readFileSync(join(root, "big")).equals(big)).toBe(true);
  });

  test("a download that fails its digest is the error, even when its bytes made no sense as a tar", async () => {
    const root = await fresh("root");
    const feed = new BlobFeed(new FeedPool());
    const applying = applyLayers([layerOf(join(work, "absent"), feed)], root, { ownership: "fixup" });
    const garbage = Buffer.from(layerGz);
    garbage.fill(0x55, 100, 4000);
    for (const part of pieces(garbage, 65_536)) feed.push(part);
    const error = new SkiffError("ERR_SKIFF_DIGEST_MISMATCH", "blob failed verification");
    setTimeout(() => feed.fail(error), 50);
    await expect(applying).rejects.toBe(error);
  });

  test("a layer that was stored before the pull is read from the store, and verified", async () => {
    const root = await fresh("root");
    const path = join(work, "stored-layer");
    await writeFile(path, layerGz);
    const feed = new BlobFeed(new FeedPool());
    feed.release();
    feed.end();
    await applyLayers([layerOf(path, feed)], root, { ownership: "fixup" });
    expect(readFileSync(join(root, "etc/motd"), "utf8")).toBe("streamed\n");
    const other = new BlobFeed(new FeedPool());
    other.release();
    other.end();
    await writeFile(path, gzip(await makeTar([{ name: "x", body: "changed on disk" }])));
    await expect(applyLayers([layerOf(path, other)], await fresh("root"), { ownership: "fixup" })).rejects.toMatchObject({
      code: "ERR_SKIFF_DIGEST_MISMATCH",
    });
  });
});

describe("blob downloads", () => {
  const ref = parseReference("reg.example/app:v1");
  const blob = randomBytes(1024 * 1024 + 123);
  const target = { digest: sha256Digest(blob), size: blob.length };

  /** A body that sends `data` in 16 KiB chunks and, with `cutAt`, breaks off there as a dropped connection does. */
  const body = (data: Buffer, cutAt?: number) => {
    let at = 0;
    return new ReadableStream<Uint8Array>({
      pull(controller) {
        if (cutAt !== undefined && at >= cutAt) {
          controller.error(new TypeError("terminated"));
          return;
        }
        const end = Math.min(data.length, at + 16_384, cutAt ?? Infinity);
        controller.enqueue(new Uint8Array(data.subarray(at, end)));
        at = end;
        if (at >= data.length) controller.close();
      },
    });
  };

  /** A registry that cuts the first transfer half-way, then serves `second` whole. */
  const flakyRegistry = (second: Buffer) => {
    let calls = 0;
    const fetchFn = (async () => {
      calls++;
      return new Response(calls === 1 ? body(blob, 300_000) : body(second), { status: 200 });
    }) as typeof fetch;
    return { fetchFn, calls: () => calls };
  };

  test("a transfer cut short is retried from the start; the bytes already handed on are checked, not handed on again", async () => {
    const cache = await fresh("cache");
    const reg = flakyRegistry(blob);
    const client = new RegistryClient({ registry: "reg.example", credentials: null, fetch: reg.fetchFn });
    const seen: Uint8Array[] = [];
    await client.fetchBlob(ref, target, cache, { onChunk: (chunk) => void seen.push(Buffer.from(chunk)) });
    expect(reg.calls()).toBe(2);
    expect(Buffer.concat(seen).equals(blob)).toBe(true);
    expect((await readFile(blobPath(cache, target.digest))).equals(blob)).toBe(true);
    expect(readdirSync(ingestDir(cache))).toEqual([]);
  });

  test("a retry whose first bytes differ from those handed on already fails, and keeps nothing", async () => {
    const cache = await fresh("cache");
    const changed = Buffer.from(blob);
    changed[1000] = changed[1000]! ^ 0xff;
    const reg = flakyRegistry(changed);
    const client = new RegistryClient({ registry: "reg.example", credentials: null, fetch: reg.fetchFn });
    const seen: Uint8Array[] = [];
    await expect(client.fetchBlob(ref, target, cache, { onChunk: (chunk) => void seen.push(chunk) })).rejects.toMatchObject({
      code: "ERR_SKIFF_DIGEST_MISMATCH",
      message: expect.stringContaining("first try"),
    });
    expect(Buffer.concat(seen).equals(blob.subarray(0, 300_000))).toBe(true);
    expect(readdirSync(ingestDir(cache))).toEqual([]);
  });

  test("the store writes a blob of many small chunks whole", async () => {
    const cache = await fresh("cache");
    mkdirSync(join(cache, "blobs"), { recursive: true });
    await ingestBlob(cache, target, "t", async (sink) => {
      for (const part of pieces(blob, 1000)) await sink.write(part);
    });
    expect((await readFile(blobPath(cache, target.digest))).equals(blob)).toBe(true);
  });
});

describe("a pull feeding the build of its base", () => {
  /** An image in memory: two gzip layers, its config and manifest, served by a fetch stand-in (`corrupt`: one layer's bytes). */
  async function memoryRegistry() {
    const tars = [
      await makeTar([{ name: "etc/", type: "directory" }, { name: "etc/lower", body: "from layer 1\n" }, { name: "gone", body: "x" }]),
      await makeTar([{ name: ".wh.gone", body: "" }, { name: "etc/upper", body: randomBytes(700_000) }]),
    ];
    const layers = tars.map((t) => gzip(t));
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", config: { Cmd: ["/bin/sh"] }, rootfs: { type: "layers", diff_ids: tars.map(sha256) } }));
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
        layers: layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha256(l), size: l.length })),
      }),
    );
    const blobs = new Map([config, manifest, ...layers].map((b) => [sha256(b), b]));
    const state = { corrupt: undefined as string | undefined, blobGets: [] as string[] };
    const fetchFn = (async (input: string | URL | Request, init?: RequestInit) => {
      const path = new URL(String(input)).pathname;
      const name = path.split("/").pop()!;
      if (path.includes("/manifests/")) {
        const headers = { "content-type": "application/vnd.oci.image.manifest.v1+json", "docker-content-digest": sha256(manifest) };
        return new Response(init?.method === "HEAD" ? null : manifest, { status: 200, headers });
      }
      const blob = blobs.get(name);
      if (blob === undefined) return new Response("{}", { status: 404 });
      state.blobGets.push(name);
      const bytes = name === state.corrupt ? Buffer.from(blob).fill(0x55, 200, 300) : blob;
      return new Response(body(bytes), { status: 200 });
    }) as typeof fetch;
    return { fetchFn, layers, state };
  }

  const body = (data: Buffer) => {
    let at = 0;
    return new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(new Uint8Array(data.subarray(at, at + 8192)));
        at += 8192;
        if (at >= data.length) controller.close();
      },
    });
  };

  test("each layer is applied as it downloads; one stored already is read from the store; the reference is recorded", async () => {
    const reg = await memoryRegistry();
    const cacheDir = await fresh("cache");
    await writeBlob(cacheDir, sha256(reg.layers[0]!), reg.layers[0]!);
    const pull = await startPull("reg.example/app:v1", { cacheDir, env: {}, fetch: reg.fetchFn });
    const feeds = feedsFor(pull.image.layers.map((l) => l.digest));
    const pulling = pull.complete(feeds);
    const source = await baseSourceFromPulled(cacheDir, pull.image, { feeds });
    const root = await fresh("root");
    await applyLayers(source.layers, root, { ownership: "fixup" });
    await pulling;
    expect(readdirSync(join(root, "etc")).sort()).toEqual(["lower", "upper"]);
    expect(readdirSync(root).sort()).toEqual(["etc"]);
    expect(reg.state.blobGets).toEqual([pull.image.configDigest, sha256(reg.layers[1]!)]);
    expect((await readFile(blobPath(cacheDir, sha256(reg.layers[1]!)))).equals(reg.layers[1]!)).toBe(true);
    expect(await readRefIndex(cacheDir)).toMatchObject({ "reg.example/app:v1": pull.image.manifestDigest });
  });

  test("a layer that fails its digest on the way fails the build with that error, and nothing of it is stored", async () => {
    const reg = await memoryRegistry();
    reg.state.corrupt = sha256(reg.layers[1]!);
    const cacheDir = await fresh("cache");
    const pull = await startPull("reg.example/app:v1", { cacheDir, env: {}, fetch: reg.fetchFn });
    const feeds = feedsFor(pull.image.layers.map((l) => l.digest));
    const pulling = pull.complete(feeds);
    pulling.catch(() => {});
    const source = await baseSourceFromPulled(cacheDir, pull.image, { feeds });
    await expect(applyLayers(source.layers, await fresh("root"), { ownership: "fixup" })).rejects.toMatchObject({ code: "ERR_SKIFF_DIGEST_MISMATCH" });
    await expect(pulling).rejects.toMatchObject({ code: "ERR_SKIFF_DIGEST_MISMATCH" });
    expect(readdirSync(ingestDir(cacheDir))).toEqual([]);
    expect(readdirSync(join(cacheDir, "blobs", "sha256"))).not.toContain(sha256(reg.layers[1]!).slice(7));
  });
});
