/**
 * `skiff login` / `logout`: check credentials against the registry (GET
 * /v2/ through the challenge flow, so a token service must accept them too)
 * and only then keep them in `<SKIFF_HOME>/auth.json`.
 */
import { SkiffError } from "../../errors.js";
import { skiffHome } from "../../store/paths.js";
import { RegistryClient } from "./client.js";
import { hostOfKey, removeCredentials, saveCredentials } from "./credentials.js";
import { dockerHubRegistry } from "./reference.js";

export interface LoginOptions {
  home?: string;
  env?: NodeJS.ProcessEnv;
  insecureRegistries?: readonly string[];
  signal?: AbortSignal;
  fetch?: typeof fetch;
}

/** "https://index.docker.io/v1/", "index.docker.io", "docker.io" → "docker.io"; "host:5000/x" → "host:5000". */
export function normalizeRegistryHost(input: string): string {
  const host = hostOfKey(input.trim());
  if (host === "" || /[\s@]/.test(host)) {
    throw new SkiffError("ERR_SKIFF_USAGE", `invalid registry host ${JSON.stringify(input)}`, {
      hint: "give a host, optionally with a port: ghcr.io, registry.example.com:5000",
    });
  }
  return ["index.docker.io", "registry-1.docker.io"].includes(host) ? dockerHubRegistry : host;
}

/**
 * Verify and store credentials. `verified` is false when the registry let
 * us in without asking for any (Docker saves them then too).
 */
export async function login(
  host: string,
  username: string,
  password: string,
  opts: LoginOptions = {},
): Promise<{ registry: string; path: string; verified: boolean }> {
  const registry = normalizeRegistryHost(host);
  if (username === "" || username.includes(":")) {
    throw new SkiffError("ERR_SKIFF_USAGE", "a registry user name must not be empty or contain ':'", { place: registry });
  }
  const client = new RegistryClient({
    registry,
    credentials: { username, password, source: "the given credentials" },
    ...(opts.env === undefined ? {} : { env: opts.env }),
    ...(opts.insecureRegistries ? { insecureRegistries: opts.insecureRegistries } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
  });
  await client.ping();
  const path = await saveCredentials(registry, username, password, { home: opts.home ?? skiffHome(opts.env ? { env: opts.env } : {}) });
  return { registry, path, verified: client.transport.auth.scheme !== undefined };
}

/** Forget skiff's credentials for a registry (Docker's own file is left alone); true if there were any. */
export async function logout(host: string, opts: { home?: string; env?: NodeJS.ProcessEnv } = {}): Promise<boolean> {
  return removeCredentials(normalizeRegistryHost(host), { home: opts.home ?? skiffHome(opts.env ? { env: opts.env } : {}) });
}
