import { describe, expect, test } from "vitest";
import { SkiffError } from "../../src/errors.js";
import type { IndexEntry } from "../../src/image/registry/manifest.js";
import { formatPlatform, parsePlatform, platformMatches, selectPlatform } from "../../src/image/registry/platform.js";

const d = (n: string) => `sha256:${n.repeat(64)}`;
const entry = (digest: string, os: string, architecture: string, variant?: string, annotations?: Record<string, string>): IndexEntry => ({
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  digest,
  size: 100,
  platform: { os, architecture, ...(variant ? { variant } : {}) },
  ...(annotations ? { annotations } : {}),
});

describe("platforms", () => {
  test.each([
    ["linux/amd64", "linux/amd64"],
    ["linux/x86_64", "linux/amd64"],
    ["linux/amd64/v1", "linux/amd64"],
    ["linux/amd64/v3", "linux/amd64/v3"],
    ["linux/arm64", "linux/arm64"],
    ["linux/arm64/v8", "linux/arm64"],
    ["linux/aarch64", "linux/arm64"],
    ["linux/arm", "linux/arm/v7"],
    ["linux/arm/6", "linux/arm/v6"],
    ["arm64", "linux/arm64"],
    ["Linux/AMD64", "linux/amd64"],
  ])("parsePlatform(%s) is %s", (text, expected) => {
    expect(formatPlatform(parsePlatform(text))).toBe(expected);
  });

  test.each(["", "linux/", "a/b/c/d", "linux/amd 64"])("parsePlatform(%j) is a usage error", (text) => {
    expect(() => parsePlatform(text, "platform")).toThrow(expect.objectContaining({ code: "ERR_SKIFF_USAGE", place: "platform" }));
  });

  test("platformMatches normalises both sides", () => {
    expect(platformMatches({ os: "linux", architecture: "arm64", variant: "v8" }, { os: "linux", architecture: "aarch64" })).toBe(true);
    expect(platformMatches({ os: "linux", architecture: "arm", variant: "v6" }, { os: "linux", architecture: "arm" })).toBe(false);
  });
});

describe("selectPlatform", () => {
  const index = [
    entry(d("1"), "linux", "amd64"),
    entry(d("2"), "linux", "arm64", "v8"),
    entry(d("3"), "linux", "arm", "v6"),
    entry(d("4"), "unknown", "unknown", undefined, { "vnd.docker.reference.type": "attestation-manifest" }),
  ];

  test("picks by platform, linux/arm64/v8 and linux/arm64 alike", () => {
    expect(selectPlatform(index, parsePlatform("linux/amd64"), "x").digest).toBe(d("1"));
    expect(selectPlatform(index, parsePlatform("linux/arm64/v8"), "x").digest).toBe(d("2"));
    expect(selectPlatform(index, parsePlatform("linux/arm64"), "x").digest).toBe(d("2"));
    expect(selectPlatform(index, parsePlatform("linux/arm/v6"), "x").digest).toBe(d("3"));
  });

  test("without a variant asked for, any variant of the architecture does", () => {
    expect(selectPlatform([entry(d("5"), "linux", "amd64", "v3")], parsePlatform("linux/amd64"), "x").digest).toBe(d("5"));
  });

  test("no match: ERR_SKIFF_PLATFORM listing what there is, attestations left out", () => {
    let caught: unknown;
    try {
      selectPlatform(index, parsePlatform("linux/s390x"), "reg/app:1");
    } catch (err) {
      caught = err;
    }
    const err = caught as SkiffError;
    expect(err.code).toBe("ERR_SKIFF_PLATFORM");
    expect(err.message).toBe("reg/app:1 has no image for linux/s390x; it has: linux/amd64, linux/arm64, linux/arm/v6");
    expect(err.hint).toContain("choose one as the platform (e.g. linux/amd64)");
    expect(err.details).toEqual({ wanted: "linux/s390x", available: ["linux/amd64", "linux/arm64", "linux/arm/v6"] });
  });

  test("an index with only entries without a platform", () => {
    const bare: IndexEntry = { mediaType: "m", digest: d("6"), size: 1 };
    expect(() => selectPlatform([bare], parsePlatform("linux/amd64"), "x")).toThrow(/no platform-specific images/);
  });
});
