/**
 * What every command gets: the engine (loaded and made on first use, with
 * progress wired to the terminal) and the global flags. The engine is
 * imported only here and only when asked for: `--version`, `--help` and
 * completion scripts never load it (docs/benchmarks.md, "CLI start").
 */
import type { Skiff } from "../index.js";
import { printError, progressReporter, type GlobalFlags } from "./output.js";
import { pullReporter } from "./pull-progress.js";
import { insecureRegistriesEnv, loadSettings, registryMirrorsEnv } from "./settings.js";

export interface CliContext {
  flags: GlobalFlags;
  skiff(): Promise<Skiff>;
  reportError(err: unknown): void;
  /** Exit code the command chose (e.g. the guest command's). */
  exitCode: number;
}

export function makeContext(flags: GlobalFlags): CliContext {
  let engine: Promise<Skiff> | undefined;
  return {
    flags,
    exitCode: 0,
    skiff() {
      engine ??= makeEngine(flags);
      return engine;
    },
    reportError(err) {
      printError(err, flags);
    },
  };
}

async function makeEngine(flags: GlobalFlags): Promise<Skiff> {
  const [{ Skiff }, settings] = await Promise.all([import("../index.js"), loadSettings()]);
  // Pulls read insecure registries and mirrors from the environment; the settings file adds its own there.
  const insecure = insecureRegistriesEnv(settings);
  if (insecure !== undefined) process.env.SKIFF_INSECURE_REGISTRIES = insecure;
  const mirrors = registryMirrorsEnv(settings);
  if (mirrors !== undefined) process.env.SKIFF_REGISTRY_MIRRORS = mirrors;
  const engine = new Skiff();
  const report = progressReporter(flags);
  if (report !== undefined) engine.on("progress", report);
  // An implicit pull on run/create shows its progress like `docker run` does.
  if (!flags.json) engine.on("pull", pullReporter());
  return engine;
}
