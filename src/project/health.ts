/**
 * Healthchecks, run by the host through the guest channel (there is no
 * daemon watching a VM between commands): `up` runs a service's test until
 * it passes, as docker does, within start_period + retries × interval.
 */
import { SkiffError } from "../pure.js";
import type { AgentConnection } from "../index.js";
import type { HealthCheck } from "./types.js";

export interface HealthResult {
  healthy: boolean;
  /** The last attempt's exit code and output, for the error. */
  code: number;
  output: string;
  attempts: number;
}

/** Run the test once: healthy when it exits 0 within its timeout. */
export async function probeOnce(conn: AgentConnection, check: HealthCheck): Promise<{ code: number; output: string }> {
  try {
    const r = await conn.run(check.test, { timeoutMs: check.timeoutMs });
    return { code: r.code, output: (r.stdout + r.stderr).trim() };
  } catch (err) {
    if (err instanceof SkiffError && err.code === "ERR_SKIFF_TIMEOUT") return { code: 124, output: `timed out after ${check.timeoutMs} ms` };
    throw err;
  }
}

/**
 * Docker's rule: failures during start_period do not count; after it,
 * `retries` consecutive failures make the service unhealthy.
 */
export async function waitHealthy(
  conn: AgentConnection,
  check: HealthCheck,
  opts: { signal?: AbortSignal; onAttempt?: (attempt: number, code: number) => void } = {},
): Promise<HealthResult> {
  const start = Date.now();
  let failures = 0;
  let attempts = 0;
  for (;;) {
    opts.signal?.throwIfAborted();
    attempts++;
    const r = await probeOnce(conn, check);
    opts.onAttempt?.(attempts, r.code);
    if (r.code === 0) return { healthy: true, ...r, attempts };
    if (Date.now() - start >= check.startPeriodMs) failures++;
    if (failures >= check.retries) return { healthy: false, ...r, attempts };
    await new Promise((resolve) => setTimeout(resolve, check.intervalMs));
  }
}
