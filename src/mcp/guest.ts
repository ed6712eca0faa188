/**
 * The half of the policy that needs the guest: which file a program name
 * really is there, and who a user really is in the image. Both are asked
 * with skiff's own static busybox (/dev/.skiff/bin, read-only, outside the
 * image), never with the image's tools, which a caller may have replaced.
 * The answers go to the pure checks in policy.ts.
 */
import { SkiffError } from "../pure.js";
import type { AgentConnection } from "../index.js";
import { checkResolvedBinary, checkResolvedUser, type Refusal, type VmRule } from "./policy.js";

export const busybox = "/dev/.skiff/bin/busybox";

/**
 * $1 is the program (a bare name or an absolute path): where the VM's PATH
 * (the agent's environment, the same the command gets; relative entries
 * skipped) finds it, then that path with every symlink resolved. A walk of
 * its own: busybox's `command -v` answers an applet's bare name. Run as the command's user: what that
 * user's lookup finds is what the command would run.
 */
const resolveScript = `case $1 in
/*) p=$1 ;;
*) p=; IFS=:; for d in $PATH; do case $d in /*) if [ -f "$d/$1" ] && [ -x "$d/$1" ]; then p=$d/$1; break; fi ;; esac; done ;;
esac
[ -n "$p" ] && [ -f "$p" ] && [ -x "$p" ] || exit 3
printf '%s\\n' "$p"; ${busybox} readlink -f -- "$p"`;

export interface Resolved {
  /** The program's path: what to exec, so that it is the file that was checked. */
  path: string;
}

/** allow_binaries in the guest; the path to run, or the refusal. */
export async function resolveProgram(conn: AgentConnection, program: string, user: string | undefined): Promise<Resolved | Refusal> {
  const name = program.slice(program.lastIndexOf("/") + 1);
  const r = await conn.run([busybox, "sh", "-c", resolveScript, "resolve", program], { ...(user === undefined ? {} : { user }), timeoutMs: 20_000 });
  const [found = "", real = ""] = r.stdout.split("\n");
  if (r.code !== 0) return checkResolvedBinary(name, "", "") ?? { reason: `${name} was not found`, hint: "" };
  return checkResolvedBinary(name, found, real) ?? { path: found };
}

/** deny_root in the guest: the user's uid and gid as the image's own files say. */
export async function checkUserInGuest(conn: AgentConnection, user: string): Promise<Refusal | undefined> {
  const read = async (file: string) => {
    const r = await conn.run([busybox, "cat", file], { timeoutMs: 20_000 });
    if (r.code !== 0 && file === "/etc/passwd") throw new SkiffError("ERR_SKIFF_GUEST_COMMAND", `cannot read ${file} in the guest: ${r.stderr.trim()}`);
    return r.code === 0 ? r.stdout : "";
  };
  return checkResolvedUser(user, await read("/etc/passwd"), await read("/etc/group"));
}

/** Both guest checks a command needs under `rule`; the argv to run (argv[0] resolved). */
export async function guestChecks(conn: AgentConnection, rule: VmRule, argv: readonly string[], user: string | undefined): Promise<string[] | Refusal> {
  if (rule.denyRoot === true && user !== undefined) {
    const refused = await checkUserInGuest(conn, user);
    if (refused !== undefined) return refused;
  }
  if (rule.allowBinaries === undefined) return [...argv];
  const resolved = await resolveProgram(conn, argv[0]!, user);
  return "reason" in resolved ? resolved : [resolved.path, ...argv.slice(1)];
}

export function isRefusal(v: unknown): v is Refusal {
  return typeof v === "object" && v !== null && "reason" in v && "hint" in v;
}
