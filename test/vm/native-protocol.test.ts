/**
 * skiff's own guest protocol (src/guest/native/, guest/native.c) against a
 * real guest: big streams both ways under flow control, exit statuses and
 * signals SSH could not name, 16 commands at once, SSH on demand beside it,
 * and ≥10,000 malformed frames that neither crash nor wedge the guest.
 */
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough, Readable, Writable } from "node:stream";
import type { Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectAgent, type AgentConnectOptions, type AgentConnection } from "../../src/guest/agent.js";
import { agentHandshake } from "../../src/guest/agent-handshake.js";
import { encodeFrame, FrameDecoder, G, H, maxFrame, u32, window } from "../../src/guest/native/frames.js";
import { tryLock } from "../../src/store/lock.js";
import { Harness } from "./harness.js";

const MB = 1_000_000;

/** A sink that takes its time (one write per tick) and records the most it ever held. */
class SlowSink extends Writable {
  readonly hash = createHash("sha256");
  bytes = 0;
  mostBuffered = 0;
  constructor() {
    super({ highWaterMark: 64 * 1024 });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.mostBuffered = Math.max(this.mostBuffered, this.writableLength);
    this.hash.update(chunk);
    this.bytes += chunk.length;
    setImmediate(done);
  }
}

describe("skiff's guest protocol on a real VM", () => {
  const h = new Harness();
  let opts: AgentConnectOptions;
  let conn: AgentConnection;

  beforeAll(async () => {
    await h.ok(["run", "-d", "--name", "native", "base"]);
    const [id] = readdirSync(join(h.home, "vms"));
    const dir = join(h.home, "vms", id ?? "");
    opts = {
      socketPaths: Array.from({ length: 8 }, (_, i) => join(dir, "run", `agent-${i}.sock`)),
      lockPrefix: `vm-${id}`,
      home: h.home,
      privateKeyPath: join(dir, "id_ed25519"),
      hostPublicKey: readFileSync(join(dir, "ssh_host_ed25519_key.pub"), "utf8"),
      vmName: "native",
    };
    conn = await connectAgent(opts);
  });
  afterAll(async () => {
    await conn?.close();
    if (process.env.SKIFF_KEEP_LOGS) console.log(h.consoleLogs());
    await h.cleanup();
  });

  it("speaks the native protocol to skiff's guest", () => {
    expect(conn.protocol).toBe("native");
  });

  it("carries 100 MB of output intact", async () => {
    const hash = createHash("sha256");
    let bytes = 0;
    const sink = new Writable({
      write(chunk: Buffer, _e, done) {
        hash.update(chunk);
        bytes += chunk.length;
        done();
      },
    });
    const started = performance.now();
    const r = await conn.exec({ argv: ["sh", "-c", `yes 0123456789abcdef | head -c ${100 * MB}`] }, { stdout: sink });
    const seconds = (performance.now() - started) / 1000;
    expect(r.code).toBe(0);
    expect(bytes).toBe(100 * MB);
    // What `yes | head -c` wrote, made on the host (hashing it in the guest too would take as long again under TCG).
    const line = Buffer.from("0123456789abcdef\n");
    const block = Buffer.concat(Array.from({ length: MB / line.length + 1 }, () => line));
    const expected = createHash("sha256");
    for (let left = 100 * MB; left > 0; left -= block.length) expected.update(block.subarray(0, Math.min(left, block.length)));
    expect(hash.digest("hex")).toBe(expected.digest("hex"));
    console.log(`100 MB guest to host: ${seconds.toFixed(1)} s (${(100 / seconds).toFixed(1)} MB/s)`);
  }, 180_000);

  it("holds no more than the window on the host for a reader slower than the guest", async () => {
    const sink = new SlowSink();
    const r = await conn.exec({ argv: ["sh", "-c", `yes 0123456789abcdef | head -c ${10 * MB}`] }, { stdout: sink });
    expect(r.code).toBe(0);
    // exec is done once the guest's EXIT came; the sink may still hold what it was handed (as readFile's below).
    const finished = new Promise((done) => sink.once("finish", done));
    sink.end();
    await finished;
    expect(sink.bytes).toBe(10 * MB);
    // What the guest may send beyond what the sink took is its credit: the host never holds more than that and the sink's own buffer.
    expect(sink.mostBuffered).toBeLessThanOrEqual(window + 64 * 1024);
    console.log(`slow reader: held at most ${sink.mostBuffered} bytes`);
  }, 180_000);

  it("carries 50 MB of stdin intact", async () => {
    const chunk = randomBytes(MB);
    const hash = createHash("sha256");
    for (let i = 0; i < 50; i++) hash.update(chunk);
    const started = performance.now();
    const r = await conn.run(["sha256sum"], { input: Buffer.concat(Array.from({ length: 50 }, () => chunk)) });
    const seconds = (performance.now() - started) / 1000;
    expect(r.code).toBe(0);
    expect(r.stdout.split(" ")[0]).toBe(hash.digest("hex"));
    console.log(`50 MB host to guest: ${seconds.toFixed(1)} s (${(50 / seconds).toFixed(1)} MB/s)`);
  }, 180_000);

  it("streams stdin that arrives slowly, and a command that never reads it ends anyway", async () => {
    const slow = Readable.from(
      (async function* () {
        for (let i = 0; i < 5; i++) {
          yield Buffer.from(`line ${i}\n`);
          await new Promise((done) => setTimeout(done, 50));
        }
      })(),
    );
    const chunks: Buffer[] = [];
    const sink = new Writable({
      write(c: Buffer, _e, done) {
        chunks.push(c);
        done();
      },
    });
    expect(await conn.exec({ argv: ["cat"] }, { stdin: slow, stdout: sink })).toEqual({ code: 0 });
    expect(Buffer.concat(chunks).toString()).toBe("line 0\nline 1\nline 2\nline 3\nline 4\n");
    // 10 MB offered to `true`: it exits without reading, and so does the exec.
    expect((await conn.run(["true"], { input: Buffer.alloc(10 * MB) })).code).toBe(0);
  }, 60_000);

  it("reports exit statuses, and signals by name even where SSH could not (XCPU, SYS)", async () => {
    for (const code of [0, 1, 42, 255]) expect((await conn.run(["sh", "-c", `exit ${code}`])).code).toBe(code);
    for (const [signal, number] of [["XCPU", 24], ["SYS", 31], ["USR1", 10], ["TERM", 15]] as const) {
      const running = await conn.start({ argv: ["sleep", "100"] });
      await new Promise((done) => setTimeout(done, 200));
      await running.sendSignal(number);
      expect(await running.done).toEqual({ code: 128 + number, signal });
    }
    // A signal the command handles: it goes on and says so.
    const out: Buffer[] = [];
    const trapping = await conn.start(
      { argv: ["sh", "-c", "trap 'echo got-usr2; exit 7' USR2; echo ready; while :; do sleep 0.1; done"] },
      { stdout: new Writable({ write: (c: Buffer, _e, done) => (out.push(c), done()) }) },
    );
    for (let i = 0; i < 50 && !Buffer.concat(out).toString().includes("ready"); i++) await new Promise((d) => setTimeout(d, 100));
    await trapping.sendSignal("SIGUSR2");
    expect(await trapping.done).toEqual({ code: 7 });
    expect(Buffer.concat(out).toString()).toBe("ready\ngot-usr2\n");
  }, 60_000);

  it("runs a PTY with a size and TERM, and resizes it", async () => {
    let text = "";
    const stdout = new Writable({
      write(chunk: Buffer, _e, done) {
        text += chunk.toString();
        done();
      },
    });
    const stdin = new PassThrough();
    const running = await conn.start(
      { argv: ["sh", "-c", 'stty size; read x; stty size; echo "$TERM"'], tty: { rows: 33, cols: 101, term: "vt100" } },
      { stdout, stdin },
    );
    for (let i = 0; i < 50 && !text.includes("33 101"); i++) await new Promise((d) => setTimeout(d, 100));
    running.setWindow({ rows: 40, cols: 120 });
    await new Promise((d) => setTimeout(d, 300));
    stdin.write("\r");
    expect(await running.done).toEqual({ code: 0 });
    expect(text.replace(/\r/g, "")).toMatch(/33 101\n[^]*40 120\nvt100\n$/);
    // The end of stdin reaches a command on a PTY as the terminal's EOF character, after what came before it.
    // 300 KB, more than the stdin window: the EOF waits for what is buffered.
    const cat = await conn.run(["sh", "-c", "stty -echo; wc -l"], { tty: true, input: "xxxxxxxxx\n".repeat(30_000), timeoutMs: 60_000 });
    expect(cat.code).toBe(0);
    // (What the terminal echoed before `stty -echo` took effect comes first.)
    expect(cat.stdout.trimEnd()).toMatch(/(^|\D)30000$/);
  }, 90_000);

  it("ends a command whose background process keeps its output open, and leaves that process running", async () => {
    const r = await conn.run(["sh", "-c", "(while :; do echo bg; done) & sleep 1000 & echo $!"], { timeoutMs: 30_000 });
    expect(r.code).toBe(0);
    const pid = /^(\d+)$/m.exec(r.stdout)?.[1];
    expect(pid).toBeDefined();
    expect((await conn.run(["kill", "-0", pid ?? ""])).code).toBe(0);
    await conn.run(["kill", pid ?? ""]);
  }, 60_000);

  it("hangs up a command whose host went away, and the port serves the next host", async () => {
    const other = await connectAgent(opts);
    await other.start({ argv: ["sleep", "1234"] });
    expect((await conn.run(["sh", "-c", "pidof sleep"])).code).toBe(0);
    // The host's end of the port closes as when its process is killed.
    await other.close();
    let left = "";
    for (let i = 0; i < 20; i++) {
      left = (await conn.run(["sh", "-c", "ps -o args | grep '^sleep 1234' || true"])).stdout;
      if (left === "") break;
      await new Promise((d) => setTimeout(d, 250));
    }
    expect(left).toBe("");
    const again = await connectAgent(opts);
    expect((await again.run(["echo", "next"])).stdout).toBe("next\n");
    await again.close();
  }, 60_000);

  it("runs 16 commands at once on the VM's 8 ports", async () => {
    const outputs = await Promise.all(Array.from({ length: 16 }, (_, i) => conn.run(["sh", "-c", `sleep 0.5; echo ${i}`])));
    expect(outputs.map((o) => o.stdout)).toEqual(Array.from({ length: 16 }, (_, i) => `${i}\n`));
    expect(outputs.every((o) => o.code === 0)).toBe(true);
  }, 60_000);

  it("takes a request far beyond SSH's 9000-byte command", async () => {
    const big = "x".repeat(40_000);
    expect((await conn.run(["sh", "-c", 'printf %s "$1" | wc -c', "sh", big])).stdout.trim()).toBe("40000");
  });

  it("opens SSH on demand beside native sessions (SFTP)", async () => {
    const sftp = await conn.sftp();
    const names = await new Promise<string[]>((resolve, reject) =>
      sftp.readdir("/", (err, list) => (err ? reject(err) : resolve(list.map((e) => e.filename)))),
    );
    sftp.end();
    expect(names).toContain("etc");
    expect((await conn.run(["echo", "still-native"])).stdout).toBe("still-native\n");
  });

  it("stats, reads and writes files in the image, resolved with the image as the root", async () => {
    await conn.run(["sh", "-c", "mkdir -p /srv/f && echo hi > /srv/f/a && ln -sf a /srv/f/l && ln -sfn / /srv/f/root && ln -sfn ../../../../.. /srv/f/up"]);
    expect(await conn.stat("/srv/f/a")).toMatchObject({ isFile: true, size: 3, mode: 0o100644, uid: 0 });
    expect(await conn.stat("/srv/f")).toMatchObject({ isDirectory: true });
    expect(await conn.stat("/srv/f/l", { follow: false })).toMatchObject({ isSymlink: true });
    expect(await conn.stat("/srv/f/l")).toMatchObject({ isFile: true, size: 3 });
    expect(await conn.stat("/srv/f/none")).toBeUndefined();
    // The agent's world around the image (skiff-init, its tools) is not reachable through the image's links.
    expect(await conn.stat("/skiff/bin/skiff-init")).toBeUndefined();
    expect(await conn.stat("/srv/f/root/skiff/bin/skiff-init")).toBeUndefined();
    expect(await conn.stat("/srv/f/up/skiff/bin/skiff-init")).toBeUndefined();
    const hostname = new PassThrough();
    const read = collect(hostname);
    await conn.readFile("/srv/f/up/etc/hostname", hostname);
    hostname.end();
    expect((await read).toString()).toBe("native\n");

    const data = randomBytes(20 * MB);
    await conn.writeFile("/srv/f/big", Readable.from([data.subarray(0, 7 * MB), data.subarray(7 * MB)]), 0o600);
    const inGuest = await conn.run(["sh", "-c", "sha256sum /srv/f/big | cut -d' ' -f1; stat -c %a /srv/f/big"]);
    expect(inGuest.stdout).toBe(`${createHash("sha256").update(data).digest("hex")}\n600\n`);
    const back = new SlowSink();
    await conn.readFile("/srv/f/big", back);
    // readFile is done once the guest's EXIT came; the sink may still hold up to the window it was granted.
    const finished = new Promise((done) => back.once("finish", done));
    back.end();
    await finished;
    expect(back.bytes).toBe(20 * MB);
    expect(back.hash.digest("hex")).toBe(createHash("sha256").update(data).digest("hex"));
    expect(back.mostBuffered).toBeLessThanOrEqual(window + 64 * 1024);

    await expect(conn.readFile("/srv/f", new PassThrough())).rejects.toMatchObject({ code: "ERR_SKIFF_AGENT", message: expect.stringContaining("not a regular file") });
    await expect(conn.readFile("/dev/null", new PassThrough())).rejects.toMatchObject({ message: expect.stringContaining("not a regular file") });
    await expect(conn.writeFile("/srv/none/x", Readable.from([Buffer.from("x")]))).rejects.toMatchObject({ message: expect.stringContaining("No such file") });
    await expect(conn.stat("relative")).rejects.toMatchObject({ code: "ERR_SKIFF_BAD_PATH", place: "path" });
    // Files and commands share the ports: a command runs right after.
    expect((await conn.run(["cat", "/srv/f/a"])).stdout).toBe("hi\n");
  });

  it("survives 10,000 malformed frames: errors answered, the port serves the next session, commands run", async () => {
    // The port may still be held by an extra session of `conn` (idle ones end after 10 s).
    let lock = await tryLock(`${opts.lockPrefix}-agent-7`, { home: h.home, purpose: "fuzz" });
    for (let i = 0; i < 40 && lock === undefined; i++) {
      await new Promise((d) => setTimeout(d, 500));
      lock = await tryLock(`${opts.lockPrefix}-agent-7`, { home: h.home, purpose: "fuzz" });
    }
    expect(lock).toBeDefined();
    const relaysBefore = (await conn.run(["sh", "-c", "pidof skiff-relay | wc -w"])).stdout.trim();
    let sent = 0;
    let errors = 0;
    let sessions = 0;
    const port = opts.socketPaths[7] ?? "";
    try {
      while (sent < 10_000) {
        const greeting = await agentHandshake(port, { budgetMs: 5_000, native: true });
        expect(greeting.kind).toBe("ready");
        if (greeting.kind !== "ready") return;
        sessions++;
        const socket = greeting.socket;
        const got = collectFrames(socket);
        // A batch of frames with sound lengths and bad contents, then (every few sessions) one with a length out of bounds.
        const batch: Buffer[] = [];
        for (let i = 0; i < 500; i++, sent++) batch.push(malformed(sent));
        const bad = sessions % 3 === 0;
        if (bad) {
          const head = Buffer.alloc(5);
          head.writeUInt32BE(maxFrame + 1 + (sent % 1000), 0);
          head[4] = H.stdin;
          batch.push(head, randomBytes(64));
          sent++;
        }
        // A ping last: its answer means the guest took everything before it.
        if (!bad) batch.push(encodeFrame(H.ping, Buffer.from("end")));
        socket.write(Buffer.concat(batch));
        // A length out of bounds ends the guest's session (the framing is lost): it says so last.
        const ended = (f: { type: number; payload: Buffer }) => f.type === G.error && f.payload.toString().includes("session ended");
        const frames = await got.until((f) => (bad ? ended(f) : f.type === G.pong), 30_000);
        errors += frames.filter((f) => f.type === G.error).length;
        expect(frames.every((f) => f.type === G.error || f.type === G.pong || f.type === G.hello)).toBe(true);
        socket.destroy();
      }
    } finally {
      await lock?.release();
    }
    console.log(`fuzz: ${sent} malformed frames in ${sessions} sessions, ${errors} ERROR answers`);
    expect(errors).toBeGreaterThan(5_000);
    // Every relay still runs, and every port serves commands.
    expect((await conn.run(["sh", "-c", "pidof skiff-relay | wc -w"])).stdout.trim()).toBe(relaysBefore);
    const fresh = await connectAgent(opts);
    try {
      const all = await Promise.all(Array.from({ length: 8 }, (_, i) => fresh.run(["echo", String(i)])));
      expect(all.map((r) => r.stdout)).toEqual(Array.from({ length: 8 }, (_, i) => `${i}\n`));
    } finally {
      await fresh.close();
    }
  }, 300_000);
});

