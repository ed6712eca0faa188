// The registry transport's own HTTP (src/image/registry/http-fetch.ts),
// against servers on loopback: what it reads of a response is what fetch
// would give, it follows no redirect, and it loads no undici (fetch,
// Headers and Response cost a pull ~58 ms to load). HTTPS in a node of its
// own that trusts a certificate made here (NODE_EXTRA_CA_CERTS is read at
// start).
import { execFileSync, spawnSync } from "node:child_process";
import { createServer, type Server } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bodyChunks, httpFetch } from "../../src/image/registry/http-fetch.js";

const dist = join(import.meta.dirname, "..", "..", "dist", "image", "registry", "http-fetch.js");
const init = (method = "GET") => ({ method, headers: { "user-agent": "t", "x-Two": "2" }, redirect: "manual" as const, signal: new AbortController().signal });

let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url === "/moved") {
      res.writeHead(307, { location: "/elsewhere" }).end("go");
      return;
    }
    if (req.url === "/stall") {
      res.writeHead(200);
      res.write("a");
      return;
    }
    res.setHeader("www-authenticate", ["Bearer realm=a", "Basic realm=b"]);
    res.setHeader("docker-content-digest", "sha256:abc");
    res.end(req.url === "/big" ? Buffer.alloc(3 << 20, 7) : `${req.method} ${req.headers["user-agent"]} ${req.headers["x-two"]} ${req.headers["accept-encoding"] ?? "-"}`);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe("httpFetch", () => {
  it("gives status, headers by any case (repeated ones joined, as fetch does) and the body, once", async () => {
    const r = await httpFetch(new URL(`${base}/x`), init());
    expect([r.status, r.ok, r.url]).toEqual([200, true, `${base}/x`]);
    expect(r.headers.get("Docker-Content-Digest")).toBe("sha256:abc");
    expect(r.headers.get("www-authenticate")).toBe("Bearer realm=a, Basic realm=b");
    expect(r.headers.get("nope")).toBeNull();
    expect(r.bodyUsed).toBe(false);
    // No compression asked for: a blob's digest is of its bytes as stored.
    expect(await r.text()).toBe("GET t 2 -");
    expect(r.bodyUsed).toBe(true);
    await expect(r.text()).rejects.toThrow("read already");
  });

  it("reads a big body as the node stream's chunks, and HEAD has none", async () => {
    let n = 0;
    for await (const chunk of bodyChunks(await httpFetch(new URL(`${base}/big`), init())).chunks) n += chunk.byteLength;
    expect(n).toBe(3 << 20);
    expect((await httpFetch(new URL(`${base}/x`), init("HEAD"))).body).toBeNull();
  });

  it("leaves redirects to the transport", async () => {
    const r = await httpFetch(new URL(`${base}/moved`), init());
    expect([r.status, r.ok, r.headers.get("location")]).toEqual([307, false, "/elsewhere"]);
    await r.body!.cancel();
  });

  it("ends a body read when the signal fires", async () => {
    const controller = new AbortController();
    const r = await httpFetch(new URL(`${base}/stall`), { ...init(), signal: controller.signal });
    const read = r.text();
    controller.abort(new Error("stalled"));
    await expect(read).rejects.toThrow();
  });

  it("refuses a scheme other than http and https", async () => {
    await expect(httpFetch(new URL("ftp://127.0.0.1/x"), init())).rejects.toThrow("unsupported protocol");
  });

  it("speaks HTTPS to a server whose certificate is trusted, without loading undici", () => {
    const dir = mkdtempSync(join(tmpdir(), "skiff-https-"));
    try {
      execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"], { stdio: "ignore" });
      const script = `
        import { createServer } from "node:https";
        import { readFileSync } from "node:fs";
        import { builtinModules } from "node:module";
        const { httpFetch } = await import(${JSON.stringify(dist)});
        const server = createServer({ key: readFileSync(${JSON.stringify(join(dir, "key.pem"))}), cert: readFileSync(${JSON.stringify(join(dir, "cert.pem"))}) }, (req, res) => res.end("over tls " + req.headers.host));
        await new Promise((r) => server.listen(0, "127.0.0.1", r));
        const r = await httpFetch(new URL("https://localhost:" + server.address().port + "/v2/"), { method: "GET", headers: {}, redirect: "manual", signal: new AbortController().signal });
        console.log(r.status, await r.text());
        // undici is Node's own: loaded, it shows as the globals' getters having run (the fetch global stays a getter until then).
        console.log("undici", typeof Object.getOwnPropertyDescriptor(globalThis, "Headers").get === "function" ? "not loaded" : "loaded");
        server.close();
        process.exit(0);
      `;
      const out = spawnSync(process.execPath, ["--input-type=module", "-e", script], { env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, "cert.pem") }, encoding: "utf8" });
      expect(out.stderr).toBe("");
      expect(out.stdout).toMatch(/^200 over tls localhost:\d+\nundici not loaded\n$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
