import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { blobPath, hasBlob, ingestBlob, ingestDir, sha256Digest, writeBlob } from "../../src/image/registry/blob-store.js";
import { parseImageConfig } from "../../src/image/registry/image-config.js";
import { mediaTypes, parseManifest } from "../../src/image/registry/manifest.js";
import { isLoopbackRegistry, registryBaseUrl } from "../../src/image/registry/transport.js";

const d = (n: string) => `sha256:${n.repeat(64)}`;
const json = (v: unknown) => Buffer.from(JSON.stringify(v));

describe("parseManifest", () => {
  const image = {
    schemaVersion: 2,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: d("c"), size: 10 },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+zstd", digest: d("1"), size: 5, annotations: { a: "b" } }],
  };

  test("an OCI manifest without mediaType is told by its shape; extra fields are dropped", () => {
    const m = parseManifest(json(image), "x");
    expect(m).toEqual({
      kind: "image",
      mediaType: mediaTypes.ociManifest,
      config: image.config,
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+zstd", digest: d("1"), size: 5 }],
    });
  });

  test("Docker schema 2 and manifest lists keep their media types", () => {
    expect(parseManifest(json({ ...image, mediaType: mediaTypes.dockerManifest }), "x").mediaType).toBe(mediaTypes.dockerManifest);
    const list = {
      schemaVersion: 2,
      mediaType: mediaTypes.dockerManifestList,
      manifests: [{ mediaType: mediaTypes.dockerManifest, digest: d("2"), size: 3, platform: { architecture: "arm64", os: "linux", variant: "v8" } }],
    };
    expect(parseManifest(json(list), "x")).toEqual({
      kind: "index",
      mediaType: mediaTypes.dockerManifestList,
      manifests: [{ mediaType: mediaTypes.dockerManifest, digest: d("2"), size: 3, platform: { os: "linux", architecture: "arm64", variant: "v8" } }],
    });
  });

  test("the Content-Type header says what the body does not", () => {
    const list = { schemaVersion: 2, manifests: [] };
    expect(parseManifest(json(list), "x", `${mediaTypes.ociIndex}; charset=utf-8`).kind).toBe("index");
  });

  test("schema 1 is refused with a hint", () => {
    expect(() => parseManifest(json({ schemaVersion: 1, fsLayers: [] }), "x")).toThrow(/Docker schema 1/);
  });

  test.each([
    ["a digest that could name a path", { ...image, layers: [{ mediaType: "m", digest: "sha256:../../etc/passwd", size: 1 }] }, /malformed digest/],
    ["a sha512 digest", { ...image, layers: [{ mediaType: "m", digest: `sha512:${"a".repeat(128)}`, size: 1 }] }, /unsupported or malformed digest/],
    ["a negative size", { ...image, layers: [{ mediaType: "m", digest: d("1"), size: -1 }] }, /no valid size/],
    ["no layers", { schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: image.config }, /without a layers list/],
    ["not JSON", "<html>", /not JSON/],
    ["something else", { hello: 1 }, /unsupported media type/],
  ])("%s is refused", (_what, body, message) => {
    expect(() => parseManifest(typeof body === "string" ? Buffer.from(body) : json(body), "x")).toThrow(message);
  });
});

describe("parseImageConfig", () => {
  test("Entrypoint, Cmd, Env, WorkingDir, User, ExposedPorts, Labels, platform, diff_ids", () => {
    const parsed = parseImageConfig(
      json({
        architecture: "arm64",
        os: "linux",
        variant: "v8",
        config: {
          Entrypoint: ["/bin/app"],
          Cmd: ["--serve"],
          Env: ["PATH=/usr/bin:/bin", "EMPTY=", "BARE", "A=b=c", "A=last"],
          WorkingDir: "/srv",
          User: "1000:1000",
          ExposedPorts: { "80/tcp": {}, "53/udp": {} },
          Labels: { "org.example": "yes" },
        },
        rootfs: { type: "layers", diff_ids: [d("1")] },
      }),
      "x",
    );
    expect(parsed).toEqual({
      runtime: {
        entrypoint: ["/bin/app"],
        cmd: ["--serve"],
        env: { PATH: "/usr/bin:/bin", EMPTY: "", BARE: "", A: "last" },
        workingDir: "/srv",
        user: "1000:1000",
        exposedPorts: ["53/udp", "80/tcp"],
        labels: { "org.example": "yes" },
      },
      platform: { os: "linux", architecture: "arm64", variant: "v8" },
      diffIds: [d("1")],
    });
  });

  test("a config with nothing in it (null Entrypoint, no config at all)", () => {
    expect(parseImageConfig(json({ config: { Entrypoint: null, Cmd: null, Env: null } }), "x")).toEqual({
      runtime: { entrypoint: [], cmd: [], env: {}, exposedPorts: [], labels: {} },
      platform: undefined,
      diffIds: [],
    });
    expect(parseImageConfig(json({}), "x").runtime.cmd).toEqual([]);
  });
});

