/**
 * What a project verb tells whoever listens: one task per service replica
 * (or network, volume, build) moving through states, and the live output of
 * provisioners. The CLI draws a task list from these on a terminal and plain
 * lines elsewhere; the library never prints.
 */

export type TaskState =
  | "building"
  | "built"
  | "creating"
  | "recreating"
  | "starting"
  | "running"
  | "unchanged"
  | "provisioning"
  | "provisioned"
  | "waiting"
  | "healthy"
  | "unhealthy"
  | "stopping"
  | "stopped"
  | "removing"
  | "removed"
  | "failed"
  | "warning";

export interface TaskEvent {
  /** What the task is about: a VM name, "network lan", "build web", "volume data". */
  task: string;
  state: TaskState;
  /** One line for humans. */
  message: string;
  elapsedMs: number;
}

export interface OutputEvent {
  vm: string;
  stream: "stdout" | "stderr";
  text: string;
}

export interface ProjectEvents {
  task: [TaskEvent];
  output: [OutputEvent];
}
