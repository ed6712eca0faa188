/**
 * skiff as a library: `import { Skiff } from "skiff"`.
 */
export {
  Skiff,
  type CreateOptions,
  type ExecOnceResult,
  type ForkOptions,
  type SkiffOptions,
  type SnapshotCreateOptions,
  type StartOptions,
  type VolumeCreateOptions,
  type VolumeInfo,
} from "./engine/skiff.js";
export type { NetworkCreateOptions, NetworkInfo } from "./engine/networks.js";
export type { ImageSummary } from "./engine/images.js";
export type { PullEvent } from "./image/oci/types.js";
export type { SnapshotInfo } from "./snapshot/service.js";
export type { RestoreOptions } from "./snapshot/restore.js";
export type { BuildLayersOptions, BuildLayersResult } from "./engine/layers.js";
export type { LayerEvent } from "./layer/events.js";
export type { LayerSpec } from "./layer/schema.js";
export type { VmInfo } from "./engine/info.js";
export type { BrokenVmInfo } from "./engine/broken.js";
export type { RunState } from "./engine/status.js";
export type { ProgressEvent, Phase, SkiffEvents } from "./engine/events.js";
export { runDoctor, type DoctorReport, type DoctorCheck } from "./engine/doctor.js";
export type { AgentConnection, CopyOptions, CopyReport, ExecIO, ExecOptions, ExecRequest, ExecResult, PtyOptions, RunOptions, RunningExec, WindowSize } from "./guest/agent.js";
export { SkiffError, ExitCode, errorCodes, type ErrorCode } from "./errors.js";
export type { MachineSpec, NetworkSpec, PortForward } from "./spec/machine.js";
export { createMcpServer, loadPolicyFile, policyOfProject, parsePolicy, emptyPolicy, toolNames, serveStdio, type McpServerOptions, type McpPolicy, type VmRule } from "./mcp/index.js";
