/**
 * What the host asks the guest to run, and its encoding as an SSH command.
 *
 * skiff-shell (guest/agent.c, parsed by guest/request.c) receives every SSH command. A command of
 * the form `skiff-exec:<base64>` carries NUL-separated records, so argv,
 * env, user and working directory reach execvp() exactly as given, with no
 * shell quoting anywhere on the way.
 */
import { SkiffError } from "../errors.js";

export interface PtyOptions {
  cols: number;
  rows: number;
  /** TERM for the command (default xterm-256color). */
  term?: string;
}

export interface ExecRequest {
  /** argv[0] is looked up on PATH inside the image, like execvp. */
  argv: string[];
  /** Added to the VM's environment (the request wins over the VM's). */
  env?: Record<string, string>;
  /** Name or uid, optionally `:group` or `:gid` (default root). */
  user?: string;
  /** Working directory (default the user's home). */
  cwd?: string;
  /** Run on a pseudo-terminal (stdout and stderr then arrive merged). */
  tty?: boolean | PtyOptions;
}

/** The wire request: an ExecRequest plus the name of the guest's pidfile for signals. */
export interface EncodableRequest extends Omit<ExecRequest, "tty"> {
  /** Name under /dev/.skiff-run/ where the guest writes the command's pid. */
  pidfile?: string;
}

/** Prefix that tells skiff-shell the rest is an encoded request. */
export const execPrefix = "skiff-exec:";

/** dropbear rejects longer commands (MAX_CMD_LEN) by dropping the request without an answer. */
export const maxCommandLength = 9000;
/** skiff-shell's limits on records it keeps. */
const maxArgs = 1023;
const maxEnv = 255;

/** The SSH command string that makes skiff-shell run `req`. */
export function encodeExecRequest(req: EncodableRequest): string {
  if (req.argv.length === 0) throw new SkiffError("ERR_SKIFF_USAGE", "no command given to run in the guest");
  if (req.argv.length > maxArgs) {
    throw new SkiffError("ERR_SKIFF_USAGE", `too many arguments for the guest agent: ${req.argv.length} (at most ${maxArgs})`);
  }
  const env = Object.entries(req.env ?? {});
  if (env.length > maxEnv) {
    throw new SkiffError("ERR_SKIFF_BAD_ENV", `too many environment variables: ${env.length} (at most ${maxEnv})`);
  }
  const records: string[] = [];
  if (req.user !== undefined) records.push(`u=${field("user", req.user)}`);
  if (req.cwd !== undefined) records.push(`w=${field("working directory", req.cwd)}`);
  if (req.pidfile !== undefined) {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(req.pidfile) || req.pidfile.startsWith(".")) {
      throw new SkiffError("ERR_SKIFF_INTERNAL", `invalid pidfile name: ${JSON.stringify(req.pidfile)}`);
    }
    records.push(`p=${req.pidfile}`);
  }
  for (const [key, value] of env) {
    if (!/^[^=\0]+$/.test(key)) {
      throw new SkiffError("ERR_SKIFF_BAD_ENV", `invalid environment variable name: ${JSON.stringify(key)}`, {
        hint: "a name is non-empty and has no '=' or NUL",
      });
    }
    records.push(`e=${key}=${field(`environment variable ${key}`, value)}`);
  }
  for (const arg of req.argv) records.push(`a=${field("argument", arg)}`);
  const command = execPrefix + Buffer.from(records.join("\0"), "utf8").toString("base64");
  if (command.length > maxCommandLength) {
    throw new SkiffError(
      "ERR_SKIFF_USAGE",
      `command too long for the guest agent: ${command.length} bytes encoded, at most ${maxCommandLength} (about 6.7 KB of arguments and environment)`,
      { hint: "pass a long script on stdin (`sh -s`), or copy it into the VM with `skiff cp` and run the file" },
    );
  }
  return command;
}

function field(what: string, value: string): string {
  if (value.includes("\0")) throw new SkiffError("ERR_SKIFF_USAGE", `${what} contains a NUL byte: ${JSON.stringify(value)}`);
  return value;
}
