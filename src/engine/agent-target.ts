/**
 * How to reach a VM's guest: its agent ports on virtio-serial, or a cloud
 * image's own sshd on its loopback forward, and what a connection needs
 * (keys, locks). Apart from ready.ts, which waits for a boot and pulls in
 * the launch code: a one-shot `skiff exec` loads only this (loading
 * ready.ts's chain was ~45 ms of every exec).
 */
import type { TcpTarget } from "../guest/agent-session.js";
import type { AgentConnectOptions } from "../guest/agent.js";
import type { MachineSpec } from "../spec/machine.js";
import type { VmRecord } from "../store/store.js";
import { readHostPublicKey } from "./keys.js";

export interface SshEndpoint {
  host: string;
  port: number;
  user: string;
}

/** A cloud image's own sshd, forwarded to loopback, and the user skiff logs in as; undefined for a microVM (its agent is on virtio-serial). */
export function sshEndpoint(spec: MachineSpec): SshEndpoint | undefined {
  return spec.boot?.kind === "cloud" ? { host: "127.0.0.1", port: spec.boot.sshPort, user: spec.boot.sshUser } : undefined;
}

/** How to reach a VM's guest: the agent ports, or SSH over the forward for a cloud image. */
export function sessionTarget(record: VmRecord): { tcp?: TcpTarget } {
  const ssh = sshEndpoint(record.config.spec);
  return ssh === undefined ? {} : { tcp: { host: ssh.host, port: ssh.port, username: ssh.user, maxSessions: 4 } };
}

/** What every connection to a VM's guest needs, whichever channel it takes. */
export async function connectionOptions(record: VmRecord, home: string): Promise<AgentConnectOptions> {
  return {
    socketPaths: record.paths.agentSockets,
    lockPrefix: `vm-${record.id}`,
    home,
    privateKeyPath: record.paths.sshKey,
    hostPublicKey: await readHostPublicKey(record.paths),
    vmName: record.name,
    ...sessionTarget(record),
  };
}
