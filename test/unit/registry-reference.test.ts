import { describe, expect, test } from "vitest";
import { ExitCode, SkiffError } from "../../src/errors.js";
import { familiarReference, parseReference, withDigest } from "../../src/image/registry/reference.js";

const hex = "a".repeat(64);
const digest = `sha256:${hex}`;

describe("parseReference: Docker's normalisation", () => {
  test.each([
    ["alpine", "docker.io", "library/alpine", "latest", undefined],
    ["alpine:3.20", "docker.io", "library/alpine", "3.20", undefined],
    ["library/alpine", "docker.io", "library/alpine", "latest", undefined],
    ["docker.io/alpine", "docker.io", "library/alpine", "latest", undefined],
    ["docker.io/library/alpine:edge", "docker.io", "library/alpine", "edge", undefined],
    ["index.docker.io/library/alpine", "docker.io", "library/alpine", "latest", undefined],
    ["index.docker.io/alpine", "docker.io", "library/alpine", "latest", undefined],
    ["user/app", "docker.io", "user/app", "latest", undefined],
    ["user/app/sub:1", "docker.io", "user/app/sub", "1", undefined],
    ["ghcr.io/org/app:v1.2.3", "ghcr.io", "org/app", "v1.2.3", undefined],
    ["registry.example.com/app", "registry.example.com", "app", "latest", undefined],
    ["localhost/app", "localhost", "app", "latest", undefined],
    ["localhost:5000/app", "localhost:5000", "app", "latest", undefined],
    ["127.0.0.1:5000/a/b:tag", "127.0.0.1:5000", "a/b", "tag", undefined],
    ["myhost:5000/app", "myhost:5000", "app", "latest", undefined],
    ["[::1]:5000/app", "[::1]:5000", "app", "latest", undefined],
    ["Registry.Example.com/app", "Registry.Example.com", "app", "latest", undefined],
    ["Foo/bar", "Foo", "bar", "latest", undefined],
    ["a_b/c__d/e-f/g.h", "docker.io", "a_b/c__d/e-f/g.h", "latest", undefined],
    ["a---b", "docker.io", "library/a---b", "latest", undefined],
    ["localhost", "docker.io", "library/localhost", "latest", undefined],
    ["localhost:5000", "docker.io", "library/localhost", "5000", undefined],
    ["app:_x", "docker.io", "library/app", "_x", undefined],
    [`alpine@${digest}`, "docker.io", "library/alpine", undefined, digest],
    [`alpine:3@${digest}`, "docker.io", "library/alpine", "3", digest],
    [`host:5000/app@${digest}`, "host:5000", "app", undefined, digest],
  ])("%s", (input, registry, repository, tag, dig) => {
    const ref = parseReference(input);
    expect(ref.registry).toBe(registry);
    expect(ref.repository).toBe(repository);
    expect(ref.tag).toBe(tag);
    expect(ref.digest).toBe(dig);
  });

  test("canonical forms", () => {
    expect(parseReference("alpine").canonical).toBe("docker.io/library/alpine:latest");
    expect(parseReference(`alpine@${digest}`).canonical).toBe(`docker.io/library/alpine@${digest}`);
    expect(parseReference(`h:1/a:t@${digest}`).canonical).toBe(`h:1/a:t@${digest}`);
    expect(parseReference("127.0.0.1:5000/x/y").canonical).toBe("127.0.0.1:5000/x/y:latest");
  });

  test("a tag of 128 characters is fine, 129 is not", () => {
    expect(parseReference(`a:${"t".repeat(128)}`).tag).toHaveLength(128);
    expect(() => parseReference(`a:${"t".repeat(129)}`)).toThrow(/not a valid tag/);
  });
});

describe("parseReference: malformed references", () => {
  test.each([
    ["", /empty/],
    [" alpine", /whitespace/],
    ["alp ine", /whitespace/],
    ["Alpine", /must be lowercase/],
    ["docker.io/Alpine", /must be lowercase/],
    ["ghcr.io/Org/app", /must be lowercase/],
    ["alpine:", /tag after : is empty/],
    ["alpine:-x", /not a valid tag/],
    ["alpine:.x", /not a valid tag/],
    ["alpine:a/b", /"alpine:a" is not a valid registry host/],
    ["alpine@sha256:abc", /is not a digest/],
    [`alpine@sha256:${"A".repeat(64)}`, /is not a digest/],
    [`alpine@sha512:${"a".repeat(128)}`, /unsupported digest algorithm "sha512"/],
    [`alpine@${digest}@${digest}`, /is not a digest/],
    [`@${digest}`, /name before @ is missing/],
    ["-alpine", /not a valid repository path component/],
    ["alpine-", /not a valid repository path component/],
    ["a..b", /not a valid repository path component/],
    ["a___b", /not a valid repository path component/],
    ["alpine/", /empty path component/],
    ["a//b", /empty path component/],
    ["ghcr.io/", /repository name is missing/],
    [hex, /image ID, not a name/],
    ["my_host:5000/app", /not a valid registry host/],
    ["-host.io/app", /not a valid registry host/],
    ["http://host/app", /not a valid registry host/],
    [`x.io/${"a".repeat(251)}`, /longer than 255/],
  ])("%j", (input, message) => {
    expect(() => parseReference(input)).toThrow(message);
  });

  test("the error is ERR_SKIFF_BAD_IMAGE_REF, a usage error, with place and hint", () => {
    let caught: unknown;
    try {
      parseReference("Alpine:1", "skiff.yml:4");
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SkiffError);
    const err = caught as SkiffError;
    expect(err.code).toBe("ERR_SKIFF_BAD_IMAGE_REF");
    expect(err.exitCode).toBe(ExitCode.usage);
    expect(err.place).toBe("skiff.yml:4");
    expect(err.hint).toBeTruthy();
    expect(err.message).toContain('"Alpine:1"');
  });
});

describe("reference helpers", () => {
  test("familiarReference gives Docker's short names", () => {
    expect(familiarReference(parseReference("alpine"))).toBe("alpine:latest");
    expect(familiarReference(parseReference("user/app:1"))).toBe("user/app:1");
    expect(familiarReference(parseReference("library/a/b"))).toBe("library/a/b:latest");
    expect(familiarReference(parseReference("ghcr.io/o/a:1"))).toBe("ghcr.io/o/a:1");
  });

  test("withDigest pins a reference", () => {
    const ref = withDigest(parseReference("h:5000/app:v1"), digest);
    expect(ref).toEqual({ registry: "h:5000", repository: "app", digest, canonical: `h:5000/app@${digest}` });
  });
});
