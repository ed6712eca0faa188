/**
 * A real OCI registry on loopback for tests: Debian's `docker-registry`
 * (CNCF distribution 2.8) on 127.0.0.1 with a free port and its own
 * storage, optionally behind basic auth (an htpasswd file, bcrypt) or
 * bearer-token auth (a token service in this process that checks basic
 * credentials and signs ES256 JWTs with a key whose self-signed cert is the
 * registry's rootcertbundle). Images go in with skopeo from an OCI layout.
 *
 * Every process and server started here ends in `stop()`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createPrivateKey, randomBytes, sign, X509Certificate, type KeyObject } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProcessRunner } from "../../src/process/runner.js";
import type { BuiltLayout } from "./oci-layout.js";

export type RegistryAuth = "none" | "basic" | "token";

export interface TestRegistry {
  /** "127.0.0.1:PORT": the registry part of an image reference. */
  host: string;
  url: string;
  auth: RegistryAuth;
  user: string;
  password: string;
  /** The token service, with auth "token". */
  tokenServer?: TokenServer;
  /** What the registry printed (for a failing test's report). */
  log(): string;
  stop(): Promise<void>;
}

export interface TokenServer {
  url: string;
  /** Every token request: scopes asked, who asked (undefined: anonymous), and whether it was granted. */
  requests: Array<{ scopes: string[]; account: string | undefined; granted: boolean }>;
}

const runner = new ProcessRunner();

export async function startRegistry(opts: { auth?: RegistryAuth } = {}): Promise<TestRegistry> {
  const auth = opts.auth ?? "none";
  const work = await mkdtemp(join(tmpdir(), "skiff-registry-"));
  const user = "skiff";
  const password = randomBytes(9).toString("base64url");
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  let token: { server: Server; info: TokenServer } | undefined;
  let authYaml = "";
  try {
    if (auth === "basic") {
      const { stdout } = await runner.run("htpasswd", ["-Bbn", user, password], { check: true, debianPackage: "apache2-utils" });
      await writeFile(join(work, "htpasswd"), stdout);
      authYaml = `auth:\n  htpasswd:\n    realm: skiff-test\n    path: ${join(work, "htpasswd")}\n`;
    } else if (auth === "token") {
      const keyPath = join(work, "token.key");
      const certPath = join(work, "token.crt");
      await runner.run(
        "openssl",
        ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
          "-subj", "/CN=skiff-test-token", "-keyout", keyPath, "-out", certPath],
        { check: true, debianPackage: "openssl" },
      );
      const key = createPrivateKey(await readFile(keyPath));
      const cert = new X509Certificate(await readFile(certPath));
      token = await startTokenServer({ key, cert, user, password, service: "skiff-test-registry", issuer: "skiff-test-issuer" });
      authYaml = [
        "auth:",
        "  token:",
        `    realm: ${token.info.url}`,
        "    service: skiff-test-registry",
        "    issuer: skiff-test-issuer",
        `    rootcertbundle: ${certPath}`,
        "",
      ].join("\n");
    }
    const config = [
      "version: 0.1",
      "log:",
      "  level: warn",
      "  accesslog:",
      "    disabled: true",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${join(work, "data")}`,
      "  delete:",
      "    enabled: true",
      "http:",
      `  addr: ${host}`,
      `  secret: ${randomBytes(16).toString("hex")}`,
      authYaml,
    ].join("\n");
    await writeFile(join(work, "config.yml"), config);
  } catch (err) {
    await closeServer(token?.server);
    await rm(work, { recursive: true, force: true });
    throw err;
  }

  let output = "";
  const child = spawn("/usr/bin/docker-registry", ["serve", join(work, "config.yml")], { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    await stopChild(child, exited);
    await closeServer(token?.server);
    await rm(work, { recursive: true, force: true });
  };
  try {
    await waitReady(`http://${host}/v2/`, child, () => output);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    host,
    url: `http://${host}`,
    auth,
    user,
    password,
    ...(token ? { tokenServer: token.info } : {}),
    log: () => output,
    stop,
  };
}

