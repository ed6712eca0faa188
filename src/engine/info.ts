/**
 * VmInfo: what `ps` and `inspect` show, assembled from config, state and
 * the observed status.
 */
import type { NetworkSpec } from "../spec/machine.js";
import type { VmRecord } from "../store/store.js";
import { interfacesOf, type VmInterface } from "../network/guest.js";
import { formatForward } from "../network/ports.js";
import type { ExitRecord, VmState } from "../store/vmdir.js";
import type { ObservedStatus, RunState } from "./status.js";
import type { PauseReason } from "./pause.js";

export interface VmInfo {
  id: string;
  name: string;
  image: string;
  imageDigest: string | undefined;
  state: RunState;
  /** Why a paused VM's guest does not run: `user` (skiff pause), `disk full` (the host's disk filled up), … */
  pauseReason: PauseReason | undefined;
  pid: number | undefined;
  cpus: number;
  memoryMiB: number;
  /** The guest kernel it boots (made at create: `--kernel`, `skiff kernel use`); undefined for a cloud image, which boots its own. */
  kernel: { version: string; path: string } | undefined;
  hostname: string;
  createdAt: string;
  startedAt: string | undefined;
  accel: string | undefined;
  network: NetworkSpec;
  /** "127.0.0.1:8080->80/tcp", docker's notation. */
  ports: string[];
  /** The guest's NICs in order: user networking's eth0, then one per named network. */
  interfaces: VmInterface[];
  env: Record<string, string>;
  entrypoint: string[];
  command: string[];
  user: string | undefined;
  workingDir: string | undefined;
  /** A cloud image's SSH user: commands go through the image's own sshd as this user (undefined: skiff's guest agent). */
  sshUser: string | undefined;
  exposedPorts: string[];
  autoRemove: boolean;
  labels: Record<string, string>;
  exit: ExitRecord | undefined;
  /** `stop --hibernate`: when its memory was saved; the next start resumes from it. */
  hibernatedAt: string | undefined;
  /** The snapshot its disk stands on (restored, forked, or started from a boot snapshot), by id. */
  snapshot: string | undefined;
  dir: string;
  consoleLog: string;
}

export function formatPorts(network: NetworkSpec): string[] {
  if (network.mode !== "user") return [];
  return network.forwards.map(formatForward);
}

export function toVmInfo(record: VmRecord, state: VmState, status: ObservedStatus, paused?: PauseReason): VmInfo {
  const spec = record.config.spec;
  return {
    id: record.id,
    name: record.name,
    image: spec.image,
    imageDigest: record.config.image?.digest,
    state: status.state === "running" && paused !== undefined ? "paused" : status.state,
    pauseReason: status.state === "running" ? paused : undefined,
    pid: status.pid,
    cpus: spec.cpus,
    memoryMiB: spec.memoryMiB,
    kernel: spec.boot?.kind === "cloud" || record.config.kernel === undefined ? undefined : { version: record.config.kernel.version, path: record.config.kernel.path },
    hostname: spec.hostname,
    createdAt: record.config.createdAt,
    startedAt: state.startedAt,
    accel: state.accel,
    sshUser: spec.boot?.kind === "cloud" ? spec.boot.sshUser : undefined,
    network: spec.network,
    ports: [...formatPorts(spec.network), ...(status.state === "running" ? (state.forwards ?? []).map(formatForward) : [])],
    interfaces: interfacesOf(spec),
    env: spec.env,
    entrypoint: spec.entrypoint ?? [],
    command: spec.command,
    user: spec.user,
    workingDir: spec.workingDir,
    exposedPorts: spec.exposedPorts ?? [],
    autoRemove: spec.autoRemove,
    labels: spec.labels,
    exit: status.state === "running" ? undefined : state.exit,
    hibernatedAt: status.state === "running" ? undefined : state.hibernated?.at,
    snapshot: record.config.snapshot?.id,
    dir: record.paths.dir,
    consoleLog: record.paths.consoleLog,
  };
}
