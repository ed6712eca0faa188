/**
 * A project in the library: `new Project(skiff, spec)` and docker compose's
 * verbs scoped to it. The verbs work on the VMs carrying the project's
 * labels; `up` lives in up.ts. Never prints: it emits `task` and `output`
 * events (events.ts).
 */
import { EventEmitter } from "node:events";
import { qemuRuns, SkiffError } from "../pure.js";
import type { Skiff, VmInfo, VmRecord } from "../index.js";
import type { ProjectEvents } from "./events.js";
import { probeOnce } from "./health.js";
import { labels } from "./names.js";
import { serviceNamed } from "./order.js";
import { provisionVm } from "./provisioning.js";
import { removeProjectNetworks, removeProjectVolumes } from "./resources.js";
import { ProjectRun, type BuiltImage } from "./run.js";
import type { ProjectSpec } from "./types.js";
import { up, type UpOptions, type UpResult } from "./up.js";
import { projectVms, serviceOf, vmsOfServices } from "./vms.js";

export interface ServiceStatus {
  service: string;
  vm: VmInfo;
  /** "healthy" / "unhealthy" when the service has a healthcheck and the VM runs. */
  health?: "healthy" | "unhealthy";
}

export interface DownOptions {
  /** Also remove the project's named volumes (their data goes). */
  volumes?: boolean;
  /** Also remove the images built from the project's layers, and the volumes. */
  destroy?: boolean;
}

export class Project extends EventEmitter<ProjectEvents> {
  constructor(
    readonly skiff: Skiff,
    readonly spec: ProjectSpec,
  ) {
    super();
  }

