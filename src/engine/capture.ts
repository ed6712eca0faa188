/**
 * `skiff network tcpdump`: every frame on a network, filtered and rendered
 * by tcpdump. Each driver has its own way in:
 *
 * - private: skiff joins the segment's multicast group on loopback itself.
 * - bridge: tcpdump on the Linux bridge (promiscuous: it sees what the
 *   bridge forwards between TAPs).
 * - link: there is no shared medium, so a running member's QEMU copies the
 *   frames of its end (both directions) to a FIFO through a `filter-dump`
 *   object added over QMP, and deleted again at the end.
 *
 * All three become one pcap stream (frames restamped with wall-clock time
 * where the source's clock is not one) that a second tcpdump reads on stdin
 * and turns into text or filtered pcap; its -c ends the capture.
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chown, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { SkiffError } from "../errors.js";
import { bridgeExists } from "../network/bridge.js";
import { bridgeCaptureArgs, filterCheckArgs, joinSegment, openFifo, renderArgs, signalGroup, spawnTcpdump, type CaptureFormat } from "../network/capture.js";
import { netdevId } from "../network/nics.js";
import { pcapHeader, PcapFormatError, PcapReader, pcapRecord, type PcapFrame } from "../network/pcap.js";
import type { NetworkRecord } from "../network/types.js";
import { processAlive } from "../process/pid.js";
import { QmpClient } from "../qemu/qmp.js";
import type { VmRecord } from "../store/store.js";
import { readdirOrEmpty } from "../util/fs.js";
import type { EngineContext } from "./context.js";
import { observeStatus } from "./status.js";
import { networkStore } from "./vm-network.js";

export interface CaptureOptions {
  network: string;
  /** A pcap-filter(7) expression, in words as tcpdump takes it. */
  filter?: readonly string[];
  /** End after this many frames that pass the filter. */
  count?: number;
  /** tcpdump's text (default), or pcap. */
  format?: CaptureFormat;
  /** What a user of tcpdump would see on stderr: where it captures, tcpdump's own messages. */
  onNotice?: (line: string) => void;
}

export interface CaptureSummary {
  /** Frames taken from the network, before the filter. */
  frames: number;
  /** Frames let go because the output did not keep up. */
  dropped: number;
  /** count: -c was reached; stopped: stop() was called; source: the network side ended (e.g. the VM stopped). */
  ended: "count" | "stopped" | "source";
}

export interface Capture {
  /** tcpdump's text lines, or a pcap stream; ends when the capture does. */
  readonly output: Readable;
  /** End the capture; idempotent. */
  stop(): void;
  /** Settles once the capture has ended and everything it set up is released. */
  readonly done: Promise<CaptureSummary>;
}

/** How a driver's frames reach skiff; `start` resolves once frames flow, with the function that releases it all. */
interface FrameSource {
  where: string;
  /** The source's timestamps are wall-clock time (tcpdump's), not to be replaced. */
  wallClock: boolean;
  start(io: { deliver: (frame: PcapFrame) => void; ended: (why: string | SkiffError) => void; notice: (line: string) => void }): Promise<() => Promise<void>>;
}

/** Past this much unwritten output, frames are dropped rather than held: a slow reader must not grow skiff without bound or stall QEMU. */
const maxBacklogBytes = 8 << 20;
const renderExitGraceMs = 3_000;

export async function captureNetwork(ctx: EngineContext, opts: CaptureOptions): Promise<Capture> {
  const net = await networkStore(ctx).get(opts.network, opts.network);
  const filter = opts.filter ?? [];
  if (opts.count !== undefined && (!Number.isSafeInteger(opts.count) || opts.count < 1)) {
    throw new SkiffError("ERR_SKIFF_USAGE", `packet count must be a positive whole number, not ${opts.count}`, { place: "count", hint: "e.g. 10" });
  }
  const source = await sourceFor(ctx, net, filter);
  await checkFilter(ctx, filter);
  const render = await spawnTcpdump(renderArgs({ format: opts.format ?? "text", filter, ...(opts.count === undefined ? {} : { count: opts.count }) }));
  return runCapture({ render, source, notice: opts.onNotice ?? (() => undefined), network: net });
}

async function checkFilter(ctx: EngineContext, filter: readonly string[]): Promise<void> {
  if (filter.length === 0) return;
  const r = await ctx.runner.run("tcpdump", filterCheckArgs(filter), { input: pcapHeader(), debianPackage: "tcpdump", timeoutMs: 10_000 });
  if (r.code === 0) return;
  const why = r.stderr.split("\n").find((l) => l.startsWith("tcpdump:"))?.replace(/^tcpdump:\s*/, "") ?? r.stderr.trim();
  throw new SkiffError("ERR_SKIFF_USAGE", `bad capture filter "${filter.join(" ")}": ${why}`, { place: "filter", hint: "write it as tcpdump takes it, see pcap-filter(7)" });
}

