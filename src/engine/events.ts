/**
 * What the engine tells whoever listens while it works. The library never
 * prints: the CLI renders these on stderr (or as JSON lines), the server will
 * forward them, a library user may ignore them.
 */

import type { PullEvent } from "../image/oci/types.js";
import type { BuildEvent } from "../image/unpack/build.js";
import type { LayerEvent } from "../layer/events.js";

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
  | "reaped"
  /** Taking a snapshot (snapshot create, fork, stop --hibernate). */
  | "snapshot"
  /** Something went wrong that did not stop the verb (a peer whose /etc/hosts could not be updated). */
  | "warning";

export interface ProgressEvent {
  vm: string;
  phase: Phase;
  message: string;
  /** Milliseconds since the verb began, for the terminal's timing hints. */
  elapsedMs: number;
}

export interface SkiffEvents {
  progress: [ProgressEvent];
  /** Image pulls, layer by layer (a `docker pull`-like display). */
  pull: [PullEvent];
  /** Building an image's ext4 base. */
  build: [BuildEvent];
  /** Building layers into an image: per layer and step (Skiff.buildLayers). */
  layer: [LayerEvent];
}
