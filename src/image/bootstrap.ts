/**
 * `skiff image bootstrap`: a Debian base image made on the host with
 * mmdebstrap (`--variant=minbase`: the Essential packages and apt, about
 * 120 MiB), imported as the local image `debian` — the default base of
 * layers. With `mirror`, packages come from there: a Debian mirror URL, or
 * a flat repository (a Packages index at its top: `deb URL ./`). A mirror
 * on loopback is the user's own (the tests serve an unsigned one) and is
 * trusted without signatures.
 *
 * The same packages make the same image: mmdebstrap's tarball is the same
 * bytes when SOURCE_DATE_EPOCH is set (every time in it is clamped to that,
 * and it leaves out the logs and caches that hold the time of the run; two
 * runs on the tests' repository gave one sha256), and an import is named by
 * its tarball's digest. So a bootstrap again from an unchanged mirror names
 * the image it made before, and layer builds on it stay cached (they are
 * keyed by the base's digest: every bootstrap used to name a new `debian`,
 * and the test suite built the standard layers again on each run, ~4 min
 * of two cores). The time is the mirror's: its Release's Date, when it
 * published what it holds (the reproducible-builds convention), unless the
 * caller sets SOURCE_DATE_EPOCH. A mirror whose Release cannot be read
 * (offline, no such file) gets a bootstrap at the time of the run, as before.
 */
import { randomBytes } from "node:crypto";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { defaultRunner, type Runner } from "../process/runner.js";
import { planAptMirror } from "../layer/mirror.js";
import { aptSourceLine } from "../layer/package-manager.js";
import { importImage, type ImportResult } from "./import/import.js";
import type { BuildEvent } from "./unpack/build.js";
import { defaultDebianMirror, defaultSuite, mmdebstrapArgs, releaseDateEpoch, releaseUrls } from "./bootstrap-args.js";

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
  /** The time the image's files carry, in seconds (default: SOURCE_DATE_EPOCH, else the mirror's Release date). */
  sourceDateEpoch?: number;
}

export interface BootstrapResult extends ImportResult {
  suite: string;
  /** The time every file was clamped to, which makes the image reproducible; absent when none was found. */
  sourceDateEpoch?: number;
  /** Time mmdebstrap took, and the import. */
  bootstrapMs: number;
  importMs: number;
}

export async function bootstrapDebian(opts: BootstrapOptions): Promise<BootstrapResult> {
  const runner = opts.runner ?? defaultRunner;
  const suite = opts.suite ?? defaultSuite;
  let mirror: string | undefined;
  let flat = false;
  let sourcesList: string | undefined;
  if (opts.mirror !== undefined) {
    const plan = await planAptMirror(opts.mirror, "mirror");
    flat = plan.flat;
    mirror = plan.flat || plan.trusted ? aptSourceLine(opts.mirror, plan.flat ? "./" : `${suite} main`, plan.trusted) : opts.mirror;
    // A mirror on the host's loopback is nothing inside a guest (127.0.0.1 is the guest itself): the image
    // names Debian's archive instead, as Debian's own images do. Its port, which changes from run to run
    // (the tests' repository), is then not in the image either, and the image stays the same.
    if (plan.guestForward !== undefined) sourcesList = aptSourceLine(defaultDebianMirror, `${suite} main`, false);
  }
  const epoch = opts.sourceDateEpoch ?? envEpoch() ?? (await mirrorReleaseEpoch(opts.mirror ?? defaultDebianMirror, suite, flat));
  const tmp = join(opts.cacheDir, "tmp");
  await mkdir(tmp, { recursive: true, mode: 0o700 });
  const target = join(tmp, `bootstrap-${randomBytes(6).toString("hex")}.tar`);
  try {
    const t0 = Date.now();
    await runner.run("mmdebstrap", mmdebstrapArgs({ suite, target, ...(mirror === undefined ? {} : { mirror }), ...(sourcesList === undefined ? {} : { sourcesList }), ...(opts.include === undefined ? {} : { include: opts.include }) }), {
      check: true,
      debianPackage: "mmdebstrap",
      ...(epoch === undefined ? {} : { env: { ...process.env, SOURCE_DATE_EPOCH: String(epoch) } }),
      timeoutMs: 30 * 60_000,
    });
    const t1 = Date.now();
    const imported = await importImage(target, {
      cacheDir: opts.cacheDir,
      name: opts.name ?? "debian",
      runner,
      ...(opts.onEvent === undefined ? {} : { onEvent: opts.onEvent }),
    });
    return { ...imported, suite, ...(epoch === undefined ? {} : { sourceDateEpoch: epoch }), bootstrapMs: t1 - t0, importMs: Date.now() - t1 };
  } finally {
    await rm(target, { force: true });
  }
}

function envEpoch(): number | undefined {
  const value = process.env.SOURCE_DATE_EPOCH;
  return value !== undefined && /^\d{1,12}$/.test(value) ? Number(value) : undefined;
}

/** A Release file is ~150 KB on Debian's archive; what is longer is not one. */
const maxReleaseBytes = 4 * 1024 * 1024;

/** The Date of the suite's Release on `mirror`; undefined when none can be read within a few seconds. */
async function mirrorReleaseEpoch(mirror: string, suite: string, flat: boolean): Promise<number | undefined> {
  for (const url of releaseUrls(mirror, suite, flat)) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      if (!res.ok || Number(res.headers.get("content-length") ?? 0) > maxReleaseBytes) {
        await res.body?.cancel();
        continue;
      }
      const text = await res.text();
      const epoch = text.length <= maxReleaseBytes ? releaseDateEpoch(text) : undefined;
      if (epoch !== undefined) return epoch;
    } catch {
      // unreachable or cut off: try the next, else bootstrap at the time of the run
    }
  }
  return undefined;
}
