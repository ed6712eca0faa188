/**
 * `skiff image bootstrap`: a Debian base image made on the host with
 * mmdebstrap (`--variant=minbase`: the Essential packages and apt, about
 * 120 MiB), imported as the local image `debian` — the default base of
 * layers. With `mirror`, packages come from there: a Debian mirror URL, or
 * a flat repository (a Packages index at its top: `deb URL ./`). A mirror
 * on loopback is the user's own (the tests serve an unsigned one) and is
 * trusted without signatures.
 */
import { randomBytes } from "node:crypto";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { defaultRunner, type Runner } from "../process/runner.js";
import { planAptMirror } from "../layer/mirror.js";
import { aptSourceLine } from "../layer/package-manager.js";
import { importImage, type ImportResult } from "./import/import.js";
import type { BuildEvent } from "./unpack/build.js";
import { defaultSuite, mmdebstrapArgs } from "./bootstrap-args.js";

export interface BootstrapOptions {
  cacheDir: string;
  runner?: Runner;
  /** Debian suite (default bookworm). */
  suite?: string;
  /** Mirror URL or flat repository (default: mmdebstrap's, the Debian archive). */
  mirror?: string;
  /** Local image name (default "debian"). */
  name?: string;
  /** Extra packages. */
  include?: string[];
  onEvent?: (event: BuildEvent) => void;
}

export interface BootstrapResult extends ImportResult {
  suite: string;
  /** Time mmdebstrap took, and the import. */
  bootstrapMs: number;
  importMs: number;
}

export async function bootstrapDebian(opts: BootstrapOptions): Promise<BootstrapResult> {
  const runner = opts.runner ?? defaultRunner;
  const suite = opts.suite ?? defaultSuite;
  let mirror: string | undefined;
  if (opts.mirror !== undefined) {
    const plan = await planAptMirror(opts.mirror, "mirror");
    mirror = plan.flat || plan.trusted ? aptSourceLine(opts.mirror, plan.flat ? "./" : `${suite} main`, plan.trusted) : opts.mirror;
  }
  const tmp = join(opts.cacheDir, "tmp");
  await mkdir(tmp, { recursive: true, mode: 0o700 });
  const target = join(tmp, `bootstrap-${randomBytes(6).toString("hex")}.tar`);
  try {
    const t0 = Date.now();
    await runner.run("mmdebstrap", mmdebstrapArgs({ suite, target, ...(mirror === undefined ? {} : { mirror }), ...(opts.include === undefined ? {} : { include: opts.include }) }), {
      check: true,
      debianPackage: "mmdebstrap",
      timeoutMs: 30 * 60_000,
    });
    const t1 = Date.now();
    const imported = await importImage(target, {
      cacheDir: opts.cacheDir,
      name: opts.name ?? "debian",
      runner,
      ...(opts.onEvent === undefined ? {} : { onEvent: opts.onEvent }),
    });
    return { ...imported, suite, bootstrapMs: t1 - t0, importMs: Date.now() - t1 };
  } finally {
    await rm(target, { force: true });
  }
}
