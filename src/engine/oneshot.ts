/**
 * One-shot `exec` and `cp` for library users (dockerode's habit): connect,
 * do one thing, close. `connect()` stays for callers that run many commands
 * on one connection.
 */
import type { Readable, Writable } from "node:stream";
import { SkiffError } from "../errors.js";
import type { AgentConnection, CopyOptions, CopyReport, RunOptions } from "../guest/agent.js";
import type { CopyContext } from "../guest/agent-copy.js";

export interface ExecOnceResult {
  code: number;
  /** Name of the signal that ended the command ("KILL"), if one did. */
  signal?: string;
  stdout: string;
  stderr: string;
}

export interface CopyEndpoint {
  vm?: string;
  path: string;
}

/** `name:/path` is a VM path; anything else (including ./a:b, /abs) is a host path, as with docker cp. */
export function parseEndpoint(arg: string): CopyEndpoint {
  const m = arg.match(/^([a-zA-Z0-9][a-zA-Z0-9_.-]*):(.*)$/);
  if (m === null || arg.startsWith("/") || arg.startsWith(".")) return { path: arg };
  const path = m[2] ?? "";
  if (path === "") throw new SkiffError("ERR_SKIFF_BAD_PATH", `no path after the VM name in ${arg}`, { place: arg, hint: "write NAME:/path" });
  return { vm: m[1] ?? "", path };
}

/** The VM and the direction of a copy: exactly one side is `NAME:/absolute/path`. */
export function copyPlan(srcArg: string, dstArg: string): { vm: string; src: CopyEndpoint; dst: CopyEndpoint } {
  const src = parseEndpoint(srcArg);
  const dst = parseEndpoint(dstArg);
  if ((src.vm === undefined) === (dst.vm === undefined)) {
    throw new SkiffError("ERR_SKIFF_USAGE", "exactly one side of cp must be a VM path (NAME:/path)", {
      place: `${srcArg} ${dstArg}`,
      hint: "e.g. skiff cp ./file web:/tmp/ or skiff cp web:/etc/hostname .",
    });
  }
  const guestPath = src.vm !== undefined ? src.path : dst.path;
  if (!guestPath.startsWith("/")) {
    throw new SkiffError("ERR_SKIFF_BAD_PATH", `guest paths must be absolute: ${guestPath}`, { place: src.vm !== undefined ? srcArg : dstArg });
  }
  return { vm: (src.vm ?? dst.vm) as string, src, dst };
}

type Connect = (name: string) => Promise<AgentConnection>;

export async function execOnce(connect: Connect, name: string, argv: string[], opts: RunOptions = {}): Promise<ExecOnceResult> {
  if (argv.length === 0) throw new SkiffError("ERR_SKIFF_USAGE", "no command given to run in the guest", { place: "argv", hint: 'e.g. skiff.exec("web", ["uname", "-a"])' });
  const conn = await connect(name);
  try {
    const r = await conn.run(argv, opts);
    return { code: r.code, ...(r.signal === undefined ? {} : { signal: r.signal }), stdout: r.stdout, stderr: r.stderr };
  } finally {
    await conn.close();
  }
}

/** As docker cp: `-` on the host side is a tar stream, read from `input` or written to `output`. */
export interface CopyOnceOptions extends CopyOptions {
  input?: Readable;
  output?: Writable;
}

/** What a copy runs over: a connection to the VM's guest (its commands and their streams), closed after. */
export type CopyConnection = CopyContext & { close(): Promise<void> };

/**
 * Copy in or out of a VM; out of one, the report says what was not brought
 * over as it was. The copy is guest commands with streams (agent-copy.ts),
 * so it runs the same over an agent connection in process and over the
 * exec WebSocket of `skiff serve` (the HTTP client's cp).
 */
export async function copyOnce(
  connect: (vm: string) => Promise<CopyConnection>,
  srcArg: string,
  dstArg: string,
  opts: CopyOnceOptions = {},
): Promise<CopyReport | undefined> {
  const { vm, src, dst } = copyPlan(srcArg, dstArg);
  const stream = (arg: string, given: Readable | Writable | undefined, which: string) => {
    if (given === undefined) throw new SkiffError("ERR_SKIFF_USAGE", `- stands for a tar stream, and no ${which} stream was given`, { place: arg, hint: `pass opts.${which}` });
    return given;
  };
  const output = dstArg === "-" ? (stream(dstArg, opts.output, "output") as Writable) : undefined;
  const input = srcArg === "-" ? (stream(srcArg, opts.input, "input") as Readable) : undefined;
  const [conn, copy] = await Promise.all([connect(vm), import("../guest/agent-copy.js")]);
  try {
    if (output !== undefined) {
      await copy.copyOutTar(conn, src.path, output);
      return undefined;
    }
    if (input !== undefined) {
      await copy.copyInTar(conn, input, dst.path, { archive: opts.archive === true });
      return undefined;
    }
    if (src.vm !== undefined) return await copy.copyFrom(conn, src.path, dst.path, opts);
    await copy.copyTo(conn, src.path, dst.path, opts);
    return undefined;
  } finally {
    await conn.close();
  }
}