function runCapture(opts: { render: ChildProcess; source: FrameSource; notice: (line: string) => void; network: NetworkRecord }): Capture {
  const { render, source, notice } = opts;
  const stdin = render.stdin!;
  const summary: CaptureSummary = { frames: 0, dropped: 0, ended: "stopped" };
  let ending: Promise<void> | undefined;
  let failure: SkiffError | undefined;
  let started: Promise<() => Promise<void>> | undefined;
  const killOnExit = (): void => signalGroup(render, "SIGKILL");
  process.once("exit", killOnExit);
  // tcpdump gone (its -c reached) while frames still arrive: a write to its stdin fails, and that is expected.
  stdin.on("error", () => undefined);
  const stderrTail = forwardLines(render.stderr!, (line) => {
    if (!/^reading from file -/.test(line)) notice(line);
  });
  const rendered = new Promise<number | null>((resolve) => render.once("close", (code) => resolve(code)));
  stdin.write(pcapHeader());

  const deliver = (frame: PcapFrame): void => {
    if (ending !== undefined) return;
    summary.frames++;
    if (stdin.writableLength > maxBacklogBytes) summary.dropped++;
    else stdin.write(pcapRecord(source.wallClock ? frame : { ...frame, timestampUs: clock() }));
  };
  const end = (why: CaptureSummary["ended"], err?: SkiffError): Promise<void> => {
    if (ending !== undefined) return ending;
    summary.ended = why;
    failure ??= err;
    ending = (async () => {
      // A source still starting is released once it has started (or has cleaned up after itself when it failed).
      const release = await started?.catch(() => undefined);
      try {
        await release?.();
      } catch (e) {
        failure ??= asSkiffError(e, "releasing the capture failed");
      }
      // With its input at an end, tcpdump writes out what it has and exits.
      stdin.end();
      const timer = setTimeout(() => signalGroup(render, "SIGKILL"), renderExitGraceMs);
      await rendered;
      clearTimeout(timer);
      process.off("exit", killOnExit);
    })();
    return ending;
  };
  const ended = (why: string | SkiffError): void => {
    if (typeof why === "string") notice(why);
    void end("source", typeof why === "string" ? undefined : why);
  };
  started = source.start({ deliver, ended, notice });

  const done = (async (): Promise<CaptureSummary> => {
    try {
      await started;
    } catch (err) {
      await end("stopped", asSkiffError(err, "starting the capture failed"));
    }
    if (ending === undefined) notice(`capturing on network ${opts.network.name} (${source.where}), link-type EN10MB (Ethernet)`);
    const code = await rendered;
    if (ending === undefined) {
      // tcpdump ended by itself: its -c was reached, or it failed.
      if (code !== 0) failure ??= new SkiffError("ERR_SKIFF_TOOL_FAILED", `tcpdump exited with code ${code}: ${stderrTail().trim()}`);
      await end("count");
    }
    await ending;
    if (failure !== undefined) throw failure;
    return summary;
  })();
  // The caller may look at `done` only after reading the output; no unhandled rejection meanwhile.
  done.catch(() => undefined);
  return { output: render.stdout!, stop: () => void end("stopped"), done };
}

function asSkiffError(err: unknown, what: string): SkiffError {
  return err instanceof SkiffError ? err : new SkiffError("ERR_SKIFF_INTERNAL", `${what}: ${(err as Error).message}`, { cause: err });
}

/** Microseconds since the epoch, monotonic within this process. */
const clock = ((): (() => number) => {
  const baseUs = Date.now() * 1000;
  const hr0 = process.hrtime.bigint();
  return () => baseUs + Number((process.hrtime.bigint() - hr0) / 1000n);
})();

/** Call `onLine` for each line of `stream`; returns a reader of the last few KiB (for errors). */
function forwardLines(stream: Readable, onLine: (line: string) => void): () => string {
  let partial = "";
  let tail = "";
  stream.setEncoding("utf8");
  stream.on("data", (text: string) => {
    tail = (tail + text).slice(-4096);
    const lines = (partial + text).split("\n");
    partial = lines.pop()!;
    for (const line of lines) if (line.trim() !== "") onLine(line);
  });
  stream.on("end", () => {
    if (partial.trim() !== "") onLine(partial);
  });
  return () => tail;
}

