/**
 * `skiff serve` as a user runs it (the built CLI, on 127.0.0.1 with its
 * token file), driven through real HTTP (fetch), a real WebSocket client
 * (ws, through SkiffHttpClient) and server-sent events, on ONE VM (base,
 * 256m, started from its boot snapshot) that every test shares: lifecycle
 * routes, exec with stdin/stdout/stderr/exit code, a PTY with resize,
 * signals, files, logs; the MCP tools at /mcp under a policy (and one
 * more VM, for POST /vms/run); tokens refused; bad input refused with codes while
 * the server keeps serving; the CLI working beside it; a clean shutdown.
 */
import type { ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import WebSocket from "ws";
import { SkiffHttpClient, type ServerEvent } from "../../src/api/client.js";
import { Harness } from "./harness.js";
import { serveChild } from "./serve-child.js";

/** Start `skiff serve` and wait for its "listening on URL" line. */
const serve = (h: Harness, args: string[]) => serveChild(h, args);

function stopServer(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    child.once("exit", (code) => resolve(code));
    child.kill("SIGTERM");
  });
}

function collector(): { stream: Writable; text: () => string } {
  const chunks: Buffer[] = [];
  return {
    stream: new Writable({
      write(chunk: Buffer, _e, done) {
        chunks.push(chunk);
        done();
      },
    }),
    text: () => Buffer.concat(chunks).toString(),
  };
}

