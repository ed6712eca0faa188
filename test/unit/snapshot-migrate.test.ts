/**
 * saveState against a monitor that speaks QMP and a "QEMU" that connects to
 * skiff's socket to write its stream: the stream is kept even when QEMU's
 * "completed" is read before its connection is seen (a busy host read them
 * in that order), and a migration that never connects is a coded error.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { connect as netConnect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { SkiffError } from "../../src/errors.js";
import { QmpClient } from "../../src/qemu/qmp.js";
import { saveState } from "../../src/snapshot/migrate.js";

let dir: string;
let server: Server | undefined;
let qmp: QmpClient | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "skiff-migrate-"));
});
afterEach(async () => {
  qmp?.close();
  await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** A monitor whose migration is "completed" at once; `connectAfterMs` later (if given) it writes `stream` to the migration socket. */
async function monitor(stream: string, connectAfterMs: number | undefined): Promise<QmpClient> {
  const path = join(dir, "qmp.sock");
  server = createServer((socket) => {
    socket.write(`${JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 } }, capabilities: [] } })}\r\n`);
    let buffer = "";
    socket.on("data", (chunk) => {
      buffer += chunk.toString();
      for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
        const cmd = JSON.parse(buffer.slice(0, nl)) as { execute: string; arguments?: { uri?: string }; id: number };
        buffer = buffer.slice(nl + 1);
        const answer = cmd.execute === "query-migrate" ? { status: "completed", downtime: 3 } : {};
        socket.write(`${JSON.stringify({ return: answer, id: cmd.id })}\r\n`);
        const uri = cmd.arguments?.uri;
        if (cmd.execute === "migrate" && uri !== undefined && connectAfterMs !== undefined) {
          setTimeout(() => netConnect(uri.replace(/^unix:/, "")).end(stream), connectAfterMs);
        }
      }
    });
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server!.listen(path, resolve));
  qmp = await QmpClient.connect(path, { label: "vm1" });
  return qmp;
}

it("keeps the stream of a QEMU whose connection is seen after its \"completed\"", async () => {
  const client = await monitor("device state", 300);
  const file = join(dir, "state");
  const saved = await saveState(client, { socketPath: join(dir, "migrate.sock"), file });
  expect(saved).toEqual({ downtimeMs: 3 });
  expect(readFileSync(file, "utf8")).toBe("device state");
});

it("says so when QEMU reports its state saved and never connects", async () => {
  const client = await monitor("", undefined);
  const err = await saveState(client, { socketPath: join(dir, "migrate.sock"), file: join(dir, "state") }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(SkiffError);
  expect((err as SkiffError).code).toBe("ERR_SKIFF_SNAPSHOT_FAILED");
  expect((err as SkiffError).message).toContain("never connected");
}, 15_000);
