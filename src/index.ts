/**
 * skiff as a library: `import { Skiff } from "skiff"`. This is the one door
 * into the library for every front end (the CLI, src/project, the API
 * server, the SDK): they import nothing else under src/ but src/pure.ts,
 * the part of this API that loads no engine (.dependency-cruiser.cjs checks
 * it). What is exported here as a value is loaded by `new Skiff()` anyway,
 * or loads its modules when called: importing this file must cost no more
 * than `skiff ps` (docs/benchmarks.md, "CLI start").
 */
export * from "./pure.js";
export {
  Skiff,
  type CreateOptions,
  type ExecOnceResult,
  type ForkOptions,
  type SkiffOptions,
  type SnapshotCreateOptions,
  type StartOptions,
} from "./engine/skiff.js";
export type { CopyOnceOptions, MainRequest, MountRequest, RunVmOptions, RunVmResult, VolumeCreateOptions, VolumeInfo, VolumeUser } from "./engine/skiff.js";
export type { ExecSession, ImagesClient, NetworksClient, SkiffClient, VolumesClient } from "./engine/client.js";
export type { LogOptions } from "./engine/logs.js";
export type { CopyConnection } from "./engine/oneshot.js";
export type { ConsoleStream } from "./engine/console.js";
export type { ImageService, ImagePullOptions } from "./engine/services/images.js";
export type { NetworkService } from "./engine/services/networks.js";
export type { VolumeService } from "./engine/services/volumes.js";
export type { LayerService, LayerListing } from "./engine/services/layers.js";
export type { VmService } from "./engine/services/vms.js";
export type { SnapshotService } from "./engine/services/snapshots.js";
export type { KernelService, KernelListing, KernelBuildRequest } from "./engine/services/kernels.js";
export type { BuiltKernel } from "./kernel/built.js";
export type { SnapshotInfo } from "./snapshot/service.js";
export type { RestoreOptions } from "./snapshot/restore.js";
export type { BuildLayersOptions, BuildLayersResult } from "./engine/layers.js";
export type { LayerEvent } from "./layer/events.js";
export type { LayerSpec } from "./layer/schema.js";
export type { VmInfo } from "./engine/info.js";
export type { BrokenVmInfo } from "./engine/broken.js";
export type { RunState } from "./engine/status.js";
export type { ProgressEvent, Phase, SkiffEvents } from "./engine/events.js";
export type { DoctorReport, DoctorCheck } from "./engine/doctor.js";
export type { AgentConnection, CopyOptions, CopyReport, ExecIO, ExecOptions, ExecRequest, ExecResult, PtyOptions, RunOptions, RunningExec, WindowSize } from "./guest/agent.js";
export type { GuestStat } from "./guest/agent-files.js";
export type { ImageSummary, DiskUsage } from "./engine/images.js";
export type { PullEvent } from "./image/oci/types.js";
export type { NetworkCreateOptions, NetworkInfo, NetworkMember } from "./engine/networks.js";
export type { NetworkRequest } from "./engine/vm-network.js";
export type { NetworkDriver, NetworkRecord } from "./network/types.js";
export type { Capture, CaptureOptions, CaptureSummary } from "./engine/capture.js";
export type { ForwardInfo } from "./engine/ports.js";
export type { SshEndpoint } from "./engine/agent-target.js";
export type { SshStream } from "./engine/proxy.js";
export type { AutostartTarget, AutostartUnit } from "./engine/autostart.js";
export type { VmRecord } from "./store/store.js";
export type { LoadProjectOptions } from "./config/load.js";

// Values whose modules `new Skiff()` loads already.
export { pausedLabel, vmPaused } from "./engine/pause.js";
export { parseEgress } from "./network/egress.js";
export { parseIpv4 } from "./network/ipam.js";
export { formatForward, parsePublish } from "./network/ports.js";
export { validateNetworkName } from "./network/names.js";

// Project files: each loads its parsers when called.
export { loadProject, renderProject, skiffJsonSchema, toYaml } from "./config/project-files.js";

import type { DoctorReport } from "./engine/doctor.js";
import type { VmInfo } from "./engine/info.js";
import type { Runner } from "./process/runner.js";
import type { CopyConnection, CopyOnceOptions } from "./engine/oneshot.js";
import type { CopyReport } from "./guest/agent.js";

/** The host's checks (QEMU, kernel, KVM or TCG, the jail); `Skiff.doctor()` for a skiff's own. Loaded when called. */
export async function runDoctor(opts: { cacheDir: string; home: string; runner: Runner; vms: VmInfo[] }): Promise<DoctorReport> {
  return (await import("./engine/doctor.js")).runDoctor(opts);
}

/**
 * `docker cp` over any connection that runs guest commands with streams
 * (the HTTP client's exec WebSocket, an agent connection): the same copy
 * as Skiff.cp, loaded when first used.
 */
export async function copyOver(
  connect: (vm: string) => Promise<CopyConnection>,
  src: string,
  dst: string,
  opts: CopyOnceOptions = {},
): Promise<CopyReport | undefined> {
  const { copyOnce } = await import("./engine/oneshot.js");
  return copyOnce(connect, src, dst, opts);
}