async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  for (const end = Date.now() + timeoutMs; !check(); ) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("skiff serve on 127.0.0.1", () => {
  const h = new Harness();
  const local = mkdtempSync(join(tmpdir(), "skiff-serve-"));
  let server: { child: ChildProcess; url: string };
  let token: string;
  let client: SkiffHttpClient;
  const api = (path: string, init: RequestInit = {}, auth = true) =>
    fetch(`${server.url}${path}`, { ...init, headers: { ...(auth ? { authorization: `Bearer ${token}` } : {}), ...(init.headers as Record<string, string>) } });
  const postJson = (path: string, body: string) => api(path, { method: "POST", body, headers: { "content-type": "application/json" } });

  beforeAll(async () => {
    // The policy is the MCP server's at /mcp; the REST routes do not read it.
    writeFileSync(join(local, "policy.yml"), "deny_root: true\n");
    server = await serve(h, ["--listen", "127.0.0.1:0", "--policy", join(local, "policy.yml")]);
    token = readFileSync(join(h.home, "serve-token"), "utf8").trim();
    expect(statSync(join(h.home, "serve-token")).mode & 0o777).toBe(0o600);
    expect((await h.ok(["serve", "--print-token"])).trim()).toBe(token);
    client = new SkiffHttpClient({ url: server.url, token });
  });
  afterAll(async () => {
    await h.run(["rm", "-f", "api", "api-run"]);
    if (process.env.SKIFF_KEEP_LOGS) console.log(h.consoleLogs());
    await h.cleanup();
    rmSync(local, { recursive: true, force: true });
  });

  it("refuses requests without the token or with a wrong one, HTTP and WebSocket alike", async () => {
    for (const headers of [{}, { authorization: "Bearer wrong" }]) {
      const res = await fetch(`${server.url}/vms`, { headers });
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ code: "ERR_SKIFF_UNAUTHORIZED" });
    }
    const wsStatus = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`${server.url.replace("http", "ws")}/vms/api/exec`, { headers: { authorization: "Bearer wrong" } });
      ws.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.once("open", () => reject(new Error("opened without the token")));
      ws.once("error", () => undefined);
    });
    expect(wsStatus).toBe(401);
    await expect(new SkiffHttpClient({ url: server.url, token: "wrong" }).list()).rejects.toMatchObject({ code: "ERR_SKIFF_UNAUTHORIZED", exitCode: 2 });
  });

  it("creates and starts a VM through REST, the start's progress on the event stream, the CLI working beside", async () => {
    const events: ServerEvent[] = [];
    const sub = await client.events((e) => events.push(e), { vm: "api" });
    const created = await postJson("/vms", JSON.stringify({ image: "base", name: "api", memory: "256m", network: { mode: "none" } }));
    expect(created.status).toBe(201);
    expect(await created.json()).toMatchObject({ name: "api", state: "created", memoryMiB: 256 });
    const started = await api("/vms/api/start", { method: "POST" });
    expect(started.status).toBe(200);
    expect(await started.json()).toMatchObject({ name: "api", state: "running" });
    await until("the ready event", () => events.some((e) => e.event === "progress" && (e.data as { phase: string }).phase === "ready"));
    sub.close();
    await sub.closed;
    const phases = events.filter((e) => e.event === "progress").map((e) => (e.data as { vm: string; phase: string }).phase);
    expect(phases).toContain("booting");
    expect(phases.at(-1)).toBe("ready");
    // No lock held by the idle server: the CLI sees the VM and can act beside it.
    expect(await h.ok(["ps"])).toMatch(/\bapi\b/);
    expect((await client.list()).map((v) => v.name)).toEqual(["api"]);
    expect(await client.inspect("api")).toMatchObject({ state: "running" });
    await expect(client.inspect("nope")).rejects.toMatchObject({ code: "ERR_SKIFF_VM_NOT_FOUND", exitCode: 3 });
  });

  it("execs over a WebSocket: stdin in, stdout and stderr apart, the exit code", async () => {
    const out = collector();
    const err = collector();
    const stdin = new PassThrough();
    const running = await client.startExec("api", { argv: ["sh", "-c", "cat; echo to-stderr >&2; exit 5"] }, { stdin, stdout: out.stream, stderr: err.stream });
    stdin.end("fed on stdin\n");
    expect(await running.done).toEqual({ code: 5 });
    expect(out.text()).toBe("fed on stdin\n");
    expect(err.text()).toBe("to-stderr\n");
    // And the one-shot REST form.
    const res = await postJson("/vms/api/exec", JSON.stringify({ argv: ["sh", "-c", "tr a-z A-Z; exit 2"], input: "shout" }));
    expect(await res.json()).toEqual({ code: 2, stdout: "SHOUT", stderr: "" });
  });

  it("gives a PTY that follows resizes, and passes signals", async () => {
    const out = collector();
    const stdin = new PassThrough();
    const pty = await client.startExec("api", { argv: ["sh", "-c", "stty size; read x; stty size"], tty: { cols: 100, rows: 30 } }, { stdin, stdout: out.stream });
    await until("the first size", () => out.text().includes("30 100"));
    pty.setWindow({ cols: 120, rows: 40 });
    // The resize is its own frame; give the guest's PTY a moment before the next read wakes the shell.
    await new Promise((r) => setTimeout(r, 300));
    stdin.write("\n");
    expect(await pty.done).toEqual({ code: 0 });
    expect(out.text()).toMatch(/30 100\r?\n[\s\S]*40 120/);

    const sleeper = collector();
    const running = await client.startExec("api", { argv: ["sh", "-c", "echo ready; exec sleep 100"] }, { stdout: sleeper.stream });
    await until("the sleeper", () => sleeper.text().includes("ready"));
    await running.sendSignal("TERM");
    expect(await running.done).toEqual({ code: 143, signal: "TERM" });
  });

  it("serves the MCP tools at /mcp over Streamable HTTP, behind the token, under --policy", async () => {
    const mcpUrl = new URL(`${server.url}/mcp`);
    const refused = new Client({ name: "skiff-test", version: "1" });
    await expect(refused.connect(new StreamableHTTPClientTransport(mcpUrl))).rejects.toMatchObject({ code: 401, message: expect.stringMatching(/ERR_SKIFF_UNAUTHORIZED/) });
    const mcp = new Client({ name: "skiff-test", version: "1" });
    const transport = new StreamableHTTPClientTransport(mcpUrl, { requestInit: { headers: { authorization: `Bearer ${token}` } } });
    await mcp.connect(transport);
    const session = transport.sessionId;
    expect(session).toMatch(/^[0-9a-f-]{36}$/);
    try {
      const tools = (await mcp.listTools()).tools.map((t) => t.name);
      expect(tools).toEqual(expect.arrayContaining(["vm_helo", "vm_exec", "vm_cp"]));
      const ran = await mcp.callTool({ name: "vm_exec", arguments: { vm: "api", argv: ["id", "-u"], user: "nobody" } });
      expect(ran.isError, JSON.stringify(ran.content)).not.toBe(true);
      expect(ran.structuredContent).toMatchObject({ code: 0, stdout: "65534\n" });
      // deny_root: a command as root (the default user) is refused, and nothing runs.
      const root = await mcp.callTool({ name: "vm_exec", arguments: { vm: "api", argv: ["touch", "/tmp/as-root"] } });
      expect(root.isError).toBe(true);
      expect(JSON.stringify(root.content)).toMatch(/deny_root/);
      expect((await client.exec("api", ["test", "-e", "/tmp/as-root"])).code).toBe(1);
    } finally {
      await transport.terminateSession();
      await mcp.close();
    }
    // The session ended with the client's DELETE: its id is not known any more.
    const gone = await api("/mcp", { method: "POST", body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }), headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-session-id": session! } });
    expect(gone.status).toBe(404);
  });

  it("runs a command in a new VM with POST /vms/run, rm removing it afterwards", async () => {
    const res = await postJson(
      "/vms/run",
      JSON.stringify({ image: "base", name: "api-run", memory: "256m", network: { mode: "none" }, argv: ["sh", "-c", "echo out; echo err >&2; exit 3"], rm: true }),
    );
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ vm: { name: "api-run", autoRemove: true }, code: 3, stdout: "out\n", stderr: "err\n" });
    await expect(client.inspect("api-run")).rejects.toMatchObject({ code: "ERR_SKIFF_VM_NOT_FOUND" });
    // The client's run: refused before anything boots (the name is taken), as Skiff.run would refuse it.
    await expect(client.run({ image: "base", name: "api", command: ["true"] })).rejects.toMatchObject({ code: "ERR_SKIFF_NAME_IN_USE" });
  });

  it("puts and gets files, single and as tar", async () => {
    const put = await api("/vms/api/files?path=/tmp/one.txt&mode=0640", { method: "PUT", body: "one file\n" });
    expect(put.status).toBe(200);
    const got = await api("/vms/api/files?path=/tmp/one.txt");
    expect(await got.text()).toBe("one file\n");
    expect((await client.exec("api", ["stat", "-c", "%a", "/tmp/one.txt"])).stdout.trim()).toBe("640");
    await client.writeFile("api", "/tmp/two.bin", Buffer.from([0, 1, 2, 255]));
    expect([...(await client.readFile("api", "/tmp/two.bin"))]).toEqual([0, 1, 2, 255]);
    const missing = await api("/vms/api/files?path=/tmp/nope");
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: "ERR_SKIFF_FILE_NOT_FOUND", field: "path" });

    // A tar in: made by the host's tar, unpacked into an existing guest directory.
    writeFileSync(join(local, "a.txt"), "in a tar\n");
    const tar = execFileSync("tar", ["-C", local, "-c", "a.txt"]);
    await client.putArchive("api", "/tmp", tar);
    expect((await client.exec("api", ["cat", "/tmp/a.txt"])).stdout).toBe("in a tar\n");
    // A tar out, named by the path's base name.
    const out = await api("/vms/api/files?path=/tmp/a.txt&format=tar");
    expect(out.headers.get("content-type")).toBe("application/x-tar");
    writeFileSync(join(local, "out.tar"), Buffer.from(await out.arrayBuffer()));
    expect(execFileSync("tar", ["-xOf", join(local, "out.tar"), "a.txt"]).toString()).toBe("in a tar\n");
  });

  it("shows the console log", async () => {
    const res = await api("/vms/api/logs?lines=50");
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    expect((await res.text()).length).toBeGreaterThan(0);
  });

  it("attaches to the serial console over a WebSocket", async () => {
    const con = await client.console("api");
    let seen = "";
    con.output.on("data", (d: Buffer) => (seen += d.toString()));
    // The guest's shell on the serial line may still be drawing its prompt: ask again until it answers.
    const ask = setInterval(() => con.input.write("echo con$((40+2))\r"), 1_500);
    con.input.write("\r");
    try {
      await until("the console's answer", () => seen.includes("con42"));
    } finally {
      clearInterval(ask);
      con.close();
    }
  });

  it("snapshots the VM, and lists volumes, networks and images", async () => {
    const snap = await postJson("/vms/api/snapshots", JSON.stringify({ name: "api-snap" }));
    expect(snap.status).toBe(201);
    expect(await snap.json()).toMatchObject({ name: "api-snap", source: "api", kind: "user" });
    expect((await client.listSnapshots("api")).map((s) => s.name)).toContain("api-snap");
    expect(await client.removeSnapshot("api-snap")).toMatchObject({ name: "api-snap" });
    await expect(client.inspectSnapshot("api-snap")).rejects.toMatchObject({ code: "ERR_SKIFF_SNAPSHOT_NOT_FOUND" });

    expect(await client.createVolume({ name: "api-vol", sizeBytes: 16 << 20 })).toMatchObject({ name: "api-vol", sizeBytes: 16 << 20 });
    expect((await client.listVolumes()).map((v) => v.name)).toEqual(["api-vol"]);
    await client.removeVolume("api-vol");
    expect(await client.createNetwork({ name: "api-net", driver: "private" })).toMatchObject({ name: "api-net", driver: "private" });
    expect((await client.inspectNetwork("api-net")).members).toEqual([]);
    await client.removeNetwork("api-net");
    await expect(client.inspectNetwork("api-net")).rejects.toMatchObject({ code: "ERR_SKIFF_NETWORK_NOT_FOUND" });
    expect((await client.listImages()).some((i) => i.name === "base")).toBe(true);
  });

  it("refuses malformed JSON, unknown fields, huge bodies and waits out slow clients, and keeps serving", async () => {
    // A slow client: headers never finished. It holds one socket, not the server.
    const slow = connect(Number(new URL(server.url).port), "127.0.0.1");
    await new Promise((r) => slow.once("connect", r));
    slow.write("POST /vms HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n");
    const cases: [string, number, Record<string, unknown>][] = [
      ["{not json", 400, { code: "ERR_SKIFF_USAGE", message: "malformed JSON in the body" }],
      ['{"image":"base","memroy":"1g"}', 400, { code: "ERR_SKIFF_USAGE", field: "memroy" }],
      [JSON.stringify({ image: "base", labels: { big: "x".repeat(2 << 20) } }), 413, { code: "ERR_SKIFF_TOO_LARGE" }],
      // Refused before it is read, and read to the end: the client gets its 413, not a broken pipe while still sending.
      [JSON.stringify({ image: "base", labels: { big: "x".repeat(16 << 20) } }), 413, { code: "ERR_SKIFF_TOO_LARGE" }],
      [JSON.stringify({ image: "base", labels: { big: "x".repeat(16 << 20) } }), 413, { code: "ERR_SKIFF_TOO_LARGE" }],
    ];
    for (const [body, status, want] of cases) {
      const res = await postJson("/vms", body);
      expect(res.status).toBe(status);
      expect(await res.json()).toMatchObject(want);
    }
    const startBad = await postJson("/vms/api/start", '{"wait":true}');
    expect(await startBad.json()).toMatchObject({ code: "ERR_SKIFF_USAGE", field: "wait" });
    expect((await api("/vms")).status).toBe(200);
    slow.destroy();
    const doc = (await (await api("/openapi.json")).json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/vms", "/vms/{name}/exec", "/vms/{name}/files", "/events", "/snapshots"]));
  });

  it("pauses, unpauses, stops, refuses to kill a stopped VM, removes it", async () => {
    expect(await client.pause("api")).toMatchObject({ state: "paused" });
    await expect(client.exec("api", ["true"])).rejects.toMatchObject({ code: "ERR_SKIFF_VM_PAUSED" });
    expect(await client.unpause("api")).toMatchObject({ state: "running" });
    expect((await client.stop("api")).state).not.toBe("running");
    const kill = await api("/vms/api/kill", { method: "POST" });
    expect(kill.status).toBe(409);
    expect(await kill.json()).toMatchObject({ code: "ERR_SKIFF_VM_NOT_RUNNING" });
    expect((await api("/vms/api", { method: "DELETE" })).status).toBe(200);
    expect((await api("/vms/api")).status).toBe(404);
  });

  it("ends cleanly on SIGTERM, an MCP session open; on its unix socket (0600) it needs no token and removes the socket at the end", async () => {
    const mcp = new Client({ name: "skiff-test", version: "1" });
    await mcp.connect(new StreamableHTTPClientTransport(new URL(`${server.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    expect((await mcp.callTool({ name: "helo", arguments: {} })).isError).not.toBe(true);
    expect(await stopServer(server.child)).toBe(0);
    await mcp.close();
    await expect(fetch(`${server.url}/vms`)).rejects.toThrow();
    const unix = await serve(h, []);
    const socket = join(h.home, "skiff.sock");
    expect(unix.url).toBe(`unix:${socket}`);
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    expect(await new SkiffHttpClient({ url: unix.url }).list({ all: true })).toEqual([]);
    expect(await stopServer(unix.child)).toBe(0);
    expect(existsSync(socket)).toBe(false);
  });
});
