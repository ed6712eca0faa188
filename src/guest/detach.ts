/**
 * `run -d IMAGE CMD`: the VM's main command, started in the background of the
 * guest so it outlives the SSH channel, its output on the serial console
 * where `skiff logs` shows it.
 *
 * Through skiff's agent, skiff-detach (skiff-init) puts it in a session of its
 * own. A cloud image has no agent: its systemd runs it as the transient
 * service `skiff-main` (`systemd-run`, as the SSH user, in its home or the
 * given directory), with stdout and stderr going to the journal and the
 * console, so `journalctl -u skiff-main` and `systemctl status skiff-main`
 * work too.
 */
import { SkiffError } from "../errors.js";
import type { AgentConnection } from "./agent.js";
import { skiffDetach, type ExecRequest } from "./exec-request.js";

/** The transient unit a cloud image's main command runs in. */
export const cloudMainUnit = "skiff-main";

/**
 * Guest side on a cloud image: check the command and systemd-run exist (as
 * the SSH user, with its PATH), then hand the command to systemd as root.
 * $@: systemd-run's own options, `--`, the command.
 */
const systemdRunScript = `
for a; do [ "$seen" = 1 ] && { cmd=$a; break; }; [ "$a" = -- ] && seen=1; done
command -v "$cmd" >/dev/null 2>&1 || { echo "$cmd: command not found" >&2; exit 127; }
command -v systemd-run >/dev/null 2>&1 || { echo "systemd-run: not found: the image has no systemd" >&2; exit 126; }
exec sudo -n systemd-run --quiet --unit=${cloudMainUnit} -p Type=exec -p User="$(id -un)" -p WorkingDirectory="$PWD" \\
  -p StandardOutput=journal+console -p StandardError=journal+console "$@"
`;

function detachRequest(conn: AgentConnection, req: Omit<ExecRequest, "tty">): Omit<ExecRequest, "tty"> {
  if (conn.sshUser === undefined) return { ...req, argv: [skiffDetach, ...req.argv] };
  // sudo drops the environment: systemd gets it explicitly.
  const setenv = Object.entries(req.env ?? {}).map(([k, v]) => `--setenv=${k}=${v}`);
  const { env: _env, ...rest } = req;
  return { ...rest, argv: ["sh", "-c", systemdRunScript, "skiff-detach", ...setenv, "--", ...req.argv] };
}

/** Start `req` detached in the guest; resolves once it runs (not when it ends). */
export async function startDetached(conn: AgentConnection, req: Omit<ExecRequest, "tty">): Promise<void> {
  const { argv, ...rest } = detachRequest(conn, req);
  const r = await conn.run(argv, { ...rest, timeoutMs: 60_000 });
  if (r.code !== 0) {
    throw new SkiffError(r.code === 127 ? "ERR_SKIFF_USAGE" : "ERR_SKIFF_AGENT", `cannot start the command in the background: ${r.stderr.trim()}`, {
      place: req.argv.join(" "),
      hint: r.code === 126 ? "run -d without a command, then start it with `skiff exec NAME sh -c 'nohup CMD &'`" : "check the command's name and that the image has it",
    });
  }
}
