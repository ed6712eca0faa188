/**
 * The part of the public API that loads no engine (no Skiff, VM store,
 * SSH, QEMU or package): the error type, units, parsers of values users
 * type, and the small helpers a front end needs. src/index.ts re-exports
 * all of it. A front end that starts often (the CLI: `--help` must not
 * load the engine, docs/benchmarks.md "CLI start") imports these
 * statically from here and the rest lazily from index.ts. Nothing here may
 * import a module that does I/O or loads a package when imported
 * (test/unit/cli-start.test.ts checks what starting the CLI loads).
 */
export { SkiffError, ExitCode, errorCodes, errnoOf, isSkiffError, type ErrorCode, type SkiffErrorOptions } from "./errors.js";
export {
  checkMemoryMiB,
  formatAge,
  formatBytes,
  formatDuration,
  hostMemoryMiB,
  maxCpus,
  minMemoryMiB,
  parseCpus,
  parseDiskSize,
  parseDuration,
  parseEnv,
  parseEnvList,
  parseMemory,
  parseSignal,
  type Signal,
} from "./util/units.js";
export { closest, editDistance } from "./util/closest.js";
export { packageRoot, skiffVersion } from "./util/package-root.js";
export { restrictUserNetByDefault, type MachineSpec, type NetworkSpec, type PortForward, type RestartPolicy } from "./spec/machine.js";
export type { EgressRequest } from "./network/egress.js";
export { shellQuote } from "./guest/shell-command.js";
/** The guest helper that runs a command detached from its session (vm_exec_bg, run -d). */
export { skiffDetach } from "./guest/exec-request.js";
export { guestProcesses, type TopConnection } from "./guest/top.js";
/** A guest signal by name or number (`TERM`, `SIGTERM`, `15`) → its name and number. */
export { parseSignal as parseGuestSignal } from "./guest/agent-exec.js";
export { defaultSuite } from "./image/bootstrap-args.js";
export { endChildren } from "./process/children.js";
/** Test hook: `SKIFF_TEST_CRASH_AT=<point>` SIGKILLs the process there; inert unless set. */
export { crashPoint } from "./util/crash-point.js";
/** QEMU runs: the guest runs, or is paused. */
export { qemuRuns } from "./engine/status.js";
/** The names of the files in a VM's directory (its console log and socket, …). */
export { vmFiles } from "./store/vmdir.js";
export { skiffHome } from "./store/paths.js";
/** The fields of a ServiceSpec a project file left unsaid (skiff serve fills a project known only by its VMs' labels with them). */
export { serviceBlanks } from "./config/foreign.js";
export { discoverProjectFiles } from "./config/discover.js";
