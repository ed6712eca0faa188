/**
 * Image references, normalised the way Docker does it (distribution's
 * `reference.ParseNormalizedNamed`), so a name means here what it means to
 * `docker pull`: `alpine` is docker.io/library/alpine:latest, a first
 * component with a dot, a colon or equal to `localhost` is a registry host,
 * and repository paths are lowercase.
 */
import { SkiffError } from "../../errors.js";
import type { ImageReference } from "../oci/types.js";

export const dockerHubRegistry = "docker.io";
const legacyDockerHub = "index.docker.io";
const officialPrefix = "library/";
const defaultTag = "latest";
const maxNameLength = 255;

const pathComponent = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const domainComponent = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const registryHost = new RegExp(`^(?:${domainComponent}(?:\\.${domainComponent})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const tagPattern = /^\w[\w.-]{0,127}$/;
const sha256Digest = /^sha256:[a-f0-9]{64}$/;
const anyDigest = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const hexIdentifier = /^[a-f0-9]{64}$/;

const refHint = "an image reference is [HOST[:PORT]/]NAME[:TAG][@sha256:DIGEST], e.g. alpine:3.20, ghcr.io/org/app@sha256:…";

/** Parse what a user typed into a fully qualified reference; ERR_SKIFF_BAD_IMAGE_REF if it is not one. */
export function parseReference(ref: string, place?: string): ImageReference {
  const fail = (why: string, hint = refHint): never => {
    throw new SkiffError("ERR_SKIFF_BAD_IMAGE_REF", `invalid image reference ${JSON.stringify(ref)}: ${why}`, {
      hint,
      ...(place === undefined ? {} : { place }),
      details: { ref },
    });
  };
  if (ref === "") fail("it is empty");
  if (/\s/.test(ref)) fail("it contains whitespace");
  if (hexIdentifier.test(ref)) {
    fail("a 64-character hex string is an image ID, not a name", "to pull by digest, write NAME@sha256:<hex>");
  }

  let named = ref;
  let digest: string | undefined;
  const at = ref.indexOf("@");
  if (at !== -1) {
    named = ref.slice(0, at);
    digest = ref.slice(at + 1);
    if (!sha256Digest.test(digest)) {
      if (anyDigest.test(digest) && !digest.startsWith("sha256:")) {
        fail(`unsupported digest algorithm "${digest.split(":")[0]}"`, "skiff verifies sha256 digests only: NAME@sha256:<64 hex digits>");
      }
      fail(`"${digest}" is not a digest`, "a digest is sha256: followed by 64 lowercase hex digits");
    }
  }
  if (named === "") fail("the name before @ is missing");

  const { registry, remainder } = splitRegistry(named);
  let path = remainder;
  let tag: string | undefined;
  const colon = remainder.indexOf(":");
  if (colon !== -1) {
    path = remainder.slice(0, colon);
    tag = remainder.slice(colon + 1);
    if (!tagPattern.test(tag)) {
      fail(
        tag === "" ? "the tag after : is empty" : `"${tag}" is not a valid tag`,
        "a tag is up to 128 letters, digits, _ . and -, not starting with . or -",
      );
    }
  }
  if (!registryHost.test(registry)) fail(`"${registry}" is not a valid registry host`);
  if (path === "") fail("the repository name is missing");
  if (path.toLowerCase() !== path) fail(`repository name "${path}" must be lowercase`);
  for (const component of path.split("/")) {
    if (!pathComponent.test(component)) {
      fail(
        component === "" ? `repository "${path}" has an empty path component` : `"${component}" is not a valid repository path component`,
        "repository path components are lowercase letters and digits, separated by one . or _, two _, or dashes",
      );
    }
  }
  if (registry === dockerHubRegistry && !path.includes("/")) path = officialPrefix + path;
  if (registry.length + 1 + path.length > maxNameLength) fail(`the name is longer than ${maxNameLength} characters`);

  if (tag === undefined && digest === undefined) tag = defaultTag;
  return {
    registry,
    repository: path,
    ...(tag === undefined ? {} : { tag }),
    ...(digest === undefined ? {} : { digest }),
    canonical: formatReference({ registry, repository: path, tag, digest }),
  };
}

/**
 * Docker's domain split: the part before the first "/" is a registry only
 * if it looks like a host (a dot, a port, `localhost`, or capitals, which
 * no repository may contain).
 */
function splitRegistry(name: string): { registry: string; remainder: string } {
  const slash = name.indexOf("/");
  let registry = dockerHubRegistry;
  let remainder = name;
  if (slash !== -1) {
    const first = name.slice(0, slash);
    if (/[.:]/.test(first) || first === "localhost" || first.toLowerCase() !== first) {
      registry = first;
      remainder = name.slice(slash + 1);
    }
  }
  if (registry === legacyDockerHub) registry = dockerHubRegistry;
  return { registry, remainder };
}

/** "host/repo[:tag][@digest]". */
export function formatReference(ref: { registry: string; repository: string; tag?: string | undefined; digest?: string | undefined }): string {
  return `${ref.registry}/${ref.repository}${ref.tag === undefined ? "" : `:${ref.tag}`}${ref.digest === undefined ? "" : `@${ref.digest}`}`;
}

/** The short form Docker shows: "alpine:3.20" for docker.io/library/alpine:3.20, "user/app" for docker.io/user/app. */
export function familiarReference(ref: ImageReference): string {
  let name = `${ref.registry}/${ref.repository}`;
  if (ref.registry === dockerHubRegistry) {
    name = ref.repository.startsWith(officialPrefix) && ref.repository.indexOf("/", officialPrefix.length) === -1
      ? ref.repository.slice(officialPrefix.length)
      : ref.repository;
  }
  return `${name}${ref.tag === undefined ? "" : `:${ref.tag}`}${ref.digest === undefined ? "" : `@${ref.digest}`}`;
}

/** The same repository, pinned to `digest` (no tag): what a pulled image is recorded as. */
export function withDigest(ref: ImageReference, digest: string): ImageReference {
  return {
    registry: ref.registry,
    repository: ref.repository,
    digest,
    canonical: formatReference({ registry: ref.registry, repository: ref.repository, digest }),
  };
}
