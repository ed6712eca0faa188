/**
 * The host-side pieces of `skiff network tcpdump`: where frames come from
 * (a private network's multicast group, a FIFO QEMU's filter-dump writes,
 * or tcpdump on a bridge) and the tcpdump that filters them and renders
 * text or pcap. tcpdump writes to its stdout and skiff to the file: as
 * root, tcpdump drops to its own user before it opens a -w file.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import { constants, openSync } from "node:fs";
import { Socket } from "node:net";
import { errnoOf, SkiffError } from "../errors.js";

export type CaptureFormat = "text" | "pcap";

/** Where `--` goes: a filter word starting with '-' must never become a tcpdump option. */
function filterArgs(filter: readonly string[]): string[] {
  return filter.length === 0 ? [] : ["--", ...filter];
}

/** The tcpdump that reads skiff's pcap stream on stdin: filters, counts, and writes text or pcap to stdout. */
export function renderArgs(opts: { format: CaptureFormat; count?: number; filter: readonly string[] }): string[] {
  const count = opts.count === undefined ? [] : ["-c", String(opts.count)];
  const out = opts.format === "text" ? ["-n", "-l"] : ["-U", "-w", "-"];
  return ["-r", "-", ...out, ...count, ...filterArgs(opts.filter)];
}

/** Compile the filter against an Ethernet pcap header on stdin: a bad expression fails here, before anything is set up. */
export function filterCheckArgs(filter: readonly string[]): string[] {
  return ["-r", "-", "-d", ...filterArgs(filter)];
}

/** tcpdump on a bridge: every frame it forwards between TAPs (promiscuous), as pcap on stdout. */
export function bridgeCaptureArgs(bridge: string, filter: readonly string[]): string[] {
  return ["-i", bridge, "-n", "-U", "-w", "-", ...filterArgs(filter)];
}

/** Start tcpdump with piped stdio, leading its own process group so a terminal's ^C reaches skiff only. */
export function spawnTcpdump(args: readonly string[]): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn("tcpdump", args, { stdio: ["pipe", "pipe", "pipe"], detached: true });
    child.once("spawn", () => resolve(child));
    child.once("error", (err) => {
      if (errnoOf(err) === "ENOENT") {
        reject(new SkiffError("ERR_SKIFF_TOOL_MISSING", "tcpdump not found", { hint: "install it: apt-get install tcpdump", cause: err }));
      } else reject(new SkiffError("ERR_SKIFF_HOST", `cannot run tcpdump: ${err.message}`, { cause: err }));
    });
  });
}

/** Signal a child's whole process group; a no-op once it is gone. */
export function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Join a private network's segment as a listener: the same multicast group
 * on loopback its VMs' socket netdevs use. Every frame a member sends
 * arrives here once; skiff never sends.
 */
export async function joinSegment(mcast: { group: string; port: number }, onFrame: (frame: Buffer) => void): Promise<{ close(): void }> {
  const socket = createSocket({ type: "udp4", reuseAddr: true });
  socket.on("message", (msg) => onFrame(msg));
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      // Bound to the group, as QEMU's own sockets are: only this group's datagrams arrive.
      socket.bind({ port: mcast.port, address: mcast.group, exclusive: false }, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    socket.addMembership(mcast.group, "127.0.0.1");
  } catch (err) {
    socket.close();
    throw new SkiffError("ERR_SKIFF_HOST", `cannot join multicast group ${mcast.group}:${mcast.port} on 127.0.0.1 (${errnoOf(err) ?? (err as Error).message})`, {
      hint: "loopback must be up in this network namespace (`ip link set lo up`)",
      cause: err,
    });
  }
  // After setup, an error (there is none to expect on a receive-only socket) just ends the stream.
  socket.on("error", () => socket.close());
  return { close: () => socket.close() };
}

/**
 * Read a FIFO as a stream. Opened read-write, so the open never waits for a
 * writer and the stream never sees end-of-file when a writer goes: QEMU
 * opening it for writing does not block either, as a reader is there.
 */
export function openFifo(path: string): Socket {
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  return new Socket({ fd, readable: true, writable: false });
}
