/**
 * The image config blob (OCI image config / Docker container config) read
 * into what `run` honours, plus the platform it was built for and the
 * uncompressed layer digests (diff_ids) the unpacker can check against.
 */
import { SkiffError } from "../../errors.js";
import type { ImageRuntimeConfig, Platform } from "../oci/types.js";

export interface ParsedImageConfig {
  runtime: ImageRuntimeConfig;
  /** Undefined when the config does not say (some hand-made images). */
  platform: Platform | undefined;
  diffIds: string[];
}

interface RawConfig {
  os?: unknown;
  architecture?: unknown;
  variant?: unknown;
  config?: {
    Entrypoint?: unknown;
    Cmd?: unknown;
    Env?: unknown;
    WorkingDir?: unknown;
    User?: unknown;
    ExposedPorts?: unknown;
    Labels?: unknown;
  } | null;
  rootfs?: { diff_ids?: unknown };
}

export function parseImageConfig(bytes: Uint8Array, where: string): ParsedImageConfig {
  let raw: RawConfig;
  try {
    raw = JSON.parse(Buffer.from(bytes).toString("utf8")) as RawConfig;
  } catch (err) {
    throw new SkiffError("ERR_SKIFF_REGISTRY", `image config ${where} is not JSON`, { cause: err, details: { where } });
  }
  if (typeof raw !== "object" || raw === null) {
    throw new SkiffError("ERR_SKIFF_REGISTRY", `image config ${where} is not a JSON object`, { details: { where } });
  }
  const c = raw.config ?? {};
  const runtime: ImageRuntimeConfig = {
    entrypoint: stringList(c.Entrypoint),
    cmd: stringList(c.Cmd),
    env: envRecord(c.Env),
    exposedPorts: typeof c.ExposedPorts === "object" && c.ExposedPorts !== null ? Object.keys(c.ExposedPorts).sort() : [],
    labels: stringRecord(c.Labels),
  };
  if (typeof c.WorkingDir === "string" && c.WorkingDir !== "") runtime.workingDir = c.WorkingDir;
  if (typeof c.User === "string" && c.User !== "") runtime.user = c.User;
  const platform: Platform | undefined =
    typeof raw.os === "string" && raw.os !== "" && typeof raw.architecture === "string" && raw.architecture !== ""
      ? { os: raw.os, architecture: raw.architecture, ...(typeof raw.variant === "string" && raw.variant !== "" ? { variant: raw.variant } : {}) }
      : undefined;
  const diffIds = Array.isArray(raw.rootfs?.diff_ids) ? raw.rootfs.diff_ids.filter((d): d is string => typeof d === "string") : [];
  return { runtime, platform, diffIds };
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

/** ["K=V", …] → {K: V}; a bare "K" is an empty value, and a later K wins, as in Docker. */
function envRecord(value: unknown): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of stringList(value)) {
    const eq = entry.indexOf("=");
    if (eq === 0) continue;
    if (eq === -1) env[entry] = "";
    else env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

function stringRecord(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof value !== "object" || value === null) return out;
  for (const [k, v] of Object.entries(value)) if (typeof v === "string") out[k] = v;
  return out;
}
