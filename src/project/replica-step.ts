/**
 * What `up` does with one replica, from what exists: pure, so that the one
 * rule that decides "up to date" is tested on its own. A replica is up to
 * date only when its VM has the file's definition (the spec hash in its
 * labels), runs, and the last `up` brought it up to the end: a VM whose
 * start, provisioning or healthcheck failed is started again, however equal
 * its hash.
 */

export type ReplicaStep =
  /** No VM: create and start it. */
  | "create"
  /** Its definition changed: remove and create it again. */
  | "recreate"
  /** Unchanged but not running (stopped, crashed, never started): start it. */
  | "start"
  /** Unchanged, but the last `up` failed on it: start it again (stopping it first if it runs). */
  | "retry"
  | "unchanged";

export interface ExistingReplica {
  /** The spec hash in its labels. */
  hash: string | undefined;
  /** Its QEMU runs (the guest may be paused). */
  running: boolean;
  /** Why the last `up` did not bring it up, if it did not. */
  upFailed: string | undefined;
}

export function replicaStep(existing: ExistingReplica | undefined, wantHash: string): ReplicaStep {
  if (existing === undefined) return "create";
  if (existing.hash !== wantHash) return "recreate";
  if (existing.upFailed !== undefined) return "retry";
  return existing.running ? "unchanged" : "start";
}
