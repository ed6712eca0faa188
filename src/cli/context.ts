/**
 * What every command gets: the engine (made on first use, with progress
 * wired to the terminal) and the global flags.
 */
import { Skiff } from "../engine/skiff.js";
import { printError, progressReporter, type GlobalFlags } from "./output.js";
import { pullReporter } from "./pull-progress.js";
import { insecureRegistriesEnv, loadSettings, registryMirrorsEnv } from "./settings.js";

export interface CliContext {
  flags: GlobalFlags;
  skiff(): Skiff;
  reportError(err: unknown): void;
  /** Exit code the command chose (e.g. the guest command's). */
  exitCode: number;
}

export function makeContext(flags: GlobalFlags): CliContext {
  let engine: Skiff | undefined;
  return {
    flags,
    exitCode: 0,
    skiff() {
      if (engine === undefined) {
        // Pulls read insecure registries and mirrors from the environment; the settings file adds its own there.
        const settings = loadSettings();
        const insecure = insecureRegistriesEnv(settings);
        if (insecure !== undefined) process.env.SKIFF_INSECURE_REGISTRIES = insecure;
        const mirrors = registryMirrorsEnv(settings);
        if (mirrors !== undefined) process.env.SKIFF_REGISTRY_MIRRORS = mirrors;
        engine = new Skiff();
        const report = progressReporter(flags);
        if (report !== undefined) engine.on("progress", report);
        // An implicit pull on run/create shows its progress like `docker run` does.
        if (!flags.json) engine.on("pull", pullReporter());
      }
      return engine;
    },
    reportError(err) {
      printError(err, flags);
    },
  };
}
