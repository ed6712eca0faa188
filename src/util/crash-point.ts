/**
 * Named moments where a test can make skiff die by SIGKILL, to prove that a
 * crash exactly there leaves nothing the next command cannot clean up (the
 * windows are milliseconds wide: a kill from outside would hit them by luck).
 * Inert unless SKIFF_TEST_CRASH_AT names the point; in normal use a point
 * costs one look at the environment.
 */
export function crashPoint(name: string): void {
  if (process.env.SKIFF_TEST_CRASH_AT === name) process.kill(process.pid, "SIGKILL");
}
