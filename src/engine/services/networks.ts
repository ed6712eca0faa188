/**
 * `skiff.networks`: the network verbs over one skiff (src/engine/networks.ts
 * and the capture behind `network tcpdump`), each loading its modules when
 * first called.
 */
import type { NetworkRecord } from "../../network/types.js";
import type { Capture, CaptureOptions } from "../capture.js";
import type { EngineContext } from "../context.js";
import type { NetworkCreateOptions, NetworkInfo } from "../networks.js";

export class NetworkService {
  readonly #ctx: EngineContext;

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  async create(opts: NetworkCreateOptions): Promise<NetworkInfo> {
    return (await import("../networks.js")).createNetwork(this.#ctx, opts);
  }

  async list(): Promise<NetworkInfo[]> {
    return (await import("../networks.js")).listNetworks(this.#ctx);
  }

  async inspect(name: string): Promise<NetworkInfo> {
    return (await import("../networks.js")).inspectNetwork(this.#ctx, name);
  }

  /** The network's record, or undefined when there is none by that name. */
  async find(name: string): Promise<NetworkRecord | undefined> {
    return (await import("../vm-network.js")).networkStore(this.#ctx).find(name);
  }

  /** The networks' records as stored (no members: nothing else is read); broken ones left out. */
  async records(): Promise<NetworkRecord[]> {
    return (await import("../vm-network.js")).networkStore(this.#ctx).list();
  }

  /** Remove a network (its bridge and NAT rules too); refused while VMs are on it. */
  async remove(name: string): Promise<void> {
    return (await import("../networks.js")).removeNetwork(this.#ctx, name);
  }

  /** Make the host side (bridges, NAT rules) of bridge networks: all, or those named. */
  async up(names: readonly string[] = []): Promise<NetworkRecord[]> {
    return (await import("../networks.js")).networksUp(this.#ctx, names);
  }

  /** Take the host side of bridge networks away; the networks stay defined. */
  async down(names: readonly string[] = []): Promise<NetworkRecord[]> {
    return (await import("../networks.js")).networksDown(this.#ctx, names);
  }

  /** The frames on a network, as tcpdump's text or pcap, until stopped or `count`. */
  async capture(opts: CaptureOptions): Promise<Capture> {
    return (await import("../capture.js")).captureNetwork(this.#ctx, opts);
  }

  /** The names of the networks (shell completion): read without checking the records. */
  async names(): Promise<string[]> {
    const { NetworkStore } = await import("../../network/store.js");
    return (await new NetworkStore(this.#ctx.home).list()).map((n) => n.name);
  }
}