describe("which registries get plain HTTP", () => {
  test.each([
    ["localhost", true],
    ["localhost:5000", true],
    ["127.0.0.1:5000", true],
    ["127.1.2.3", true],
    ["[::1]:5000", true],
    ["127.0.0.256", false],
    ["128.0.0.1:5000", false],
    ["localhost.example.com", false],
    ["ghcr.io", false],
  ])("%s loopback: %s", (host, loopback) => {
    expect(isLoopbackRegistry(host)).toBe(loopback);
    expect(registryBaseUrl(host)).toBe(`${loopback ? "http" : "https"}://${host}/`);
  });

  test("Docker Hub's API host; insecure registries by host:port or host", () => {
    expect(registryBaseUrl("docker.io")).toBe("https://registry-1.docker.io/");
    expect(registryBaseUrl("reg.lan:5000", ["reg.lan:5000"])).toBe("http://reg.lan:5000/");
    expect(registryBaseUrl("reg.lan:5000", ["reg.lan"])).toBe("http://reg.lan:5000/");
    expect(registryBaseUrl("reg.lan:5000", ["reg.lan:6000"])).toBe("https://reg.lan:5000/");
    expect(registryBaseUrl("reg.lan", ["http://reg.lan/"])).toBe("http://reg.lan/");
  });
});

describe("the blob store", () => {
  const withCache = async (fn: (cache: string) => Promise<void>) => {
    const cache = await mkdtemp(join(tmpdir(), "skiff-blobs-"));
    try {
      await fn(cache);
    } finally {
      await rm(cache, { recursive: true, force: true });
    }
  };
  const data = Buffer.from("hello blob");
  const digest = sha256Digest(data);

  test("a verified blob lands under its digest", () =>
    withCache(async (cache) => {
      await writeBlob(cache, digest, data);
      expect(await readFile(blobPath(cache, digest), "utf8")).toBe("hello blob");
      expect(await hasBlob(cache, digest, data.length)).toBe(true);
      expect(await hasBlob(cache, digest, data.length + 1)).toBe(false);
      expect(await readdir(ingestDir(cache))).toEqual([]);
    }));

  test("wrong content, too much, too little: coded errors and no files left", () =>
    withCache(async (cache) => {
      await expect(writeBlob(cache, digest, Buffer.from("hello blub"))).rejects.toMatchObject({ code: "ERR_SKIFF_DIGEST_MISMATCH" });
      await expect(
        ingestBlob(cache, { digest, size: data.length }, "t", async (sink) => sink.write(Buffer.concat([data, data]))),
      ).rejects.toMatchObject({ code: "ERR_SKIFF_DIGEST_MISMATCH", message: expect.stringContaining("more than") });
      await expect(
        ingestBlob(cache, { digest, size: data.length }, "t", async (sink) => sink.write(data.subarray(0, 4))),
      ).rejects.toMatchObject({ code: "ERR_SKIFF_REGISTRY", message: expect.stringContaining("ended early") });
      await expect(
        ingestBlob(cache, { digest, size: data.length }, "t", async () => {
          throw new Error("boom");
        }),
      ).rejects.toThrow("boom");
      expect(await hasBlob(cache, digest)).toBe(false);
      expect(await readdir(ingestDir(cache))).toEqual([]);
    }));
});
