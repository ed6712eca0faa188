/**
 * What the engine tells whoever listens while it works. The library never
 * prints: the CLI renders these on stderr (or as JSON lines), the server will
 * forward them, a library user may ignore them.
 */

export type Phase =
  | "preparing-image"
  | "preparing-kernel"
  | "probing-accel"
  | "creating"
  | "booting"
  | "ready"
  | "stopping"
  | "stopped"
  | "removed"
  | "reaped";

export interface ProgressEvent {
  vm: string;
  phase: Phase;
  message: string;
  /** Milliseconds since the verb began, for the terminal's timing hints. */
  elapsedMs: number;
}

export interface SkiffEvents {
  progress: [ProgressEvent];
}
