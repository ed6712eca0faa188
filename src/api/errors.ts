/**
 * Errors on the wire: a SkiffError becomes `{code, message, hint, field,
 * details}` with an HTTP status, and the client turns that body back into
 * the same SkiffError, so a caller cannot tell a remote failure from a
 * local one. The status follows the error's exit code (docs/cli.md), with
 * the few codes HTTP has a closer word for.
 */
import { ExitCode, SkiffError, errorCodes, type ErrorCode } from "../pure.js";

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  hint?: string;
  /** The input the error is about: a body field (`memory`), a path parameter, a VM name. */
  field?: string;
  details?: Record<string, unknown>;
}

const byCode: Partial<Record<ErrorCode, number>> = {
  ERR_SKIFF_UNAUTHORIZED: 401,
  ERR_SKIFF_TOO_LARGE: 413,
  // Registry credentials are the registry's business, not the API caller's: still a request that cannot succeed as asked.
  ERR_SKIFF_AUTH: 400,
  ERR_SKIFF_LOCKED: 503,
  ERR_SKIFF_NEEDS_ROOT: 501,
};

const byExit: Record<ExitCode, number> = {
  [ExitCode.ok]: 200,
  [ExitCode.internal]: 500,
  [ExitCode.usage]: 400,
  [ExitCode.notFound]: 404,
  [ExitCode.conflict]: 409,
  [ExitCode.host]: 500,
  [ExitCode.guest]: 502,
  [ExitCode.timeout]: 504,
  [ExitCode.interrupted]: 499,
};

/** The HTTP status of an error code. */
export function httpStatusOf(code: ErrorCode): number {
  return byCode[code] ?? byExit[errorCodes[code]];
}

/** What the server sends for a failure; anything not a SkiffError is an internal error (its message, no stack). */
export function toErrorBody(err: unknown): ErrorBody {
  if (!(err instanceof SkiffError)) {
    return { code: "ERR_SKIFF_INTERNAL", message: err instanceof Error ? err.message : String(err), hint: "this is a bug in skiff serve; its log has more" };
  }
  return {
    code: err.code,
    message: err.message,
    ...(err.hint === undefined ? {} : { hint: err.hint }),
    ...(err.place === undefined ? {} : { field: err.place }),
    ...(err.details === undefined ? {} : { details: err.details }),
  };
}

/** The SkiffError a body stands for; a body that is not one (a proxy's page) becomes ERR_SKIFF_INTERNAL with the status. */
export function fromErrorBody(body: unknown, status: number): SkiffError {
  if (typeof body === "object" && body !== null) {
    const b = body as Partial<ErrorBody>;
    if (typeof b.code === "string" && b.code in errorCodes && typeof b.message === "string") {
      return new SkiffError(b.code, b.message, {
        ...(typeof b.hint === "string" ? { hint: b.hint } : {}),
        ...(typeof b.field === "string" ? { place: b.field } : {}),
        ...(typeof b.details === "object" && b.details !== null ? { details: b.details } : {}),
      });
    }
  }
  const text = typeof body === "string" ? body.slice(0, 200) : JSON.stringify(body)?.slice(0, 200);
  return new SkiffError("ERR_SKIFF_INTERNAL", `the server answered HTTP ${status} without a skiff error: ${text ?? ""}`, {
    hint: "check that the URL points at `skiff serve`",
  });
}
