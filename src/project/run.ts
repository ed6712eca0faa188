/**
 * One project verb at work: the engine, the project, and where its events
 * go. Also what several verbs share: the image a service boots (built from
 * its layers once per verb, or resolved), and the layer search path.
 */
import { join } from "node:path";
import type { LayerEvent, Skiff } from "../index.js";
import type { ResolvedImage } from "./desired.js";
import type { OutputEvent, TaskState } from "./events.js";
import type { ProjectSpec, ServiceSpec } from "./types.js";

/** The base image layers are built on when a service names none. */
export const defaultLayerBase = "debian";

export interface BuiltImage {
  image: string;
  digest: string;
  cached: boolean;
  logPath?: string;
}

export class ProjectRun {
  readonly #builds = new Map<string, Promise<BuiltImage>>();
  readonly #t0 = Date.now();

  constructor(
    readonly skiff: Skiff,
    readonly spec: ProjectSpec,
    readonly emitTask: (task: string, state: TaskState, message: string, elapsedMs: number) => void,
    readonly emitOutput: (e: OutputEvent) => void,
  ) {}

  task(task: string, state: TaskState, message: string): void {
    this.emitTask(task, state, message, Date.now() - this.#t0);
  }

  output(vm: string, stream: "stdout" | "stderr", text: string): void {
    this.emitOutput({ vm, stream, text });
  }

  /** Project layers first, then the file's extra paths; skiff's standard library comes last (the builder adds it). */
  get layerSearchPaths(): string[] {
    return [join(this.spec.dir, "layers"), ...this.spec.layerPaths];
  }

  /** The service's layers built on its base; one build per distinct base + layers in a verb. */
  build(service: ServiceSpec, force: boolean): Promise<BuiltImage> {
    const base = service.image ?? defaultLayerBase;
    const key = JSON.stringify([base, service.layers]);
    let p = this.#builds.get(key);
    if (p === undefined) {
      const task = `build ${service.name}`;
      this.task(task, "building", `building ${service.layers.join(" + ")} on ${base}`);
      // The build's own steps become this task's message: "[1/2] redis: packages: redis-server".
      let image: string | undefined;
      const follow = (e: LayerEvent) => {
        if (e.type === "layers-start") image ??= e.image;
        if (e.type === "layers-step" && e.image === image) {
          this.task(task, "building", `${e.index === 0 ? "" : `[${e.index}/${e.count}] ${e.layer}: `}${e.step}: ${e.detail}`);
        }
      };
      this.skiff.on("layer", follow);
      p = this.skiff
        .buildLayers({
          base,
          layers: service.layers,
          searchPaths: this.layerSearchPaths,
          force,
          ...(process.env.SKIFF_APT_MIRROR === undefined ? {} : { aptMirror: process.env.SKIFF_APT_MIRROR }),
        })
        .then(
          (built) => {
            this.task(task, "built", built.cached ? `${built.image} (cached)` : `built ${built.image}`);
            return built;
          },
          (err: unknown) => {
            this.task(task, "failed", `building ${service.name}'s layers failed`);
            throw err;
          },
        )
        .finally(() => this.skiff.off("layer", follow));
      this.#builds.set(key, p);
    }
    return p;
  }

  /** A service's image as given: pulled if missing (cloud images fetched), and its content digest. */
  async resolveImage(service: ServiceSpec): Promise<ResolvedImage> {
    const { skiff } = this;
    if (service.imageUrl !== undefined) {
      return skiff.images.resolve(service.imageUrl, { place: service.place, cloud: true });
    }
    return skiff.images.resolve(service.image ?? defaultLayerBase, { place: service.place });
  }
}
