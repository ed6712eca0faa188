/**
 * skiff serve's pure parts: where it listens, how errors map to HTTP and
 * back, the token file, the OpenAPI document against the app's own routes,
 * and bad input refused with codes by the app in process (no VM needed:
 * every case is refused before the library is called).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, chmodSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import { afterAll, describe, expect, it } from "vitest";
import { Skiff, SkiffError, errorCodes, type ErrorCode } from "../../src/index.js";
import { fromErrorBody, httpStatusOf, toErrorBody } from "../../src/api/errors.js";
import { parseServerUrl } from "../../src/api/transport.js";
import { createApp } from "../../src/server/app.js";
import { startServer } from "../../src/server/serve.js";
import { SkiffHttpClient } from "../../src/api/client.js";
import { listenUrl, parseListen } from "../../src/server/listen.js";
import { checkBearer, serverToken } from "../../src/server/token.js";
import { tailStart } from "../../src/engine/logs.js";
import { toRunArgs } from "../../src/server/routes/vms.js";
import { runResultSchema, runVmSchema } from "../../src/api/schemas.js";

const home = mkdtempSync(join(tmpdir(), "serve-unit-"));
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe("listen addresses", () => {
  it.each([
    [undefined, { kind: "unix", path: join(home, "skiff.sock") }],
    ["unix:/run/skiff/api.sock", { kind: "unix", path: "/run/skiff/api.sock" }],
    ["7070", { kind: "tcp", host: "127.0.0.1", port: 7070 }],
    [":7070", { kind: "tcp", host: "127.0.0.1", port: 7070 }],
    ["0.0.0.0:7443", { kind: "tcp", host: "0.0.0.0", port: 7443 }],
    ["localhost:0", { kind: "tcp", host: "localhost", port: 0 }],
    ["[::1]:7070", { kind: "tcp", host: "::1", port: 7070 }],
  ])("%s", (text, want) => {
    expect(parseListen(text, home)).toEqual(want);
  });

  it.each(["unix:", "host:", "host:99999", "::1:80", "[nope]:80", "bad host:80", "host:port", `unix:/${"x".repeat(120)}`])("refuses %s", (text) => {
    expect(() => parseListen(text, home)).toThrow(expect.objectContaining({ code: "ERR_SKIFF_USAGE", place: "listen" }));
  });

  it("names the address as clients write it, and the client reads it back", () => {
    expect(listenUrl({ kind: "tcp", host: "::1", port: 80 }, true)).toBe("https://[::1]:80");
    expect(parseServerUrl("https://[::1]:80")).toEqual({ kind: "https", host: "::1", port: 80 });
    expect(parseServerUrl(listenUrl({ kind: "unix", path: "/tmp/s.sock" }, false))).toEqual({ kind: "unix", socketPath: "/tmp/s.sock" });
    expect(() => parseServerUrl("ftp://x")).toThrow(expect.objectContaining({ code: "ERR_SKIFF_USAGE" }));
  });
});

describe("errors on the wire", () => {
  it.each([
    ["ERR_SKIFF_USAGE", 400],
    ["ERR_SKIFF_BAD_MEMORY", 400],
    ["ERR_SKIFF_UNAUTHORIZED", 401],
    ["ERR_SKIFF_TOO_LARGE", 413],
    ["ERR_SKIFF_VM_NOT_FOUND", 404],
    ["ERR_SKIFF_NAME_IN_USE", 409],
    ["ERR_SKIFF_VM_NOT_RUNNING", 409],
    ["ERR_SKIFF_QEMU_MISSING", 500],
    ["ERR_SKIFF_BOOT_FAILED", 502],
    ["ERR_SKIFF_TIMEOUT", 504],
    ["ERR_SKIFF_LOCKED", 503],
    ["ERR_SKIFF_INTERNAL", 500],
  ] as [ErrorCode, number][])("%s is HTTP %i", (code, status) => {
    expect(httpStatusOf(code)).toBe(status);
  });

  it("every code has an error status", () => {
    for (const code of Object.keys(errorCodes) as ErrorCode[]) expect(httpStatusOf(code)).toBeGreaterThanOrEqual(400);
  });

  it("a SkiffError comes back as the same SkiffError", () => {
    const err = new SkiffError("ERR_SKIFF_BAD_MEMORY", "invalid memory size", { hint: "give 256m", place: "memory", details: { got: "lots" } });
    const back = fromErrorBody(JSON.parse(JSON.stringify(toErrorBody(err))), 400);
    expect(back).toBeInstanceOf(SkiffError);
    expect({ code: back.code, message: back.message, hint: back.hint, place: back.place, details: back.details, exit: back.exitCode }).toEqual({
      code: "ERR_SKIFF_BAD_MEMORY",
      message: "invalid memory size",
      hint: "give 256m",
      place: "memory",
      details: { got: "lots" },
      exit: 2,
    });
  });

  it("anything else is internal: a bug's message, or a body that is not a skiff error", () => {
    expect(toErrorBody(new TypeError("x is undefined"))).toMatchObject({ code: "ERR_SKIFF_INTERNAL", message: "x is undefined" });
    expect(fromErrorBody("<html>bad gateway</html>", 502)).toMatchObject({ code: "ERR_SKIFF_INTERNAL", message: expect.stringContaining("HTTP 502") });
    expect(fromErrorBody({ code: "ERR_NOT_OURS", message: "m" }, 500).code).toBe("ERR_SKIFF_INTERNAL");
  });
});

describe("the token", () => {
  it("is made once in a 0600 file and reused; SKIFF_TOKEN wins", async () => {
    const dir = join(home, "tok");
    const first = await serverToken(dir, {});
    expect(first).toMatchObject({ source: "file", created: true, path: join(dir, "serve-token") });
    expect(first.token.length).toBeGreaterThanOrEqual(40);
    expect(statSync(first.path!).mode & 0o777).toBe(0o600);
    expect(await serverToken(dir, {})).toMatchObject({ token: first.token, created: false });
    expect(await serverToken(dir, { SKIFF_TOKEN: "from-env" })).toMatchObject({ token: "from-env", source: "env" });
  });

  it("a token file others can read is refused", async () => {
    const dir = join(home, "tok-open");
    await serverToken(dir, {});
    chmodSync(join(dir, "serve-token"), 0o644);
    await expect(serverToken(dir, {})).rejects.toMatchObject({ code: "ERR_SKIFF_UNSAFE_HOME" });
    writeFileSync(join(dir, "serve-token"), "\n", { mode: 0o600 });
    chmodSync(join(dir, "serve-token"), 0o600);
    await expect(serverToken(dir, {})).rejects.toMatchObject({ code: "ERR_SKIFF_STATE_CORRUPT" });
  });

  it("only the right bearer token passes", () => {
    expect(checkBearer("Bearer s3cret", "s3cret")).toBeUndefined();
    expect(checkBearer("bearer s3cret", "s3cret")).toBeUndefined();
    for (const header of [undefined, "", "Bearer", "Bearer s3cre", "Bearer s3cretX", "Basic s3cret", "s3cret"]) {
      expect(checkBearer(header, "s3cret")?.code).toBe("ERR_SKIFF_UNAUTHORIZED");
    }
  });
});

describe("the app", () => {
  const skiff = new Skiff({ home: join(home, "skiff") });
  const app = createApp({ skiff, authorize: (h) => checkBearer(h, "tok"), bodyLimitBytes: 1024 });
  const auth = { authorization: "Bearer tok" };
  const post = (path: string, body: string, headers: Record<string, string> = {}) =>
    app.request(path, { method: "POST", body, headers: { ...auth, "content-type": "application/json", ...headers } });

  it("documents every route it serves in its OpenAPI 3.1 document", async () => {
    const doc = (await (await app.request("/openapi.json", { headers: auth })).json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toBe("3.1.0");
    const served = app.routes.filter((r) => r.method !== "ALL" && r.path !== "/openapi.json").map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, "{$1}")}`);
    expect(served.length).toBeGreaterThan(30);
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    expect(new Set(served)).toEqual(new Set(documented));
  });

  it("serves an OpenAPI document that validates against the OpenAPI 3.1 schema", async () => {
    const doc = (await (await app.request("/openapi.json", { headers: auth })).json()) as object;
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    // The validator is no yes-man: the same document with a route's responses broken fails.
    const broken = { ...doc, paths: { ...(doc as { paths: object }).paths, "/broken": { get: { responses: 5 } } } };
    expect((await new Validator().validate(broken)).valid).toBe(false);
  });

  it("refuses requests without the token, or with another one", async () => {
    for (const headers of [{}, { authorization: "Bearer nope" }]) {
      const res = await app.request("/vms", { headers });
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ code: "ERR_SKIFF_UNAUTHORIZED" });
    }
  });

  it.each([
    ["malformed JSON", "{bad", {}, 400, { code: "ERR_SKIFF_USAGE", message: "malformed JSON in the body" }],
    ["an unknown field", '{"image":"base","memroy":"1g"}', {}, 400, { code: "ERR_SKIFF_USAGE", field: "memroy" }],
    ["a wrong type", '{"image":"base","cpus":"two"}', {}, 400, { code: "ERR_SKIFF_USAGE", field: "cpus" }],
    ["a huge body", JSON.stringify({ image: "x".repeat(4096) }), {}, 413, { code: "ERR_SKIFF_TOO_LARGE" }],
    ["another content type", "image=base", { "content-type": "text/plain" }, 400, { code: "ERR_SKIFF_USAGE" }],
  ])("refuses %s with a code", async (_what, body, headers, status, want) => {
    const res = await post("/vms", body, headers);
    expect(res.status).toBe(status);
    expect(await res.json()).toMatchObject(want);
  });

  it.each([
    ["an unknown field", '{"image":"base","argv":["true"],"remove":true}', { field: "remove" }],
    ["argv that is not a list of strings", '{"image":"base","argv":"uname -r"}', { field: "argv" }],
    ["neither an image nor a snapshot", '{"argv":["true"]}', { field: "image" }],
    ["both an image and a snapshot", '{"image":"base","from":"snap"}', { field: "from" }],
  ])("refuses a run with %s before anything is made", async (_what, body, want) => {
    const res = await post("/vms/run", body);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: "ERR_SKIFF_USAGE", ...want });
  });

  // The library names the option field (no CLI flag): what the body called it.
  it.each([
    ["/vms", '{"image":"base","name":"no spaces"}', { code: "ERR_SKIFF_BAD_NAME", field: "name" }],
    ["/vms", '{"image":"base","memory":"1q"}', { code: "ERR_SKIFF_BAD_MEMORY", field: "memory" }],
    ["/networks", '{"name":"n1","masquerade":true}', { code: "ERR_SKIFF_USAGE", field: "masquerade", message: "masquerade, internal and a bridge name are for the bridge driver" }],
    ["/volumes", '{"name":"v1","sizeBytes":1}', { code: "ERR_SKIFF_USAGE", field: "sizeBytes" }],
  ])("POST %s %s: the library's error names the body's field", async (path, body, want) => {
    const res = await post(path, body);
    expect(res.status).toBe(400);
    const got = (await res.json()) as { field?: string; message: string; hint?: string };
    expect(got).toMatchObject(want);
    expect(`${got.message} ${got.hint ?? ""}`).not.toMatch(/(^|\s)--?[a-z]/);
  });

  it.each([
    ["no timeoutMs", "{}"],
    ["a negative one", '{"timeoutMs":-1}'],
    ["a fraction", '{"timeoutMs":1.5}'],
  ])("refuses a new timeout with %s", async (_what, body) => {
    const res = await post("/vms/web/timeout", body);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: "ERR_SKIFF_USAGE", field: "timeoutMs" });
  });

  it("answers an unknown route, and a WebSocket route without the upgrade, with a code", async () => {
    const missing = await app.request("/nope", { headers: auth });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: "ERR_SKIFF_USAGE" });
    const ws = await app.request("/vms/web/exec", { headers: auth });
    expect(ws.status).toBe(426);
  });
});

describe("a run body", () => {
  it("is Skiff.run's options: argv the image's command, rm autoRemove", () => {
    expect(runVmSchema.parse({ image: "base", argv: ["uname"], rm: true, memory: "128m" })).toEqual({ image: "base", argv: ["uname"], rm: true, memory: "128m" });
    expect(toRunArgs({ image: "base", argv: ["uname", "-r"], rm: true, memory: "128m", network: { mode: "none" } })).toEqual([
      { image: "base", command: ["uname", "-r"], autoRemove: true, memory: "128m", network: { mode: "none" } },
      {},
    ]);
    expect(toRunArgs({ image: "base", detach: true, cold: true })).toEqual([{ image: "base", autoRemove: false }, { detach: true, cold: true }]);
  });

  it("without a network, gets the host's default user NIC: restricted under SKIFF_USERNET_RESTRICT=1, as the CLI's", () => {
    const before = process.env.SKIFF_USERNET_RESTRICT;
    try {
      process.env.SKIFF_USERNET_RESTRICT = "1";
      expect(toRunArgs({ image: "base", argv: ["true"] })[0].network).toEqual({ mode: "user", restrict: true, forwards: [] });
      expect(toRunArgs({ image: "base", argv: ["true"], network: { mode: "none" } })[0].network).toEqual({ mode: "none" });
      delete process.env.SKIFF_USERNET_RESTRICT;
      expect(toRunArgs({ image: "base", argv: ["true"] })[0].network).toBeUndefined();
    } finally {
      if (before === undefined) delete process.env.SKIFF_USERNET_RESTRICT;
      else process.env.SKIFF_USERNET_RESTRICT = before;
    }
  });

  it("with from: the snapshot's VM, argv in place of its command", () => {
    expect(toRunArgs({ from: "warm", argv: ["true"], name: "w1", autoRemove: true })).toEqual([
      { image: "base", name: "w1", autoRemove: true },
      { from: "warm", argv: ["true"] },
    ]);
  });

  it("is strict, and its result is documented", () => {
    expect(runVmSchema.safeParse({ image: "base", tty: true }).success).toBe(false);
    expect(runVmSchema.safeParse({ image: "base", detach: "yes" }).success).toBe(false);
    expect(runResultSchema.parse({ vm: { id: "1", name: "a", image: "base", state: "removed", cpus: 1, memoryMiB: 128, hostname: "a", createdAt: "t", ports: [], interfaces: [], env: {}, command: [], autoRemove: true, consoleLog: "" }, code: 0, stdout: "x\n", stderr: "" })).toMatchObject({ code: 0, stdout: "x\n" });
  });
});

it("log tails start at the right line", () => {
  const text = Buffer.from("a\nb\nc\n");
  expect(text.subarray(tailStart(text, 2)).toString()).toBe("b\nc\n");
  expect(text.subarray(tailStart(text, 0)).toString()).toBe("");
  expect(text.subarray(tailStart(text, 9)).toString()).toBe("a\nb\nc\n");
});

describe("the server on loopback (no VM)", () => {
  const skiff = new Skiff({ home: join(home, "srv") });

  it("serves HTTPS to a client that trusts its certificate, with the token, and errors come back as SkiffErrors", async () => {
    const dir = join(home, "tls");
    execFileSync("mkdir", ["-p", dir]);
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], { stdio: "ignore" });
    const cert = readFileSync(join(dir, "cert.pem"));
    const server = await startServer({ skiff, listen: { kind: "tcp", host: "127.0.0.1", port: 0 }, token: "t0k", tls: { cert, key: readFileSync(join(dir, "key.pem")) } });
    try {
      expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const client = new SkiffHttpClient({ url: server.url, token: "t0k", ca: cert });
      expect(await client.list({ all: true })).toEqual([]);
      await expect(client.inspect("nobody")).rejects.toMatchObject({ name: "SkiffError", code: "ERR_SKIFF_VM_NOT_FOUND", place: "nobody", exitCode: 3 });
      await expect(new SkiffHttpClient({ url: server.url, ca: cert }).list()).rejects.toMatchObject({ code: "ERR_SKIFF_UNAUTHORIZED" });
      await expect(client.startExec("nobody", { argv: ["true"] })).rejects.toMatchObject({ code: "ERR_SKIFF_VM_NOT_FOUND" });
      // A failed connect is not kept: asked again, the same answer.
      for (let i = 0; i < 2; i++) await expect(client.exec("nobody", ["true"])).rejects.toMatchObject({ code: "ERR_SKIFF_VM_NOT_FOUND" });
      await expect(client.setTimeout("nobody", 1_000)).rejects.toMatchObject({ code: "ERR_SKIFF_VM_NOT_FOUND" });
    } finally {
      await server.close();
    }
  });

  it("refuses to take over a unix socket another server answers on, and takes over a stale one", async () => {
    const path = join(home, "s.sock");
    const first = await startServer({ skiff, listen: { kind: "unix", path } });
    try {
      expect(statSync(path).mode & 0o777).toBe(0o600);
      await expect(startServer({ skiff, listen: { kind: "unix", path } })).rejects.toMatchObject({ code: "ERR_SKIFF_PORT_IN_USE" });
      expect(await new SkiffHttpClient({ url: first.url }).listVolumes()).toEqual([]);
    } finally {
      await first.close();
    }
    writeFileSync(path, "");
    const second = await startServer({ skiff, listen: { kind: "unix", path } });
    await second.close();
  });
});

describe("clients node refuses before the app", () => {
  const skiff = new Skiff({ home: join(home, "slow") });

  /** Send `data` raw and read what the server answers until it closes. */
  function raw(port: number, data: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const sock = connect(port, "127.0.0.1", () => sock.write(data));
      let got = "";
      sock.on("data", (d) => (got += d.toString()));
      sock.on("close", () => resolve(got));
      sock.on("error", reject);
    });
  }

  it("a slow client gets a coded 408 while others are served; huge headers a coded 431", async () => {
    const server = await startServer({ skiff, listen: { kind: "tcp", host: "127.0.0.1", port: 0 }, token: "t", headersTimeoutMs: 500 });
    try {
      const port = Number(new URL(server.url).port);
      const slow = raw(port, "GET /vms HTTP/1.1\r\nHost: x\r\n");
      expect((await fetch(`${server.url}/vms`, { headers: { authorization: "Bearer t" } })).status).toBe(200);
      const answer = await slow;
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
      expect(JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4))).toMatchObject({ code: "ERR_SKIFF_TIMEOUT" });
      const huge = await raw(port, `GET /vms HTTP/1.1\r\nHost: x\r\nX-Big: ${"y".repeat(20_000)}\r\n\r\n`);
      expect(huge).toMatch(/^HTTP\/1\.1 431 /);
      expect(huge).toContain("ERR_SKIFF_TOO_LARGE");
      expect(await raw(port, "NOT HTTP AT ALL\r\n\r\n")).toContain("ERR_SKIFF_USAGE");
    } finally {
      await server.close();
    }
  });
});
