/**
 * What the host asks the guest to run, and its encoding as an SSH command.
 *
 * skiff-shell (guest/agent.c, parsed by guest/request.c) receives every SSH command. A command of
 * the form `skiff-exec:<base64>` carries NUL-separated records, so argv,
 * env, user and working directory reach execvp() exactly as given, with no
 * shell quoting anywhere on the way.
 */
import { SkiffError } from "../errors.js";
import { checkEnvVar, guestLimits } from "./limits.js";

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

/** The SSH command string that makes skiff-shell run `req`. */
export function encodeExecRequest(req: EncodableRequest): string {
  const command = execPrefix + Buffer.from(execRecords(req).join("\0"), "utf8").toString("base64");
  if (command.length > maxCommandLength) {
    throw new SkiffError(
      "ERR_SKIFF_USAGE",
      `command too long for the guest agent: ${command.length} bytes encoded, at most ${maxCommandLength} (about 6.7 KB of arguments and environment)`,
      { hint: "pass a long script on stdin (`sh -s`), or copy it into the VM with `skiff cp` and run the file" },
    );
  }
  return command;
}

/**
 * `req` as request.c's NUL-separated records, each checked against what
 * the guest takes (a request it would refuse is refused here first).
 */
export function execRecords(req: EncodableRequest): string[] {
  if (req.argv.length === 0) throw new SkiffError("ERR_SKIFF_USAGE", "no command given to run in the guest");
  if (req.argv.length > guestLimits.args) {
    throw new SkiffError("ERR_SKIFF_USAGE", `too many arguments for the guest agent: ${req.argv.length}`, {
      place: "argv",
      hint: `a command takes at most ${guestLimits.args} arguments in the guest: pass the rest on stdin (e.g. to xargs) or in a file (skiff cp)`,
    });
  }
  const env = Object.entries(req.env ?? {});
  if (env.length > guestLimits.env) {
    throw new SkiffError("ERR_SKIFF_BAD_ENV", `too many environment variables for one command: ${env.length}`, {
      place: "env",
      hint: `a command takes at most ${guestLimits.env} variables of its own (-e of exec); the VM's environment (-e of create and run) has no such limit`,
    });
  }
  const records: string[] = [];
  if (req.user !== undefined) {
    if (Buffer.byteLength(req.user) > guestLimits.user) {
      throw new SkiffError("ERR_SKIFF_USAGE", `user too long for the guest agent: ${Buffer.byteLength(req.user)} bytes`, {
        place: "user",
        hint: `a user (name or uid, with :group) has at most ${guestLimits.user} bytes`,
      });
    }
    records.push(`u=${field("user", req.user)}`);
  }
  if (req.cwd !== undefined) records.push(`w=${field("working directory", req.cwd)}`);
  if (req.pidfile !== undefined) {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(req.pidfile) || req.pidfile.startsWith(".")) {
      throw new SkiffError("ERR_SKIFF_INTERNAL", `invalid pidfile name: ${JSON.stringify(req.pidfile)}`);
    }
    records.push(`p=${req.pidfile}`);
  }
  for (const [key, value] of env) {
    checkEnvVar(key, value, "env");
    records.push(`e=${key}=${value}`);
  }
  for (const arg of req.argv) records.push(`a=${field("argument", arg)}`);
  return records;
}

function field(what: string, value: string): string {
  if (value.includes("\0")) throw new SkiffError("ERR_SKIFF_USAGE", `${what} contains a NUL byte: ${JSON.stringify(value)}`);
  return value;
}

/** skiff-detach (guest/helpers.c), which starts `run -d`'s main command in the background. */
export const skiffDetach = "/dev/.skiff/bin/skiff-detach";
/** The longest pidfile name the agent gives a command (agent.ts: agent<port>-<slot>). */
const longestPidfile = "agent15-9999";

/**
 * Refuse at create a main command (entrypoint and command, with the
 * image's defaults) that the guest could not be handed later, however it
 * runs: by init (`skiff up`), in the foreground of `run`, or through
 * skiff-detach (`run -d`, which takes one argument of the guest's limit).
 */
export function checkMainCommand(req: Omit<EncodableRequest, "pidfile" | "env">): void {
  if (req.argv.length === 0) return;
  const most = guestLimits.args - 1;
  if (req.argv.length > most) {
    throw new SkiffError("ERR_SKIFF_USAGE", `too many arguments in the VM's command: ${req.argv.length}`, {
      place: "command",
      hint: `a VM's command (entrypoint and arguments) has at most ${most} arguments in the guest: pass the rest on stdin or in a file`,
    });
  }
  try {
    encodeExecRequest({ ...req, argv: [skiffDetach, ...req.argv], pidfile: longestPidfile });
  } catch (err) {
    if (!(err instanceof SkiffError)) throw err;
    throw new SkiffError(err.code, err.message.replace("for the guest agent", "as the VM's command"), {
      place: err.place === "argv" || err.place === undefined ? "command" : err.place,
      ...(err.hint === undefined ? {} : { hint: err.hint }),
      cause: err,
    });
  }
}
