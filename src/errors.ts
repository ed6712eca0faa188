/**
 * The one error type of skiff. Every failure a user can cause or meet has a
 * stable code, a message saying what failed and with which value, and a hint
 * saying what to do next. The CLI prints these cleanly; anything that is not
 * a SkiffError is a bug and is printed with its stack.
 */

/** Process exit codes of the CLI (documented in docs/cli.md). */
export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  notFound: 3,
  conflict: 4,
  host: 5,
  guest: 6,
  timeout: 7,
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Every error code skiff raises, with the exit code it maps to. */
export const errorCodes = {
  ERR_SKIFF_USAGE: ExitCode.usage,
  ERR_SKIFF_BAD_MEMORY: ExitCode.usage,
  ERR_SKIFF_BAD_CPUS: ExitCode.usage,
  ERR_SKIFF_BAD_ENV: ExitCode.usage,
  ERR_SKIFF_BAD_NAME: ExitCode.usage,
  ERR_SKIFF_BAD_SIGNAL: ExitCode.usage,
  ERR_SKIFF_BAD_PATH: ExitCode.usage,
  ERR_SKIFF_BAD_DURATION: ExitCode.usage,
  /** `skiff mcp`: a tool call its access policy refuses (hide_tools, allow_tools, allow_binaries, deny_root). */
  ERR_SKIFF_POLICY: ExitCode.usage,
  ERR_SKIFF_LOCAL_ONLY: ExitCode.usage,
  /** `skiff mcp`: a VM named by an address or hostname that more than one VM has. */
  ERR_SKIFF_VM_AMBIGUOUS: ExitCode.usage,
  /** A project file (skiff.yml, pontoon.yml, VMFile.kdl, compose.yaml) or layer.yml that is invalid; place is file:line:column. */
  ERR_SKIFF_CONFIG: ExitCode.usage,
  /** A tar, layer or image archive that cannot be read (corrupt, truncated, unsupported). */
  ERR_SKIFF_BAD_ARCHIVE: ExitCode.usage,
  ERR_SKIFF_BAD_IMAGE_REF: ExitCode.usage,
  ERR_SKIFF_AUTH: ExitCode.usage,
  /** `skiff serve` over TCP: a request without the bearer token, or with another one. */
  ERR_SKIFF_UNAUTHORIZED: ExitCode.usage,
  /** `skiff serve`: a request body past the server's limit. */
  ERR_SKIFF_TOO_LARGE: ExitCode.usage,
  ERR_SKIFF_IMAGE_NOT_FOUND: ExitCode.notFound,
  ERR_SKIFF_VM_NOT_FOUND: ExitCode.notFound,
  ERR_SKIFF_FILE_NOT_FOUND: ExitCode.notFound,
  ERR_SKIFF_NETWORK_NOT_FOUND: ExitCode.notFound,
  ERR_SKIFF_VOLUME_NOT_FOUND: ExitCode.notFound,
  /** No skiff.yml (or other project file) in this directory or above it. */
  ERR_SKIFF_PROJECT_NOT_FOUND: ExitCode.notFound,
  /** A layer named in a project that no search path has. */
  ERR_SKIFF_LAYER_NOT_FOUND: ExitCode.notFound,
  ERR_SKIFF_PLATFORM: ExitCode.notFound,
  ERR_SKIFF_SNAPSHOT_NOT_FOUND: ExitCode.notFound,
  /** A kernel reference (`--kernel`, `kernel:`, `skiff kernel use|rm`) that names no built kernel. */
  ERR_SKIFF_KERNEL_NOT_FOUND: ExitCode.notFound,
  ERR_SKIFF_NAME_IN_USE: ExitCode.conflict,
  ERR_SKIFF_VM_NOT_RUNNING: ExitCode.conflict,
  ERR_SKIFF_VM_RUNNING: ExitCode.conflict,
  ERR_SKIFF_VM_BUSY: ExitCode.conflict,
  /** The VM's guest is paused (`skiff pause`, or QEMU stopped it when the host's disk filled up). */
  ERR_SKIFF_VM_PAUSED: ExitCode.conflict,
  /** An address a VM asked for (--ip) is outside its network, the gateway, or held by another VM. */
  ERR_SKIFF_ADDRESS_IN_USE: ExitCode.conflict,
  /** Overlapping subnets, a bridge name a host interface has, a link network with two VMs, a network VMs still use. */
  ERR_SKIFF_NETWORK_CONFLICT: ExitCode.conflict,
  /** A host port a forward (-p) wants is taken. */
  ERR_SKIFF_PORT_IN_USE: ExitCode.conflict,
  /** A volume a VM still uses (rm without -f), or a volume name taken. */
  ERR_SKIFF_VOLUME_IN_USE: ExitCode.conflict,
  /** A snapshot VMs still stand on (their disks are backed by it): `snapshot rm` without -f. */
  ERR_SKIFF_SNAPSHOT_IN_USE: ExitCode.conflict,
  /** A VM skiff cannot snapshot: bind mounts (9p blocks migration), named volumes, a cloud image. */
  ERR_SKIFF_SNAPSHOT_UNSUPPORTED: ExitCode.conflict,
  /** A snapshot (or hibernated state) made with another QEMU, guest kernel, skiff or snapshot format. */
  ERR_SKIFF_SNAPSHOT_MISMATCH: ExitCode.conflict,
  /** A built kernel VMs or snapshots still boot (`skiff kernel rm`). */
  ERR_SKIFF_KERNEL_IN_USE: ExitCode.conflict,
  ERR_SKIFF_QEMU_MISSING: ExitCode.host,
  ERR_SKIFF_KERNEL_MISSING: ExitCode.host,
  /** `skiff kernel build`: the source lacks an option skiff needs, or make failed. */
  ERR_SKIFF_KERNEL_BUILD: ExitCode.host,
  ERR_SKIFF_TOOL_MISSING: ExitCode.host,
  ERR_SKIFF_TOOL_FAILED: ExitCode.host,
  ERR_SKIFF_PATH_TOO_LONG: ExitCode.host,
  ERR_SKIFF_STATE_CORRUPT: ExitCode.host,
  ERR_SKIFF_HOST: ExitCode.host,
  /** skiff's home (or cache) is not private to its user: others could take or block its locks. */
  ERR_SKIFF_UNSAFE_HOME: ExitCode.host,
  /** A root-only mode (bridge networks) asked for without root. */
  ERR_SKIFF_NEEDS_ROOT: ExitCode.host,
  /** The disk (or quota) holding the cache filled up. */
  ERR_SKIFF_NO_SPACE: ExitCode.host,
  ERR_SKIFF_REGISTRY: ExitCode.host,
  ERR_SKIFF_DIGEST_MISMATCH: ExitCode.host,
  ERR_SKIFF_QEMU_FAILED: ExitCode.guest,
  ERR_SKIFF_BOOT_FAILED: ExitCode.guest,
  /** QEMU's migration to a file failed while taking a snapshot (the VM runs on). */
  ERR_SKIFF_SNAPSHOT_FAILED: ExitCode.guest,
  /** QEMU could not load a snapshot's or a hibernated VM's state (`start --cold` boots from the disk). */
  ERR_SKIFF_RESTORE_FAILED: ExitCode.guest,
  ERR_SKIFF_AGENT: ExitCode.guest,
  /** A running guest refused, or did not answer, the new identity it was sent (a VM restored from a snapshot); the guest's reason is in the message. */
  ERR_SKIFF_IDENTITY: ExitCode.guest,
  ERR_SKIFF_COPY_FAILED: ExitCode.guest,
  /** An archive from a guest (`cp` out of a VM) with an entry that would land outside the destination or write through a link. */
  ERR_SKIFF_COPY_UNSAFE: ExitCode.guest,
  ERR_SKIFF_QMP: ExitCode.guest,
  /** A command skiff runs in a guest for itself (e.g. `ps` for top) failed; the guest's words are in the message. */
  ERR_SKIFF_GUEST_COMMAND: ExitCode.guest,
  /** A layer's package install, config copy or run step failed in the build VM. */
  ERR_SKIFF_BUILD_FAILED: ExitCode.guest,
  /** The SDK: a guest sent more than the caller's bound (a file read, a directory listing). */
  ERR_SKIFF_OUTPUT_TOO_LARGE: ExitCode.guest,
  /** A provision step exited non-zero; the step, command and exit code are in the message. */
  ERR_SKIFF_PROVISION_FAILED: ExitCode.guest,
  /** A service's healthcheck did not pass within its retries. */
  ERR_SKIFF_UNHEALTHY: ExitCode.guest,
  ERR_SKIFF_TIMEOUT: ExitCode.timeout,
  ERR_SKIFF_LOCKED: ExitCode.timeout,
  ERR_SKIFF_INTERNAL: ExitCode.internal,
} as const;
export type ErrorCode = keyof typeof errorCodes;

export interface SkiffErrorOptions {
  hint?: string;
  /** Where the bad input came from: a flag (`--memory`), a file:line, a VM name. */
  place?: string;
  cause?: unknown;
  /** Extra machine-readable facts, printed with --json. */
  details?: Record<string, unknown>;
}

export class SkiffError extends Error {
  override readonly name = "SkiffError";
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly place: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: SkiffErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.place = options.place;
    this.details = options.details;
  }

  get exitCode(): ExitCode {
    return errorCodes[this.code];
  }

  toJSON(): Record<string, unknown> {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.place === undefined ? {} : { place: this.place }),
        ...(this.hint === undefined ? {} : { hint: this.hint }),
        ...(this.details === undefined ? {} : { details: this.details }),
      },
    };
  }
}

export function isSkiffError(err: unknown): err is SkiffError {
  return err instanceof SkiffError;
}

/** errno code of a Node system error, if it is one. */
export function errnoOf(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}