  #run(): ProjectRun {
    return new ProjectRun(
      this.skiff,
      this.spec,
      (task, state, message, elapsedMs) => this.emit("task", { task, state, message, elapsedMs }),
      (e) => this.emit("output", e),
    );
  }

  up(opts: UpOptions = {}): Promise<UpResult> {
    return up(this.#run(), opts);
  }

  /** Stop and remove the project's VMs and networks (volumes with `volumes`, built images with `destroy`). */
  async down(opts: DownOptions = {}): Promise<{ vms: string[]; networks: string[]; volumes: string[]; images: string[] }> {
    const run = this.#run();
    const vms = await projectVms(this.skiff, this.spec.name);
    const images = new Set(vms.map((vm) => vm.config.spec.image).filter((i) => i.startsWith("skiff-layers")));
    await Promise.all(
      vms.map(async (vm) => {
        run.task(vm.name, "removing", `removing ${vm.name}`);
        await this.skiff.stop(vm.name, { timeoutMs: 10_000 }).catch(() => undefined);
        await this.skiff.remove(vm.name, { force: true });
        run.task(vm.name, "removed", `${vm.name} removed`);
      }),
    );
    const networks = await removeProjectNetworks(this.skiff, this.spec.name);
    for (const n of networks) run.task(`network ${n}`, "removed", `network ${n} removed`);
    const volumes = opts.volumes === true || opts.destroy === true ? await removeProjectVolumes(this.skiff, this.spec.name) : [];
    for (const v of volumes) run.task(`volume ${v}`, "removed", `volume ${v} removed`);
    const removedImages: string[] = [];
    if (opts.destroy === true) {
      for (const image of images) {
        // Another project's VM may boot the same content-addressed image: then it stays.
        const removed = await this.skiff.images.remove(image).then(() => true, () => false);
        if (removed) {
          removedImages.push(image);
          run.task(`image ${image}`, "removed", `image ${image} removed`);
        }
      }
    }
    return { vms: vms.map((v) => v.name), networks, volumes, images: removedImages };
  }

  /** The project's VMs with their state, and health where the service has a check. */
  async ps(opts: { all?: boolean } = {}): Promise<ServiceStatus[]> {
    await this.skiff.reconcile();
    const vms = await projectVms(this.skiff, this.spec.name);
    const out = await Promise.all(
      vms.map(async (record): Promise<ServiceStatus> => {
        const vm = await this.skiff.info(record);
        const service = serviceOf(record);
        const check = this.spec.services.find((s) => s.name === service)?.healthcheck;
        if (check === undefined || vm.state !== "running") return { service, vm };
        const health = await this.skiff
          .connect(record.name)
          .then(async (conn) => {
            try {
              return (await probeOnce(conn, check)).code === 0 ? "healthy" : "unhealthy";
            } finally {
              await conn.close();
            }
          })
          .catch(() => "unhealthy" as const);
        return { service, vm, health };
      }),
    );
    return opts.all === true ? out : out.filter((s) => qemuRuns(s.vm.state));
  }

  /** The project's VMs of `services` (all when none given); an unknown service is an error. */
  async vms(services: readonly string[] = []): Promise<VmRecord[]> {
    for (const s of services) serviceNamed(this.spec, s);
    return vmsOfServices(this.skiff, this.spec.name, services);
  }

  /** The VM `exec SERVICE` reaches: replica `index` (1 by default). */
  async vmFor(service: string, index = 1): Promise<VmRecord> {
    const vm = (await this.vms([service])).find((v) => v.config.spec.labels[labels.replica] === String(index));
    if (vm === undefined) {
      throw new SkiffError("ERR_SKIFF_VM_NOT_FOUND", `service ${service} has no VM${index === 1 ? "" : ` number ${index}`}`, {
        place: service,
        hint: `start it with \`skiff up ${service}\``,
      });
    }
    return vm;
  }

  async stop(services: readonly string[] = []): Promise<string[]> {
    return this.#each(services, "stopping", "stopped", (vm) => this.skiff.stop(vm.name, { timeoutMs: 10_000 }));
  }

  async start(services: readonly string[] = []): Promise<string[]> {
    return this.#each(services, "starting", "running", (vm) => this.skiff.start(vm.name));
  }

  async restart(services: readonly string[] = []): Promise<string[]> {
    return this.#each(services, "starting", "running", (vm) => this.skiff.restart(vm.name));
  }

  /** docker compose pause: the services' guests stop, keeping their memory. */
  async pause(services: readonly string[] = []): Promise<string[]> {
    return this.#each(services, "stopping", "stopped", (vm) => this.skiff.pause(vm.name));
  }

  async unpause(services: readonly string[] = []): Promise<string[]> {
    return this.#each(services, "starting", "running", (vm) => this.skiff.unpause(vm.name));
  }

  async kill(services: readonly string[] = [], signal?: number): Promise<string[]> {
    return this.#each(services, "stopping", "stopped", (vm) => this.skiff.kill(vm.name, signal === undefined ? {} : { signal }));
  }

  async #each(services: readonly string[], doing: "stopping" | "starting", done: "stopped" | "running", fn: (vm: VmRecord) => Promise<unknown>): Promise<string[]> {
    const run = this.#run();
    const vms = await this.vms(services);
    await Promise.all(
      vms.map(async (vm) => {
        run.task(vm.name, doing, `${doing} ${vm.name}`);
        await fn(vm);
        run.task(vm.name, done, `${vm.name} ${done}`);
      }),
    );
    return vms.map((v) => v.name);
  }

  /** Run the provisioners of `services` (all) again on their running VMs. */
  async provision(services: readonly string[] = []): Promise<string[]> {
    const run = this.#run();
    const vms = await this.vms(services);
    for (const vm of vms) {
      const service = serviceNamed(this.spec, serviceOf(vm));
      if (service.provision.length > 0) await provisionVm(run, service, vm.name);
    }
    return vms.map((v) => v.name);
  }

  /** Destroy and recreate `services` (all), then provision them. */
  async reload(services: readonly string[] = []): Promise<UpResult> {
    const run = this.#run();
    for (const s of services) serviceNamed(this.spec, s);
    const vms = await this.vms(services);
    await Promise.all(
      vms.map(async (vm) => {
        run.task(vm.name, "removing", `removing ${vm.name}`);
        await this.skiff.remove(vm.name, { force: true });
      }),
    );
    return up(run, { services: [...services] });
  }

  /** Build (or find cached) the layer images of `services` (all with layers). */
  async build(services: readonly string[] = [], opts: { force?: boolean } = {}): Promise<{ service: string; image: BuiltImage }[]> {
    const run = this.#run();
    const chosen = services.length === 0 ? this.spec.services : services.map((s) => serviceNamed(this.spec, s));
    const out: { service: string; image: BuiltImage }[] = [];
    for (const service of chosen.filter((s) => s.layers.length > 0)) {
      out.push({ service: service.name, image: await run.build(service, opts.force === true) });
    }
    return out;
  }
}
