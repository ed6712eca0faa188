/**
 * `sandbox.files` (E2B's Filesystem), as small POSIX shell scripts run in
 * the guest through the backend's exec: paths travel as arguments, never
 * inside the script text, so no quoting is involved; the script's exit code
 * says what went wrong (missing, a directory, …). Every image with
 * /bin/sh, cat, mkdir, rm and stat (busybox has them all) works, and a
 * remote backend needs nothing beyond exec.
 *
 * What comes back is bounded (maxBytes) and a listing's names are checked
 * (listing.ts) before a caller sees them.
 */
import { posix } from "node:path";
import { SkiffError } from "../index.js";
import type { ExecChannel, SandboxBackend } from "./backend.js";
import { guestWords, OutputBuffer } from "./guest-text.js";
import { listScript, parseListing, type EntryInfo } from "./listing.js";

export type { EntryInfo } from "./listing.js";

export interface WriteEntry {
  path: string;
  data: string | Uint8Array;
}

export interface WriteInfo {
  name: string;
  type: "file";
  path: string;
}

export interface FilesOpts {
  /** Run as this user (default root). */
  user?: string;
  /** Give up (ERR_SKIFF_TIMEOUT) after this long (default 60 s). */
  requestTimeoutMs?: number;
}

export interface ReadOpts extends FilesOpts {
  format?: "text" | "bytes";
  /** Refuse (ERR_SKIFF_OUTPUT_TOO_LARGE) a file larger than this (default 64 MiB). */
  maxBytes?: number;
}

export const defaultMaxReadBytes = 64 * 1024 * 1024;
const defaultListBytes = 16 * 1024 * 1024;
const defaultFileTimeoutMs = 60_000;

/** Exit codes the scripts use to say why they failed. */
const missing = 3;
const isDir = 4;
const notDir = 5;
const already = 6;

const scripts = {
  read: `[ -e "$1" ] || exit ${missing}; [ -d "$1" ] && exit ${isDir}; exec cat -- "$1"`,
  write: `d=$(dirname -- "$1") && mkdir -p -- "$d" || exit 1; [ -d "$1" ] && exit ${isDir}; exec cat > "$1"`,
  exists: `[ -e "$1" ] || [ -L "$1" ] || exit ${missing}`,
  remove: `[ -e "$1" ] || [ -L "$1" ] || exit ${missing}; exec rm -rf -- "$1"`,
  makeDir: `[ -d "$1" ] && exit ${already}; exec mkdir -p -- "$1"`,
  list: listScript(missing, notDir),
};

interface ScriptResult {
  exitCode: number;
  stdout: OutputBuffer;
  stderr: string;
}

export class Filesystem {
  constructor(
    readonly backend: SandboxBackend,
    readonly sandboxId: string,
  ) {}

  read(path: string, opts?: ReadOpts & { format?: "text" }): Promise<string>;
  read(path: string, opts: ReadOpts & { format: "bytes" }): Promise<Uint8Array>;
  async read(path: string, opts: ReadOpts = {}): Promise<string | Uint8Array> {
    const r = await this.#run("read", path, opts, { maxStdout: opts.maxBytes ?? defaultMaxReadBytes });
    this.#check(r, path, "read");
    return opts.format === "bytes" ? r.stdout.bytes() : r.stdout.text();
  }

  /** Write one file (parents made as needed), or several: write([{ path, data }, …]). */
  write(path: string, data: string | Uint8Array, opts?: FilesOpts): Promise<WriteInfo>;
  write(files: WriteEntry[], opts?: FilesOpts): Promise<WriteInfo[]>;
  async write(target: string | WriteEntry[], data?: string | Uint8Array | FilesOpts, opts?: FilesOpts): Promise<WriteInfo | WriteInfo[]> {
    if (Array.isArray(target)) {
      const o = (data as FilesOpts | undefined) ?? {};
      const infos: WriteInfo[] = [];
      for (const entry of target) infos.push(await this.write(entry.path, entry.data, o));
      return infos;
    }
    if (typeof data !== "string" && !(data instanceof Uint8Array)) {
      throw new SkiffError("ERR_SKIFF_USAGE", `files.write: data for ${target} must be a string or bytes`, { place: "data" });
    }
    const r = await this.#run("write", target, opts ?? {}, { stdin: typeof data === "string" ? Buffer.from(data) : data });
    this.#check(r, target, "write");
    return { name: posix.basename(target), type: "file", path: target };
  }

