/**
 * What every command gets: a SkiffClient (the engine in this process, or
 * with `--host`/SKIFF_HOST a `skiff serve` elsewhere: the same calls, the
 * same output), the engine itself for what only runs on this host, and the
 * global flags. Both are imported only here and only when asked for:
 * `--version`, `--help` and completion scripts never load them
 * (docs/benchmarks.md, "CLI start").
 */
import { SkiffError } from "../pure.js";
import type { Skiff, SkiffClient } from "../index.js";
import type { SkiffHttpClient } from "../api/client.js";
import { printError, progressReporter, type GlobalFlags } from "./output.js";
import { pullReporter } from "./pull-progress.js";
import { pathOf } from "./flag-places.js";
import { insecureRegistriesEnv, loadSettings, registryMirrorsEnv } from "./settings.js";

export interface CliContext {
  flags: GlobalFlags;
  /** skiff, here or on the server `--host`/SKIFF_HOST names. */
  client(): Promise<SkiffClient>;
  /** The engine in this process; refused (ERR_SKIFF_LOCAL_ONLY) for a command run with a remote host. */
  skiff(): Promise<Skiff>;
  /** The server the commands go to, if any. */
  remoteHost(): string | undefined;
  /** The server's client, for what only the API offers beyond SkiffClient (projects); undefined when local. */
  remote(): Promise<SkiffHttpClient | undefined>;
  reportError(err: unknown): void;
  /** Exit code the command chose (e.g. the guest command's). */
  exitCode: number;
}

export function makeContext(flags: GlobalFlags): CliContext {
  let engine: Promise<Skiff> | undefined;
  let remote: Promise<SkiffHttpClient> | undefined;
  const host = () => flags.host ?? (process.env.SKIFF_HOST === "" ? undefined : process.env.SKIFF_HOST);
  const ctx: CliContext = {
    flags,
    exitCode: 0,
    remoteHost: host,
    skiff() {
      const at = host();
      if (at !== undefined) {
        const verb = flags.command === undefined ? "this command" : pathOf(flags.command);
        return Promise.reject(
          new SkiffError("ERR_SKIFF_LOCAL_ONLY", `\`skiff ${verb}\` works on the VMs' own host only, not through a server (${at})`, {
            place: flags.host !== undefined ? "--host" : "SKIFF_HOST",
            hint: "run it on the server's host, or without --host and SKIFF_HOST",
          }),
        );
      }
      engine ??= makeEngine(flags);
      return engine;
    },
    client() {
      const at = host();
      if (at === undefined) return ctx.skiff();
      remote ??= makeRemote(at);
      return remote;
    },
    async remote() {
      const at = host();
      if (at === undefined) return undefined;
      remote ??= makeRemote(at);
      return remote;
    },
    reportError(err) {
      printError(err, flags);
    },
  };
  return ctx;
}

async function makeRemote(host: string): Promise<SkiffHttpClient> {
  const [{ SkiffHttpClient }, { serverUrl }] = await Promise.all([import("../api/client.js"), import("../api/transport.js")]);
  const token = process.env.SKIFF_TOKEN;
  return new SkiffHttpClient({ url: serverUrl(host), ...(token === undefined || token === "" ? {} : { token }) });
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
