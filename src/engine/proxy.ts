/**
 * A raw byte stream to a VM's SSH server, for `skiff proxy` (ssh's
 * ProxyCommand) and any front end that relays SSH: a cloud image's sshd on
 * its loopback forward, or a free agent port, greeted, whose lock is held
 * until the stream is released.
 */
import type { Socket } from "node:net";
import { errnoOf, SkiffError } from "../errors.js";
import type { VmRecord } from "../store/store.js";

export interface SshStream {
  socket: Socket;
  /** Let go of the agent port (after the socket closed). */
  release(): Promise<void>;
}

export async function openSshStream(record: VmRecord, home: string): Promise<SshStream> {
  const { sshEndpoint } = await import("./agent-target.js");
  const ssh = sshEndpoint(record.config.spec);
  if (ssh !== undefined) return { socket: await tcpConnect(ssh.host, ssh.port, record.name), release: async () => undefined };
  const [{ agentHandshake }, { tryLock }] = await Promise.all([import("../guest/agent-handshake.js"), import("../store/lock.js")]);
  for (const [i, path] of record.paths.agentSockets.entries()) {
    const lock = await tryLock(`vm-${record.id}-agent-${i}`, { home, purpose: "ssh proxy" });
    if (lock === undefined) continue;
    const greeting = await agentHandshake(path, { budgetMs: 3_000 });
    if (greeting.kind !== "ready") {
      await lock.release();
      continue;
    }
    return { socket: greeting.socket, release: () => lock.release() };
  }
  throw new SkiffError("ERR_SKIFF_AGENT", `no free agent port answered on ${record.name}`, { hint: `check \`skiff logs ${record.name}\``, place: record.name });
}

/** A cloud VM's sshd on its loopback forward. */
async function tcpConnect(host: string, port: number, name: string): Promise<Socket> {
  const { connect } = await import("node:net");
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port });
    sock.once("connect", () => resolve(sock));
    sock.once("error", (err) =>
      reject(
        new SkiffError("ERR_SKIFF_AGENT", `cannot reach ${name}'s sshd on ${host}:${port}: ${errnoOf(err) ?? err.message}`, {
          hint: `check \`skiff logs ${name}\``,
          place: name,
          cause: err,
        }),
      ),
    );
  });
}
