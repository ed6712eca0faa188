/** What both backends do alike around a process and a kill: the request, the byte plumbing, a gone sandbox. */
import { PassThrough, Writable } from "node:stream";
import { SkiffError, type ExecRequest } from "../index.js";
import type { ExecSpec } from "./backend.js";

/** The library's request for a spec (its `tty` is the spec's `pty`). */
export function execRequest(spec: ExecSpec): ExecRequest {
  return {
    argv: spec.argv,
    ...(spec.envs === undefined ? {} : { env: spec.envs }),
    ...(spec.user === undefined ? {} : { user: spec.user }),
    ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }),
    ...(spec.pty === undefined ? {} : { tty: spec.pty }),
  };
}

/** Whether `remove` removed something: false when the sandbox was already gone. */
export async function removed(remove: Promise<unknown>): Promise<boolean> {
  try {
    await remove;
    return true;
  } catch (err) {
    if (err instanceof SkiffError && err.code === "ERR_SKIFF_VM_NOT_FOUND") return false;
    throw err;
  }
}

/** A Writable that hands each chunk to `fn` (which copies or decodes it at once). */
export function sinkStream(fn: (chunk: Uint8Array) => void): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      try {
        fn(chunk);
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
  });
}

export function writeTo(stdin: PassThrough | undefined, data: Uint8Array): Promise<void> {
  if (stdin === undefined || stdin.writableEnded) {
    return Promise.reject(new SkiffError("ERR_SKIFF_USAGE", "this process's stdin is closed", { hint: "start it with { stdin: true } to send it input", place: "stdin" }));
  }
  return new Promise((resolve, reject) => stdin.write(data, (err) => (err ? reject(err) : resolve())));
}