async function sourceFor(ctx: EngineContext, net: NetworkRecord, filter: readonly string[]): Promise<FrameSource> {
  switch (net.driver) {
    case "private":
      return privateSource(net);
    case "bridge":
      return bridgeSource(ctx, net, filter);
    case "link":
      return linkSource(ctx, net);
  }
}

function privateSource(net: NetworkRecord): FrameSource {
  const mcast = net.mcast;
  if (mcast === undefined) throw new SkiffError("ERR_SKIFF_STATE_CORRUPT", `private network ${net.name} has no multicast group`, { place: net.name, hint: "remove and create the network again" });
  return {
    where: `private: multicast ${mcast.group}:${mcast.port} on loopback`,
    wallClock: false,
    async start({ deliver }) {
      const segment = await joinSegment(mcast, (data) => deliver({ timestampUs: 0, originalLength: data.length, data }));
      return async () => segment.close();
    },
  };
}

/** Frames of a pcap stream, for `deliver`; a stream that is not pcap ends the capture with an error. */
function pcapFrames(what: string, deliver: (frame: PcapFrame) => void, ended: (why: SkiffError) => void): (chunk: Buffer) => void {
  const reader = new PcapReader();
  let broken = false;
  return (chunk) => {
    if (broken) return;
    try {
      for (const frame of reader.push(chunk)) deliver(frame);
    } catch (err) {
      if (!(err instanceof PcapFormatError)) throw err;
      broken = true;
      ended(new SkiffError("ERR_SKIFF_INTERNAL", `${what} did not produce pcap: ${err.message}`, { cause: err }));
    }
  };
}

async function bridgeSource(ctx: EngineContext, net: NetworkRecord, filter: readonly string[]): Promise<FrameSource> {
  if (net.bridge === undefined) throw new SkiffError("ERR_SKIFF_STATE_CORRUPT", `bridge network ${net.name} has no bridge`, { place: net.name, hint: "remove and create the network again" });
  const bridge = net.bridge;
  if (process.getuid?.() !== 0) {
    throw new SkiffError("ERR_SKIFF_NEEDS_ROOT", `capturing on bridge network ${net.name} needs root (CAP_NET_RAW)`, { place: net.name, hint: "run skiff as root" });
  }
  if (!(await bridgeExists(net, { runner: ctx.runner }))) {
    throw new SkiffError("ERR_SKIFF_HOST", `bridge ${bridge} of network ${net.name} is not up`, { place: net.name, hint: `bring it up with \`skiff network up ${net.name}\`` });
  }
  return {
    where: `bridge ${bridge}`,
    wallClock: true,
    async start({ deliver, ended, notice }) {
      // The filter runs here too, in the kernel: what it drops never crosses a pipe.
      const child = await spawnTcpdump(bridgeCaptureArgs(bridge, filter));
      child.stdin!.end();
      let released = false;
      const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
      child.stdout!.on("data", pcapFrames(`tcpdump on ${bridge}`, deliver, ended));
      const listening = new Promise<void>((resolve, reject) => {
        const stderr = forwardLines(child.stderr!, (line) => {
          // tcpdump says so once the capture is live; skiff says where it captures instead.
          if (/^(tcpdump: )?listening on /.test(line)) resolve();
          // Its closing counts are of frames before -c; only a kernel drop is news.
          else if (!/^\d+ packets? (captured|received by filter)$|^0 packets dropped by kernel$/.test(line)) notice(line);
        });
        void exited.then(() => {
          const err = new SkiffError("ERR_SKIFF_TOOL_FAILED", `tcpdump on ${bridge} exited: ${stderr().trim()}`, { place: net.name });
          reject(err);
          if (!released) ended(err);
        });
      });
      const release = async (): Promise<void> => {
        released = true;
        signalGroup(child, "SIGTERM");
        const timer = setTimeout(() => signalGroup(child, "SIGKILL"), 2_000);
        await exited;
        clearTimeout(timer);
      };
      try {
        await withDeadline(listening, 15_000, `tcpdump on ${bridge} did not start listening`);
      } catch (err) {
        await release();
        throw err;
      }
      return release;
    },
  };
}

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SkiffError("ERR_SKIFF_TIMEOUT", `${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

const captureIdPrefix = "skiff-capture-";

/** The member of a link network whose QEMU does the copying: a running one, slot 0 first. */
async function linkMember(ctx: EngineContext, net: NetworkRecord): Promise<{ vm: VmRecord; pid: number; netdev: string }> {
  const members: { vm: VmRecord; slot: number; index: number }[] = [];
  for (const vm of await ctx.store.list()) {
    const index = (vm.config.spec.networks ?? []).findIndex((a) => a.network === net.name);
    if (index >= 0) members.push({ vm, slot: vm.config.spec.networks![index]!.slot ?? 0, index });
  }
  members.sort((a, b) => a.slot - b.slot);
  for (const m of members) {
    const status = await observeStatus(m.vm, await ctx.store.readState(m.vm.id));
    if (status.state === "running" && status.pid !== undefined) return { vm: m.vm, pid: status.pid, netdev: netdevId(m.index) };
  }
  const names = members.map((m) => m.vm.name);
  throw new SkiffError("ERR_SKIFF_VM_NOT_RUNNING", `no VM on link network ${net.name} is running${names.length === 0 ? "" : ` (${names.join(", ")})`}`, {
    place: net.name,
    hint:
      names.length === 0
        ? `a link has no medium of its own to listen on; run VMs on it (\`skiff run -d --network ${net.name} IMAGE\`)`
        : `a link is captured inside one of its VMs' QEMU; start one (\`skiff start ${names[0]}\`)`,
  });
}