  /** The entries of a directory (depth 1); names that are not safe to hand on (control characters, …) are left out. */
  async list(path: string, opts: FilesOpts & { maxBytes?: number } = {}): Promise<EntryInfo[]> {
    const r = await this.#run("list", path, opts, { maxStdout: opts.maxBytes ?? defaultListBytes });
    this.#check(r, path, "list");
    return parseListing(r.stdout.bytes(), path).entries;
  }

  async exists(path: string, opts: FilesOpts = {}): Promise<boolean> {
    const r = await this.#run("exists", path, opts, {});
    if (r.exitCode === missing) return false;
    this.#check(r, path, "look at");
    return true;
  }

  /** Remove a file or a directory with everything in it; ERR_SKIFF_FILE_NOT_FOUND when there is nothing. */
  async remove(path: string, opts: FilesOpts = {}): Promise<void> {
    this.#check(await this.#run("remove", path, opts, {}), path, "remove");
  }

  /** Make a directory and its parents; false when it existed already (as E2B). */
  async makeDir(path: string, opts: FilesOpts = {}): Promise<boolean> {
    const r = await this.#run("makeDir", path, opts, {});
    if (r.exitCode === already) return false;
    this.#check(r, path, "make directory");
    return true;
  }

  async #run(script: keyof typeof scripts, path: string, opts: FilesOpts, io: { stdin?: Uint8Array; maxStdout?: number }): Promise<ScriptResult> {
    checkPath(path);
    const maxStdout = io.maxStdout ?? 4096;
    const stdout = new OutputBuffer(maxStdout);
    const stderr = new OutputBuffer(4096);
    let channel: ExecChannel | undefined;
    // Past the bound: stop the guest sending more; what was asked for is refused below.
    const tooMuch = () => void channel?.signal("KILL").catch(() => undefined);
    channel = await this.backend.exec(
      this.sandboxId,
      {
        argv: ["/bin/sh", "-c", scripts[script], "skiff-files", path],
        stdin: io.stdin !== undefined,
        timeoutMs: opts.requestTimeoutMs ?? defaultFileTimeoutMs,
        ...(opts.user === undefined ? {} : { user: opts.user }),
      },
      {
        stdout: (chunk) => {
          stdout.push(chunk);
          if (stdout.truncated) tooMuch();
        },
        stderr: (chunk) => void stderr.push(chunk),
      },
    );
    if (stdout.truncated) tooMuch();
    if (io.stdin !== undefined) {
      await channel.writeStdin(io.stdin);
      channel.closeStdin();
    }
    const status = await channel.done;
    if (stdout.truncated) {
      throw new SkiffError("ERR_SKIFF_OUTPUT_TOO_LARGE", `${path} in sandbox ${this.sandboxId}: more than ${maxStdout} bytes`, {
        place: "maxBytes",
        hint: "pass a larger maxBytes, or read it in parts with commands.run (e.g. head -c, tail -c)",
        details: { path, maxBytes: maxStdout },
      });
    }
    return { exitCode: status.exitCode, stdout, stderr: stderr.text() };
  }

  #check(r: ScriptResult, path: string, verb: string): void {
    if (r.exitCode === 0) return;
    const where = `${path} in sandbox ${this.sandboxId}`;
    if (r.exitCode === missing) throw new SkiffError("ERR_SKIFF_FILE_NOT_FOUND", `cannot ${verb} ${where}: no such file or directory`, { place: path, details: { path } });
    if (r.exitCode === isDir) throw new SkiffError("ERR_SKIFF_BAD_PATH", `cannot ${verb} ${where}: it is a directory`, { place: path, details: { path } });
    if (r.exitCode === notDir) throw new SkiffError("ERR_SKIFF_BAD_PATH", `cannot ${verb} ${where}: not a directory`, { place: path, details: { path } });
    throw new SkiffError("ERR_SKIFF_GUEST_COMMAND", `cannot ${verb} ${where} (exit ${r.exitCode})${r.stderr.trim() === "" ? "" : `: ${guestWords(r.stderr)}`}`, {
      place: path,
      details: { path, exitCode: r.exitCode },
    });
  }
}

function checkPath(path: unknown): asserts path is string {
  if (typeof path !== "string" || path === "" || path.includes("\0")) {
    throw new SkiffError("ERR_SKIFF_BAD_PATH", `not a path: ${JSON.stringify(path)}`, { place: "path", hint: "give a non-empty path without NUL bytes" });
  }
}