/** A frame with a sound length and contents the guest must refuse or ignore (never EXEC: that would run things). */
function malformed(i: number): Buffer {
  switch (i % 8) {
    case 0:
      return encodeFrame(0x0b + (i % 0x70), randomBytes(i % 100)); // unknown type (after PUT, before the guest's)
    case 1:
      return encodeFrame(H.signal, randomBytes(i % 7 === 4 ? 5 : i % 7)); // wrong size
    case 2:
      return encodeFrame(H.resize, randomBytes(3));
    case 3:
      return encodeFrame(H.credit, u32(window + 1 + i)); // no command runs: ignored
    case 4:
      return encodeFrame(H.stdin, randomBytes(i % 2000)); // stdin with no command: ignored
    case 5:
      return encodeFrame(0x80 + (i % 8), randomBytes(16)); // a guest's frame type, from the host
    case 6:
      return encodeFrame(H.credit, randomBytes(i % 9 === 4 ? 3 : 9));
    default:
      // File operations with payloads the guest must refuse: never a path it would open.
      if (i % 16 === 15) {
        if (i % 3 === 0) return encodeFrame(H.stat, Buffer.concat([Buffer.from([i & 1, 0x41]), randomBytes(i % 50)])); // no leading '/'
        if (i % 3 === 1) return encodeFrame(H.get, Buffer.from(`etc/relative-${i}`));
        return encodeFrame(H.put, randomBytes(i % 5)); // no room for a mode and a path
      }
      return encodeFrame(H.stdinEof, randomBytes(i % 5));
  }
}

type Seen = { type: number; payload: Buffer };

/** Everything `stream` gives until it ends. */
async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

function collectFrames(socket: Socket): { until: (stop: (f: Seen) => boolean, ms: number) => Promise<Seen[]>; closed: () => boolean } {
  const decoder = new FrameDecoder();
  const frames: Seen[] = [];
  let isClosed = false;
  let wake: (() => void) | undefined;
  socket.on("data", (chunk: Buffer) => {
    frames.push(...decoder.push(chunk));
    wake?.();
  });
  socket.on("close", () => {
    isClosed = true;
    wake?.();
  });
  socket.on("error", () => {});
  socket.resume();
  return {
    closed: () => isClosed,
    until: (stop, ms) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no end of the guest's answers within ${ms} ms (${frames.length} frames)`)), ms);
        const check = () => {
          if (frames.some(stop) || isClosed) {
            clearTimeout(timer);
            resolve(frames);
          }
        };
        wake = check;
        check();
      }),
  };
}
