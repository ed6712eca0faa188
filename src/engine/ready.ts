/**
 * When a booted VM counts as ready: its guest channel answers (the agent
 * ports, or SSH over the loopback forward for a cloud image), and for a cloud
 * image, cloud-init has finished too.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { SkiffError } from "../errors.js";
import { waitForAgent, type AgentConnection } from "../guest/agent.js";
import { identityAlive, type ProcessIdentity } from "../process/pid.js";
import type { VmRecord } from "../store/store.js";
import { connectionOptions } from "./agent-target.js";
import { bootFailureReason } from "./launch.js";

/** Wait until a just-started VM is ready; the connection is closed again. */
export async function waitBooted(opts: { record: VmRecord; identity: ProcessIdentity; home: string; timeoutMs: number }): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let conn = await waitReady(opts.record, opts.identity, opts.home, opts.timeoutMs);
  if (opts.record.config.spec.boot?.kind === "cloud") conn = await waitCloudInit({ ...opts, first: conn, deadline });
  await conn.close();
}

/**
 * A cloud image's sshd answers before cloud-init is done (and may be
 * restarted by it): ready means cloud-init's boot-finished marker exists.
 */
async function waitCloudInit(opts: {
  record: VmRecord;
  identity: ProcessIdentity;
  home: string;
  first: AgentConnection;
  deadline: number;
}): Promise<AgentConnection> {
  const { record, deadline } = opts;
  let conn = opts.first;
  for (;;) {
    try {
      const r = await conn.run(["test", "-f", "/var/lib/cloud/instance/boot-finished"], { timeoutMs: 15_000 });
      if (r.code === 0) return conn;
    } catch {
      await conn.close().catch(() => undefined);
      conn = await waitReady(record, opts.identity, opts.home, Math.max(1_000, deadline - Date.now()));
    }
    if (Date.now() >= deadline) {
      await conn.close().catch(() => undefined);
      throw new SkiffError("ERR_SKIFF_BOOT_FAILED", `cloud-init did not finish on ${record.name} in time`, {
        hint: `see \`skiff logs ${record.name}\`; raise SKIFF_BOOT_TIMEOUT_MS on a slow host`,
        place: record.name,
      });
    }
    await sleep(1_000);
  }
}

async function waitReady(record: VmRecord, identity: ProcessIdentity, home: string, timeoutMs: number): Promise<AgentConnection> {
  const abort = new AbortController();
  const watchdog = (async () => {
    // QEMU dying during boot must end the wait at once, not at the deadline.
    while (!abort.signal.aborted) {
      if (!identityAlive(identity)) {
        abort.abort();
        return;
      }
      await sleep(100);
    }
  })();
  try {
    return await waitForAgent({ ...(await connectionOptions(record, home)), timeoutMs, signal: abort.signal });
  } catch (err) {
    if (!identityAlive(identity)) {
      const why = await bootFailureReason(record.paths.consoleLog);
      throw new SkiffError("ERR_SKIFF_BOOT_FAILED", `${record.name} stopped while booting${why === undefined ? "" : `: ${why}`}`, {
        hint: `see the console log: \`skiff logs ${record.name}\``,
        place: record.name,
        cause: err,
      });
    }
    throw err;
  } finally {
    abort.abort();
    await watchdog;
  }
}
