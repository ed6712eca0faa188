/**
 * skiff's E2B-shaped SDK: `import { Sandbox } from "skiff/sdk"`. See
 * docs/sdk.md for the API and where it differs from E2B's.
 */
export { Sandbox, defaultSandboxTimeoutMs, type SandboxOpts, type SandboxConnectOpts } from "./sandbox.js";
export { Commands, Pty, defaultCommandTimeoutMs, type CommandRunOpts, type CommandStartOpts, type PtyCreateOpts } from "./commands.js";
export { CommandExitError, CommandHandle, type CommandResult, type ProcessInfo } from "./process.js";
export { Filesystem, defaultMaxReadBytes, type EntryInfo, type FilesOpts, type ReadOpts, type WriteEntry, type WriteInfo } from "./files.js";
export { LocalBackend, type LocalBackendOptions } from "./local.js";
export { RemoteBackend, type RemoteBackendOptions } from "./remote.js";
export type { CreateSandboxRequest, ExecChannel, ExecSink, ExecSpec, ExitStatus, SandboxBackend, SandboxInfo, SnapshotRef } from "./backend.js";
export { SkiffError, type ErrorCode } from "../index.js";
