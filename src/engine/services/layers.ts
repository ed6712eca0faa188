/**
 * `skiff.layers`: the layers found on a search path (then skiff's standard
 * library) and building them onto a base image (src/engine/layers.ts).
 */
import type { FoundLayer } from "../../layer/search.js";
import type { LayerSpec } from "../../layer/schema.js";
import type { BuildLayersOptions, BuildLayersResult } from "../layers.js";

export interface LayerListing extends FoundLayer {
  /** Layers of the same name further down the search path, hidden by this one. */
  shadows: string[];
  spec: LayerSpec;
}

export class LayerService {
  readonly #build: (opts: BuildLayersOptions) => Promise<BuildLayersResult>;

  /** `build`: Skiff's buildLayers (a build boots VMs: it needs the whole engine). */
  constructor(build: (opts: BuildLayersOptions) => Promise<BuildLayersResult>) {
    this.#build = build;
  }

  /** Every layer found: `searchPaths` in order, then the standard library; each with its layer.yml read. */
  async list(searchPaths: readonly string[] = []): Promise<LayerListing[]> {
    const [{ listLayers }, { loadLayer }] = await Promise.all([import("../../layer/search.js"), import("../../layer/schema.js")]);
    const out: LayerListing[] = [];
    for (const l of await listLayers(searchPaths)) out.push({ ...l, spec: await loadLayer(l.name, l.dir) });
    return out;
  }

  /**
   * Layers on a base image → a new base image (`skiff-layers:<hash>`), built
   * in a VM unless the cache has it; progress as `layer` events.
   */
  async build(opts: BuildLayersOptions): Promise<BuildLayersResult> {
    return this.#build(opts);
  }
}
