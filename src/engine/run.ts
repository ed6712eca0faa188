/**
 * run: create + start + run the main command, like `docker run`, as one
 * library operation (the CLI, the API server and the SDK share it). In the
 * foreground the command's exit decides the result and the VM stops
 * afterwards (and goes, with autoRemove); detached, the VM keeps running
 * with its main command started in the background of the guest.
 */
import { SkiffError, isSkiffError } from "../errors.js";
import type { AgentConnection, ExecRequest } from "../guest/agent.js";
import { crashPoint } from "../util/crash-point.js";
import type { ExecSession } from "./client.js";
import type { CreateOptions } from "./create.js";
import type { VmInfo } from "./info.js";
import type { RestoreOptions } from "../snapshot/restore.js";

/** The verbs run is made of: Skiff's, named here so that this module does not import skiff.ts back (no cycle). */
export interface RunEngine {
  create(options: CreateOptions): Promise<VmInfo>;
  restore(ref: string, options: RestoreOptions): Promise<VmInfo>;
  start(name: string, options: { cold?: boolean }): Promise<unknown>;
  stop(name: string, options: { timeoutMs?: number }): Promise<unknown>;
  remove(name: string, options: { force?: boolean }): Promise<void>;
  connect(name: string): Promise<AgentConnection>;
  detach(name: string): Promise<void>;
}

/** The main command as it runs in the guest, with the VM's user, directory and (on a cloud image) environment. */
export type MainRequest = Omit<ExecRequest, "tty">;

export interface RunVmOptions {
  /** Start from this snapshot (name or id) instead of booting `options.image`; of the create options only name, hostname, forwards and autoRemove apply. */
  from?: string;
  /** With `from`: the command to run instead of the snapshot VM's own (its entrypoint and command). */
  argv?: string[];
  /** Leave the VM running, its main command started in the background of the guest (its output on the console). */
  detach?: boolean;
  /** Boot, even where a boot snapshot of the same image and machine would start it faster. */
  cold?: boolean;
  /**
   * How the main command runs in the foreground, e.g. wired to a terminal:
   * given the connection and the request (an empty argv: a login shell),
   * resolve with its exit code. Default: run it and collect its output.
   */
  attach?: (conn: ExecSession, req: MainRequest) => Promise<number>;
}

export interface RunVmResult {
  /** The VM as it was made (its name, its defaults). */
  vm: VmInfo;
  /** Foreground: the main command's exit code. */
  code?: number;
  /** Foreground without `attach`: the signal that ended the command, if one did. */
  signal?: string;
  /** Foreground without `attach`: what the command wrote. */
  stdout?: string;
  stderr?: string;
}

export async function runVm(skiff: RunEngine, options: CreateOptions, run: RunVmOptions = {}): Promise<RunVmResult> {
  const detach = run.detach === true;
  const autoRemove = options.autoRemove === true;
  // In the foreground the VM is tied to this process from its creation: if we are killed, the next skiff command cleans up.
  const info =
    run.from === undefined
      ? await skiff.create({ ...options, attach: !detach })
      : await skiff.restore(run.from, {
          ...(options.name === undefined ? {} : { name: options.name }),
          ...(options.hostname === undefined ? {} : { hostname: options.hostname }),
          forwards: options.network?.mode === "user" ? options.network.forwards : [],
          autoRemove,
          attach: !detach,
        });
  crashPoint("run:created");
  const main = run.from !== undefined && (run.argv ?? []).length > 0 ? (run.argv ?? []) : [...info.entrypoint, ...info.command];
  // A restored VM runs already.
  const start = run.from === undefined ? () => startOrRemove(skiff, info.name, run.cold === true) : async () => undefined;
  if (detach) {
    await start();
    if (main.length > 0) {
      const [conn, { startDetached }] = await Promise.all([skiff.connect(info.name), import("../guest/detach.js")]);
      const failed = await startDetached(conn, mainRequest(conn, info, main)).then(
        () => undefined,
        (err: unknown) => err,
      );
      await conn.close();
      if (failed !== undefined) {
        await skiff.remove(info.name, { force: true });
        throw failed;
      }
    }
    return { vm: info };
  }
  let stopped = false;
  const stopVm = async () => {
    if (stopped) return;
    stopped = true;
    if (autoRemove) await skiff.remove(info.name, { force: true });
    else await skiff.stop(info.name, { timeoutMs: 10_000 });
  };
  try {
    await start().catch((err: unknown) => {
      // startOrRemove removed it already.
      if (isSkiffError(err) && err.code === "ERR_SKIFF_NO_SPACE") stopped = true;
      throw err;
    });
    const conn = await skiff.connect(info.name);
    try {
      const result = await attachOrCollect(conn, mainRequest(conn, info, main), run.attach);
      // Flush the guest's page cache so writes survive the stop below (a cloud image has its own sync).
      const sync = conn.sshUser === undefined ? ["/dev/.skiff/bin/busybox", "sync"] : ["sync"];
      if (!autoRemove) await conn.run(sync, { timeoutMs: 30_000 }).catch(() => undefined);
      return { vm: info, ...result };
    } finally {
      await conn.close();
    }
  } finally {
    await stopVm();
    if (!autoRemove) await skiff.detach(info.name).catch(() => undefined);
  }
}

async function attachOrCollect(conn: AgentConnection, req: MainRequest, attach: RunVmOptions["attach"]): Promise<Omit<RunVmResult, "vm">> {
  if (attach !== undefined) return { code: await attach(conn, req) };
  if (req.argv.length === 0) {
    throw new SkiffError("ERR_SKIFF_USAGE", "the VM has no command to run, and a login shell needs a terminal", {
      place: "argv",
      hint: "give a command, or run detached and use exec",
    });
  }
  const { argv, ...rest } = req;
  const r = await conn.run(argv, rest);
  return { code: r.code, ...(r.signal === undefined ? {} : { signal: r.signal }), stdout: r.stdout, stderr: r.stderr };
}

/**
 * A VM that could not start for want of disk space is removed, with
 * everything it made: it holds space the user is short of, and a `run` that
 * failed should leave nothing to clean up. After other failures (a boot that
 * failed) it stays, so that its console log can tell why.
 */
async function startOrRemove(skiff: RunEngine, name: string, cold: boolean): Promise<void> {
  try {
    await skiff.start(name, { cold });
  } catch (err) {
    if (isSkiffError(err) && err.code === "ERR_SKIFF_NO_SPACE") await skiff.remove(name, { force: true }).catch(() => undefined);
    throw err;
  }
}

/**
 * The main command with the VM's defaults. skiff-init gives every command
 * the VM's environment; a cloud image's sshd does not, so it goes along.
 */
function mainRequest(conn: AgentConnection, info: VmInfo, argv: string[]): MainRequest {
  return {
    argv,
    ...(conn.sshUser === undefined ? {} : { env: info.env }),
    ...(info.user === undefined ? {} : { user: info.user }),
    ...(info.workingDir === undefined ? {} : { cwd: info.workingDir }),
  };
}
