/**
 * ExecRequest -> one POSIX shell command line, for guests without skiff's
 * agent (cloud images reached over their own sshd): `cd DIR && export K=V &&
 * exec ARGV`, every word single-quoted. Runs as the SSH user (the image's
 * default user); another user is refused rather than guessed with sudo.
 */
import { SkiffError } from "../errors.js";
import type { ExecRequest } from "./exec-request.js";

export function shellQuote(word: string): string {
  if (word.includes("\0")) throw new SkiffError("ERR_SKIFF_USAGE", `argument contains a NUL byte: ${JSON.stringify(word)}`);
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

export function shellCommand(req: Omit<ExecRequest, "tty">, sshUser: string): string {
  if (req.argv.length === 0) throw new SkiffError("ERR_SKIFF_USAGE", "no command given to run in the guest");
  if (req.user !== undefined && req.user !== sshUser) {
    throw new SkiffError("ERR_SKIFF_USAGE", `commands on this VM run as its default user ${sshUser}, not ${req.user}`, {
      hint: "a cloud image is reached over its own sshd as the default user: use `sudo` in the command",
    });
  }
  const parts: string[] = [];
  if (req.cwd !== undefined) parts.push(`cd ${shellQuote(req.cwd)}`);
  for (const [key, value] of Object.entries(req.env ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw new SkiffError("ERR_SKIFF_BAD_ENV", `invalid environment variable name for a shell: ${JSON.stringify(key)}`);
    }
    parts.push(`export ${key}=${shellQuote(value)}`);
  }
  parts.push(`exec ${req.argv.map(shellQuote).join(" ")}`);
  return parts.join(" && ");
}
