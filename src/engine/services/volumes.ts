/**
 * `skiff.volumes`: named volumes (src/engine/volumes.ts) over one skiff;
 * Skiff's flat createVolume/listVolumes/… are these.
 */
import type { EngineContext } from "../context.js";
import type { VolumeCreateOptions, VolumeInfo } from "../volumes.js";

export class VolumeService {
  readonly #ctx: EngineContext;

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  /** Make a named volume: an ext4 disk of its own (default 1 GiB) that VMs mount with `mounts`. */
  async create(opts: VolumeCreateOptions): Promise<VolumeInfo> {
    return (await import("../volumes.js")).createVolume(this.#ctx, opts);
  }

  async list(): Promise<VolumeInfo[]> {
    return (await import("../volumes.js")).listVolumes(this.#ctx);
  }

  async inspect(name: string): Promise<VolumeInfo> {
    return (await import("../volumes.js")).inspectVolume(this.#ctx, name);
  }

  /** Remove a volume and its data; refused while a VM uses it, unless `force` (never while that VM runs). */
  async remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    return (await import("../volumes.js")).removeVolume(this.#ctx, name, opts);
  }

  /** The names of the volumes (shell completion): read without checking the records. */
  async names(): Promise<string[]> {
    const { VolumeStore } = await import("../../volume/store.js");
    return (await new VolumeStore(this.#ctx.home).list()).map((v) => v.name);
  }
}