async function withQmp<T>(vm: VmRecord, fn: (qmp: QmpClient) => Promise<T>): Promise<T> {
  const qmp = await QmpClient.connect(vm.paths.qmpSocket, { timeoutMs: 10_000, label: vm.name });
  try {
    return await fn(qmp);
  } finally {
    qmp.close();
  }
}

/** filter-dump objects and FIFOs left by a capture that was killed (its pid is gone). */
async function sweepStaleCaptures(qmp: QmpClient, runDir: string): Promise<void> {
  const stale = (name: string): boolean => {
    const pid = Number(/^(?:skiff-capture|capture)-(\d+)-/.exec(name)?.[1]);
    return Number.isInteger(pid) && pid !== process.pid && !processAlive(pid);
  };
  const objects = await qmp.execute<{ name: string; type: string }[]>("qom-list", { path: "/objects" });
  for (const o of objects) if (o.name.startsWith(captureIdPrefix) && stale(o.name)) await qmp.execute("object-del", { id: o.name }).catch(() => undefined);
  for (const f of await readdirOrEmpty(runDir)) if (f.endsWith(".fifo") && stale(f)) await rm(join(runDir, f), { force: true });
}

async function linkSource(ctx: EngineContext, net: NetworkRecord): Promise<FrameSource> {
  const { vm, pid, netdev } = await linkMember(ctx, net);
  const runDir = networkStore(ctx).runDir(net.name);
  return {
    where: `link, inside ${vm.name}'s QEMU (${netdev})`,
    // filter-dump stamps frames with the guest's virtual clock.
    wallClock: false,
    async start({ deliver, ended }) {
      const tag = `${process.pid}-${randomBytes(4).toString("hex")}`;
      const id = `${captureIdPrefix}${tag}`;
      const fifo = join(runDir, `capture-${tag}.fifo`);
      await withQmp(vm, (qmp) => sweepStaleCaptures(qmp, runDir));
      await ctx.runner.run("mkfifo", ["-m", "600", fifo], { check: true, debianPackage: "coreutils" });
      // The jailed QEMU opens it as its jail user: the FIFO is that user's alone.
      if (vm.config.jail !== undefined && process.getuid?.() === 0) await chown(fifo, vm.config.jail.uid, vm.config.jail.gid);
      const reader = openFifo(fifo);
      reader.on("data", pcapFrames(`filter-dump in ${vm.name}`, deliver, ended));
      reader.on("error", (err) => ended(new SkiffError("ERR_SKIFF_HOST", `reading ${fifo} failed: ${err.message}`, { cause: err })));
      let added = false;
      const watch = setInterval(() => {
        if (!processAlive(pid)) ended(`${vm.name} stopped; the capture ends with it`);
      }, 1_000);
      const release = async (): Promise<void> => {
        clearInterval(watch);
        // Delete the filter before closing the reader: QEMU must never write into a FIFO nobody reads.
        if (added && processAlive(pid)) await withQmp(vm, (qmp) => qmp.execute("object-del", { id })).catch(() => undefined);
        reader.destroy();
        await rm(fifo, { force: true });
      };
      try {
        await withQmp(vm, (qmp) => qmp.execute("object-add", { "qom-type": "filter-dump", id, netdev, file: fifo }));
        added = true;
      } catch (err) {
        await release();
        throw err;
      }
      return release;
    },
  };
}
