/**
 * The host's tar on the way into a guest: it packs host files (trusted
 * data) while the guest unpacks them, and neither end may be left blocked
 * on the other when one fails. (Out of a guest nothing runs tar on the host:
 * extract.ts reads that stream.)
 */
import { spawn } from "node:child_process";
import { errnoOf, SkiffError } from "../../errors.js";
import type { RunningExec } from "../agent-exec.js";

/**
 * Wait for both ends of a tar pipe. Whichever fails first ends the other,
 * so a dead peer never leaves the pipe blocked; the first failure is the one
 * reported (tarError is undefined when we stopped tar ourselves).
 */
export async function finishTogether(exec: RunningExec, tar: HostTar): Promise<{ code: number; tarError: unknown }> {
  const tarError = tar.done.then(
    () => undefined,
    (err: unknown) => (tar.stopped ? undefined : err),
  );
  void tarError.then((err) => {
    if (err !== undefined) void exec.sendSignal("KILL").catch(() => {});
  });
  let code = -1;
  try {
    code = (await exec.done).code;
  } finally {
    if (code !== 0) tar.stop();
  }
  return { code, tarError: await tarError };
}

export interface HostTar {
  child: ReturnType<typeof spawn>;
  done: Promise<void>;
  /** Kill tar if it still runs (its peer in the guest is gone). */
  stop(): void;
  readonly stopped: boolean;
}

/** The host's tar making the archive that goes into a guest (host data: trusted). */
export function hostTar(args: string[]): HostTar {
  const child = spawn("tar", args, { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    if (stderr.length < 4096) stderr += chunk.toString("utf8");
  });
  // The guest may stop reading or writing early; its exit status tells why.
  child.stdin!.on("error", () => {});
  child.stdout!.on("error", () => {});
  const done = new Promise<void>((resolveDone, reject) => {
    child.on("error", (err) => {
      reject(
        errnoOf(err) === "ENOENT"
          ? new SkiffError("ERR_SKIFF_TOOL_MISSING", "tar not found on the host", { hint: "install it: apt-get install tar" })
          : new SkiffError("ERR_SKIFF_HOST", `cannot run tar: ${err.message}`, { cause: err }),
      );
    });
    child.on("close", (code, signal) => {
      if (code === 0) return resolveDone();
      const how = code === null ? `was killed by ${signal}` : `exited with code ${code}`;
      reject(new SkiffError("ERR_SKIFF_TOOL_FAILED", `tar (create on the host) ${how}: ${stderr.trim()}`, { details: { args } }));
    });
  });
  let stopped = false;
  return {
    child,
    done,
    get stopped() {
      return stopped;
    },
    stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      stopped = true;
      child.kill("SIGTERM");
    },
  };
}
