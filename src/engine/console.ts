/**
 * A running VM's serial console as a byte stream both ways (`skiff
 * console`, the console WebSocket). QEMU's console socket takes one client
 * at a time. What comes out is the guest's: passed on as bytes, never read.
 */
import { connect } from "node:net";
import type { Readable, Writable } from "node:stream";
import { SkiffError } from "../errors.js";
import { qemuRuns, type RunState } from "./status.js";

export interface ConsoleStream {
  output: Readable;
  input: Writable;
  /** Detach (the VM runs on). */
  close(): void;
}

export async function openConsole(name: string, state: RunState, socketPath: string): Promise<ConsoleStream> {
  if (!qemuRuns(state)) {
    throw new SkiffError("ERR_SKIFF_VM_NOT_RUNNING", `${name} is not running`, { hint: `start it with \`skiff start ${name}\``, place: name });
  }
  const sock = connect(socketPath);
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", resolve);
    sock.once("error", (err) => reject(new SkiffError("ERR_SKIFF_QEMU_FAILED", `cannot reach ${name}'s console: ${err.message}`, { cause: err })));
  });
  return { output: sock, input: sock, close: () => sock.destroy() };
}
