/**
 * Registry credentials at rest. skiff keeps its own file,
 * `<SKIFF_HOME>/auth.json`, in Docker's config format (so a user can copy
 * entries either way), and also reads Docker's `config.json`
 * (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`), so `docker
 * login` done once works for skiff too. skiff's file wins.
 *
 * Credential helpers (`credsStore`, `credHelpers`) and identity tokens are
 * not consulted: entries that only name a helper are skipped.
 */
import { homedir } from "node:os";
import { join } from "node:path";
import { SkiffError } from "../../errors.js";
import { readJsonIfExists, writeJsonAtomic } from "../../store/atomic.js";
import { withLock } from "../../store/lock.js";
import { skiffHome } from "../../store/paths.js";
import { dockerHubRegistry } from "./reference.js";

export interface Credentials {
  username: string;
  password: string;
  /** Which file they came from, for error messages. */
  source: string;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
}

export interface AuthFile {
  auths?: Record<string, AuthEntry>;
  [key: string]: unknown;
}

export interface CredentialOptions {
  /** skiff home (default: the resolved SKIFF_HOME). */
  home?: string;
  env?: NodeJS.ProcessEnv;
  /** For the `~/.docker` fallback (default: os.homedir()). */
  userHome?: string;
}

/** Docker Hub has had many names in config files over the years. */
const dockerHubKeys = ["docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/"];

export function skiffAuthPath(home: string = skiffHome()): string {
  return join(home, "auth.json");
}

export function dockerConfigPath(opts: Pick<CredentialOptions, "env" | "userHome"> = {}): string {
  const env = opts.env ?? process.env;
  const dir = env.DOCKER_CONFIG ? env.DOCKER_CONFIG : join(opts.userHome ?? homedir(), ".docker");
  return join(dir, "config.json");
}

/** Credentials for `registry` ("docker.io", "host:5000"), skiff's file first, then Docker's. */
export async function lookupCredentials(registry: string, opts: CredentialOptions = {}): Promise<Credentials | undefined> {
  const files = [skiffAuthPath(opts.home ?? skiffHome(opts.env ? { env: opts.env } : {})), dockerConfigPath(opts)];
  for (const path of files) {
    const file = await readAuthFile(path);
    const creds = file && findEntry(file, registry, path);
    if (creds) return creds;
  }
  return undefined;
}

/** The entry for `registry` in one parsed file, matching keys the way Docker does (scheme and path ignored). */
export function findEntry(file: AuthFile, registry: string, source: string): Credentials | undefined {
  const auths = file.auths ?? {};
  const wanted = registry === dockerHubRegistry ? new Set(dockerHubKeys.map(hostOfKey)) : new Set([registry]);
  for (const [key, entry] of Object.entries(auths)) {
    if (!wanted.has(hostOfKey(key)) || typeof entry !== "object" || entry === null) continue;
    const creds = decodeEntry(entry, `${source} (auths["${key}"])`);
    if (creds) return creds;
  }
  return undefined;
}

/** "https://index.docker.io/v1/" → "index.docker.io". */
export function hostOfKey(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, "").replace(/\/.*$/, "");
}

function decodeEntry(entry: AuthEntry, source: string): Credentials | undefined {
  if (typeof entry.auth === "string" && entry.auth !== "") {
    const text = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = text.indexOf(":");
    if (colon <= 0) {
      throw new SkiffError("ERR_SKIFF_AUTH", `credentials in ${source} are not base64 "user:password"`, {
        hint: "log in again with `skiff login HOST` (or fix the entry by hand)",
      });
    }
    return { username: text.slice(0, colon), password: text.slice(colon + 1), source };
  }
  if (typeof entry.username === "string" && typeof entry.password === "string" && entry.username !== "") {
    return { username: entry.username, password: entry.password, source };
  }
  return undefined;
}

async function readAuthFile(path: string): Promise<AuthFile | undefined> {
  const value = await readJsonIfExists<unknown>(path);
  if (value === undefined) return undefined;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new SkiffError("ERR_SKIFF_STATE_CORRUPT", `credentials file is not a JSON object: ${path}`, {
      hint: `fix or remove ${path}`,
      details: { path },
    });
  }
  return value as AuthFile;
}

/** Store credentials for `registry` in skiff's file (mode 0600), replacing any for the same host. */
export async function saveCredentials(registry: string, username: string, password: string, opts: { home?: string } = {}): Promise<string> {
  const home = opts.home ?? skiffHome();
  const path = skiffAuthPath(home);
  await withLock(
    "auth",
    async () => {
      const file = (await readAuthFile(path)) ?? {};
      const auths = { ...file.auths };
      for (const key of Object.keys(auths)) if (hostOfKey(key) === registry) delete auths[key];
      auths[registry] = { auth: Buffer.from(`${username}:${password}`, "utf8").toString("base64") };
      await writeJsonAtomic(path, { ...file, auths }, { mode: 0o600 });
    },
    { home, purpose: `save credentials for ${registry}` },
  );
  return path;
}

/** Forget skiff's credentials for `registry`; true if there were any. */
export async function removeCredentials(registry: string, opts: { home?: string } = {}): Promise<boolean> {
  const home = opts.home ?? skiffHome();
  const path = skiffAuthPath(home);
  return withLock(
    "auth",
    async () => {
      const file = await readAuthFile(path);
      const auths = { ...file?.auths };
      const keys = Object.keys(auths).filter((key) => hostOfKey(key) === registry);
      if (!file || keys.length === 0) return false;
      for (const key of keys) delete auths[key];
      await writeJsonAtomic(path, { ...file, auths }, { mode: 0o600 });
      return true;
    },
    { home, purpose: `remove credentials for ${registry}` },
  );
}