/**
 * Push an OCI layout (all platforms) as `name:tag`. As OCI, digests are
 * unchanged; `format: "docker"` has skopeo convert it to Docker's media
 * types (manifest list v2, schema 2), which gives new manifest digests.
 */
export async function pushLayout(
  registry: TestRegistry,
  layout: BuiltLayout,
  name: string,
  opts: { tag?: string; format?: "oci" | "docker" } = {},
): Promise<string> {
  const ref = `${registry.host}/${name}:${opts.tag ?? layout.tag}`;
  await runner.run(
    "skopeo",
    [
      "--insecure-policy",
      "copy",
      "--quiet",
      "--all",
      ...(opts.format === "docker" ? ["--format", "v2s2"] : ["--preserve-digests"]),
      "--dest-tls-verify=false",
      ...(registry.auth === "none" ? [] : ["--dest-creds", `${registry.user}:${registry.password}`]),
      `oci:${layout.dir}:${layout.tag}`,
      `docker://${ref}`,
    ],
    { check: true, timeoutMs: 60_000, debianPackage: "skopeo" },
  );
  return ref;
}

async function startTokenServer(opts: {
  key: KeyObject;
  cert: X509Certificate;
  user: string;
  password: string;
  service: string;
  issuer: string;
}): Promise<{ server: Server; info: TokenServer }> {
  const requests: TokenServer["requests"] = [];
  const x5c = [opts.cert.raw.toString("base64")];
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://token");
    const scopes = url.searchParams.getAll("scope").flatMap((s) => s.split(" ")).filter((s) => s !== "");
    const account = basicUser(req.headers.authorization, opts.user, opts.password);
    if (account === false) {
      requests.push({ scopes, account: undefined, granted: false });
      res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "bad credentials" }] }));
      return;
    }
    // Anonymous callers get a valid token with no access, as Docker Hub does for private repositories.
    const access = account === undefined ? [] : scopes.map(parseScope).filter((a) => a !== undefined);
    requests.push({ scopes, account, granted: access.length > 0 });
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: opts.issuer,
      sub: account ?? "",
      aud: url.searchParams.get("service") ?? opts.service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(12).toString("hex"),
      access,
    };
    const jwt = signJwt({ alg: "ES256", typ: "JWT", x5c }, claims, opts.key);
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token: jwt, access_token: jwt, expires_in: 300, issued_at: new Date(now * 1000).toISOString() }));
  };
  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return { server, info: { url: `http://127.0.0.1:${port}/token`, requests } };
}

/** The user if the Basic credentials are right, undefined without any, false if wrong. */
function basicUser(header: string | undefined, user: string, password: string): string | undefined | false {
  if (!header) return undefined;
  const [scheme, value] = header.split(" ");
  if (scheme?.toLowerCase() !== "basic" || !value) return false;
  return Buffer.from(value, "base64").toString("utf8") === `${user}:${password}` ? user : false;
}

/** "repository:name:pull,push" → an access claim entry. */
function parseScope(scope: string): { type: string; name: string; actions: string[] } | undefined {
  const first = scope.indexOf(":");
  const last = scope.lastIndexOf(":");
  if (first === -1 || last === first) return undefined;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(",") };
}

function signJwt(header: object, claims: object, key: KeyObject): string {
  const encode = (v: object) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const input = `${encode(header)}.${encode(claims)}`;
  // JWS wants ES256 signatures as raw r||s, not DER.
  const signature = sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" });
  return `${input}.${signature.toString("base64url")}`;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await closeServer(server);
  return port;
}

async function waitReady(url: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`docker-registry exited early:\n${output()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      if (res.status === 200 || res.status === 401) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry did not answer on ${url} within 15 s:\n${output()}`);
}

async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

export function closeServer(server: Server | undefined): Promise<void> {
  if (!server?.listening) return Promise.resolve();
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}
