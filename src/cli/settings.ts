/**
 * The user's settings file, `$XDG_CONFIG_HOME/skiff/config.yml` (default
 * ~/.config/skiff/config.yml): defaults for `run` and `create` that flags
 * override, and registries to speak plain HTTP to. Read when a command
 * needs it, so a broken file stops only those commands, with its
 * file:line:column, and `skiff settings show` can still say what is wrong.
 */
import { readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { errnoOf, SkiffError } from "../pure.js";
import type { UserSettings } from "./settings-schema.js";

export type { UserSettings } from "./settings-schema.js";

/** Where the file is: XDG says a relative XDG_CONFIG_HOME is invalid and must be ignored. */
export function settingsPath(env: NodeJS.ProcessEnv = process.env, userHome = homedir()): string {
  const xdg = env.XDG_CONFIG_HOME;
  return join(xdg && xdg.startsWith("/") ? xdg : join(userHome, ".config"), "skiff", "config.yml");
}

/** The user's settings; none when the file does not exist (then its schema is never loaded). */
export async function loadSettings(path = settingsPath()): Promise<UserSettings> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if (errnoOf(err) === "ENOENT" || errnoOf(err) === "ENOTDIR") return {};
    // A HOME that is not this user's (setpriv, sudo -u without -H): its files are not this user's settings.
    if (errnoOf(err) === "EACCES" && !visible(path)) return {};
    throw new SkiffError("ERR_SKIFF_CONFIG", `cannot read ${path}: ${errnoOf(err) ?? String(err)}`, { place: path, cause: err });
  }
  const { parseSettings } = await import("./settings-schema.js");
  return parseSettings(text, path);
}

/** Whether this user can see that `path` exists (search permission on every directory above it). */
function visible(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** What `skiff settings init` writes: every setting, commented out, with its meaning. */
export const settingsTemplate = `# skiff user settings (skiff settings show prints what is in effect).
# Flags given on the command line win over these.

# Memory of VMs made by run and create without --memory (MiB, or 512m, 1g).
# memory: 512m

# vCPUs without --cpus.
# cpus: 2

# --network when none is given: user, none, or networks from \`skiff network ls\`.
# network: user

# Docker Hub mirrors (Docker's registry-mirrors), tried in order before Docker
# Hub; one that is down or lacks the image is passed over. http:// ones are
# spoken to in plain HTTP.
# registry-mirrors:
#   - https://mirror.gcr.io

# Registries spoken to over plain HTTP (loopback ones always are).
# insecure-registries:
#   - registry.lan:5000
`;

/** `--memory`, `--cpus` and `--network` from the settings where the command line gave none. */
export function withSettings<F extends { memory?: string; cpus?: string; network: string[] }>(flags: F, settings: UserSettings): F {
  return {
    ...flags,
    ...(flags.memory === undefined && settings.memory !== undefined ? { memory: String(settings.memory) } : {}),
    ...(flags.cpus === undefined && settings.cpus !== undefined ? { cpus: String(settings.cpus) } : {}),
    ...(flags.network.length === 0 && settings.network !== undefined ? { network: settings.network } : {}),
  };
}

/** The settings' registry mirrors after SKIFF_REGISTRY_MIRRORS's, which every pull reads (image/registry/pull.ts). */
export function registryMirrorsEnv(settings: UserSettings, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const extra = settings["registry-mirrors"] ?? [];
  if (extra.length === 0) return env.SKIFF_REGISTRY_MIRRORS;
  return [env.SKIFF_REGISTRY_MIRRORS, ...extra].filter((s) => s !== undefined && s !== "").join(",");
}

/**
 * The settings' insecure registries joined to SKIFF_INSECURE_REGISTRIES,
 * which every registry connection reads (image/registry/transport.ts).
 */
export function insecureRegistriesEnv(settings: UserSettings, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const extra = settings["insecure-registries"] ?? [];
  if (extra.length === 0) return env.SKIFF_INSECURE_REGISTRIES;
  return [env.SKIFF_INSECURE_REGISTRIES, ...extra].filter((s) => s !== undefined && s !== "").join(",");
}
