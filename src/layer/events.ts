/** What a layer build tells its listener (the `layer` event of Skiff). */
import type { LayerStepEvent } from "./build.js";

export type LayerEvent =
  /** A build VM is about to boot; its whole log goes to `logPath`. */
  | { type: "layers-start"; image: string; digest: string; base: string; layers: string[]; logPath: string }
  /** The image was in the cache: no VM was booted. */
  | { type: "layers-cached"; image: string; digest: string; layers: string[] }
  /** The build VM boots ("boot"), or its disk becomes the image ("commit"). */
  | { type: "layers-vm"; what: "boot" | "stop" | "commit"; image: string }
  /** A step of a layer, or of the build as a whole (layer ""). */
  | ({ type: "layers-step"; image: string } & LayerStepEvent)
  | { type: "layers-done"; image: string; digest: string; ms: number; logPath: string };
