import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import {
  dockerConfigPath,
  findEntry,
  hostOfKey,
  lookupCredentials,
  removeCredentials,
  saveCredentials,
  skiffAuthPath,
} from "../../src/image/registry/credentials.js";
import { normalizeRegistryHost } from "../../src/image/registry/login.js";
import { makeTempHome } from "./fixtures/tmp-home.js";

const b64 = (s: string) => Buffer.from(s).toString("base64");

let home: string;
let userHome: string;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  const tmp = await makeTempHome("skiff-creds-");
  cleanup = tmp.cleanup;
  home = join(tmp.home, "skiff");
  userHome = join(tmp.home, "user");
  await mkdir(home, { recursive: true });
  await mkdir(join(userHome, ".docker"), { recursive: true });
});
afterEach(() => cleanup());

const env = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({ ...extra });

describe("docker config keys", () => {
  test("scheme and path are ignored, as Docker does", () => {
    expect(hostOfKey("https://index.docker.io/v1/")).toBe("index.docker.io");
    expect(hostOfKey("http://localhost:5000")).toBe("localhost:5000");
    expect(hostOfKey("ghcr.io")).toBe("ghcr.io");
  });

  test("docker.io matches every name Docker Hub has had", () => {
    for (const key of ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"]) {
      expect(findEntry({ auths: { [key]: { auth: b64("u:p") } } }, "docker.io", "f")).toMatchObject({ username: "u", password: "p" });
    }
    expect(findEntry({ auths: { "https://index.docker.io/v1/": { auth: b64("u:p") } } }, "ghcr.io", "f")).toBeUndefined();
  });

  test("auth is base64 user:password (colons allowed in the password); username/password fields also work", () => {
    expect(findEntry({ auths: { h: { auth: b64("u:p:q") } } }, "h", "f")).toMatchObject({ username: "u", password: "p:q" });
    expect(findEntry({ auths: { h: { username: "u2", password: "p2" } } }, "h", "f")).toMatchObject({ username: "u2", password: "p2" });
    expect(findEntry({ auths: { h: {} } }, "h", "f")).toBeUndefined();
    expect(() => findEntry({ auths: { h: { auth: b64("nocolon") } } }, "h", "f")).toThrow(/not base64 "user:password"/);
  });

  test("normalizeRegistryHost accepts what people type after `login`", () => {
    expect(normalizeRegistryHost("https://index.docker.io/v1/")).toBe("docker.io");
    expect(normalizeRegistryHost("registry-1.docker.io")).toBe("docker.io");
    expect(normalizeRegistryHost("http://127.0.0.1:5000/")).toBe("127.0.0.1:5000");
    expect(() => normalizeRegistryHost("")).toThrow(/invalid registry host/);
  });
});

describe("credential lookup", () => {
  test("from ~/.docker/config.json", async () => {
    await writeFile(join(userHome, ".docker", "config.json"), JSON.stringify({ auths: { "host:5000": { auth: b64("d:dp") } } }));
    const creds = await lookupCredentials("host:5000", { home, userHome, env: env() });
    expect(creds).toMatchObject({ username: "d", password: "dp" });
    expect(creds?.source).toContain(join(userHome, ".docker", "config.json"));
  });

  test("DOCKER_CONFIG moves Docker's file", async () => {
    const dir = join(userHome, "elsewhere");
    await mkdir(dir);
    await writeFile(join(dir, "config.json"), JSON.stringify({ auths: { "host:5000": { auth: b64("e:ep") } } }));
    expect(dockerConfigPath({ env: env({ DOCKER_CONFIG: dir }), userHome })).toBe(join(dir, "config.json"));
    expect(await lookupCredentials("host:5000", { home, userHome, env: env({ DOCKER_CONFIG: dir }) })).toMatchObject({ username: "e" });
    expect(await lookupCredentials("host:5000", { home, userHome, env: env() })).toBeUndefined();
  });

  test("skiff's own file wins over Docker's", async () => {
    await writeFile(join(userHome, ".docker", "config.json"), JSON.stringify({ auths: { "host:5000": { auth: b64("d:dp") } } }));
    await saveCredentials("host:5000", "s", "sp", { home });
    expect(await lookupCredentials("host:5000", { home, userHome, env: env() })).toMatchObject({ username: "s", password: "sp" });
    expect(await lookupCredentials("other:1", { home, userHome, env: env() })).toBeUndefined();
  });

  test("entries that only name a credential helper are skipped", async () => {
    await writeFile(join(userHome, ".docker", "config.json"), JSON.stringify({ auths: { "host:5000": {} }, credsStore: "desktop" }));
    expect(await lookupCredentials("host:5000", { home, userHome, env: env() })).toBeUndefined();
  });

  test("a broken file says which file", async () => {
    await writeFile(join(userHome, ".docker", "config.json"), "{nope");
    await expect(lookupCredentials("h", { home, userHome, env: env() })).rejects.toMatchObject({ code: "ERR_SKIFF_STATE_CORRUPT" });
  });
});

describe("skiff's auth file", () => {
  test("saved with mode 0600 in Docker's format, replacing the host's old entry, keeping others", async () => {
    await saveCredentials("docker.io", "a", "1", { home });
    await saveCredentials("h:1", "b", "2", { home });
    await saveCredentials("h:1", "c", "3", { home });
    const path = skiffAuthPath(home);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(path, "utf8"))).toEqual({ auths: { "docker.io": { auth: b64("a:1") }, "h:1": { auth: b64("c:3") } } });
  });

  test("removeCredentials forgets one host", async () => {
    await saveCredentials("h:1", "b", "2", { home });
    expect(await removeCredentials("h:1", { home })).toBe(true);
    expect(await removeCredentials("h:1", { home })).toBe(false);
    expect(JSON.parse(await readFile(skiffAuthPath(home), "utf8"))).toEqual({ auths: {} });
  });
});
