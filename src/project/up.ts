/**
 * `up`: make the project so. Networks and volumes first; then every service
 * as soon as what it depends on is started (or healthy), independent ones
 * in parallel; each replica is left alone when its spec hash is unchanged
 * and the last `up` brought it up, recreated when it changed, created when
 * missing, started again when the last `up` failed on it (replica-step.ts).
 * Provisioners run on a VM's first start (and again until they once ran to
 * the end).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { crashPoint, isSkiffError, qemuRuns, SkiffError } from "../pure.js";
import type { VmRecord } from "../index.js";
import { desiredVm, type DesiredVm, type ResolvedImage } from "./desired.js";
import { waitHealthy } from "./health.js";
import { labels } from "./names.js";
import { servicesToStart } from "./order.js";
import { provisionVm } from "./provisioning.js";
import { ensureNetworks, ensureVolumes } from "./resources.js";
import { setUpRouting } from "./router.js";
import type { ProjectRun } from "./run.js";
import { projectVms, serviceVms } from "./vms.js";
import { replicaStep } from "./replica-step.js";
import type { ServiceSpec } from "./types.js";

export interface UpOptions {
  /** Only these services (and what they depend on). */
  services?: string[];
  /** Rebuild layer images even when cached. */
  build?: boolean;
  noProvision?: boolean;
  /** Wait until every service with a healthcheck is healthy. */
  wait?: boolean;
  /** Remove VMs of services no longer in the file. */
  removeOrphans?: boolean;
}

export type UpAction = "created" | "recreated" | "started" | "restarted" | "unchanged";

export interface UpResult {
  vms: { name: string; service: string; action: UpAction }[];
}

/** A dependency failed; the service waiting for it did not start. Reported as the dependency's error. */
class DependencyFailed extends Error {}

export async function up(run: ProjectRun, opts: UpOptions = {}): Promise<UpResult> {
  const { skiff, spec } = run;
  const services = servicesToStart(spec, opts.services ?? []);
  await skiff.reconcile();
  for (const name of await ensureNetworks(skiff, spec, services)) run.task(`network ${name}`, "running", `network ${name} created`);
  for (const name of await ensureVolumes(skiff, spec, services)) run.task(`volume ${name}`, "running", `volume ${name} created`);
  await handleOrphans(run, opts.removeOrphans === true);

  const result: UpResult = { vms: [] };
  const started = new Map<string, Promise<void>>();
  const healthy = new Map<string, Promise<void>>();
  const healthOf = (name: string): Promise<void> => {
    let p = healthy.get(name);
    if (p === undefined) {
      p = started.get(name)!.then(() => waitServiceHealthy(run, services.find((s) => s.name === name)!));
      healthy.set(name, p);
    }
    return p;
  };
  for (const service of services) {
    const task = (async () => {
      await Promise.all(
        service.dependsOn.map((d) =>
          (d.condition === "service_healthy" ? healthOf(d.service) : started.get(d.service)!).catch(() => {
            throw new DependencyFailed(`${service.name}: ${d.service} did not come up`);
          }),
        ),
      );
      const image = await imageFor(run, service, opts.build === true);
      const outcomes = await Promise.all(
        Array.from({ length: service.replicas }, (_, i) => upReplica(run, desiredVm(spec, service, i + 1, image), service, opts)),
      );
      result.vms.push(...outcomes);
      await scaleDown(run, service);
    })();
    task.catch(() => undefined); // awaited below; a dependent's wait must not make it "unhandled"
    started.set(service.name, task);
  }
  const waits = [...started.values()];
  if (opts.wait === true) for (const s of services) if (s.healthcheck !== undefined) waits.push(healthOf(s.name));
  const outcomes = await Promise.allSettled(waits);
  // Dependents' health waits may be pending on their own; they settle with their service.
  await Promise.allSettled([...healthy.values()]);
  const failures = outcomes.flatMap((o) => (o.status === "rejected" ? [o.reason as unknown] : []));
  const root = failures.find((e) => !(e instanceof DependencyFailed)) ?? failures[0];
  if (root !== undefined) throw root;
  return result;
}

/** The image a service boots: its layers built (cached) on its base, or its image as given. */
async function imageFor(run: ProjectRun, service: ServiceSpec, force: boolean): Promise<ResolvedImage> {
  if (service.layers.length > 0) {
    const built = await run.build(service, force);
    return { ref: built.image, digest: built.digest };
  }
  return run.resolveImage(service);
}

async function upReplica(run: ProjectRun, want: DesiredVm, service: ServiceSpec, opts: UpOptions): Promise<UpResult["vms"][number]> {
  const { skiff } = run;
  const existing = await skiff.store.find(want.name);
  const info = existing === undefined ? undefined : await skiff.info(existing);
  const failed = existing === undefined ? undefined : (await skiff.store.readState(existing.id)).upFailed;
  const step = replicaStep(
    existing === undefined || info === undefined
      ? undefined
      : { hash: existing.config.spec.labels[labels.specHash], running: info.state === "running", upFailed: failed?.reason },
    want.hash,
  );
  const done = (action: UpAction) => ({ name: want.name, service: service.name, action });
  if (step === "unchanged") {
    run.task(want.name, "unchanged", `${want.name} is up to date`);
    return done("unchanged");
  }
  const action: UpAction = step === "create" ? "created" : step === "recreate" ? "recreated" : step === "retry" ? "restarted" : "started";
  if (step === "recreate") {
    run.task(want.name, "recreating", `${want.name}: its definition changed, recreating`);
    await skiff.remove(want.name, { force: true });
  }
  if (step === "retry") {
    run.task(want.name, "starting", `${want.name}: the last up failed on it (${failed?.reason}); starting it again`);
    if (info !== undefined && qemuRuns(info.state)) await skiff.stop(want.name);
  }
  if (step === "create" || step === "recreate") {
    run.task(want.name, "creating", `creating ${want.name}`);
    await skiff.create(await withInlineUserData(run, service, want)).catch((err: unknown) => {
      throw memoryAtService(err, service);
    });
  }
  const record = await skiff.store.get(want.name);
  // Marked before, cleared after: an `up` killed half way leaves the mark too.
  await markUpFailed(run, record, "the last up did not finish");
  crashPoint("up:marked");
  try {
    run.task(want.name, "starting", `booting ${want.name}`);
    await skiff.start(want.name);
    await setUpRouting(run, service, want.name);
    run.task(want.name, "running", `${want.name} is running`);
    const state = await skiff.store.readState(record.id);
    if (opts.noProvision !== true && service.provision.length > 0 && state.provisionedAt === undefined) {
      await provisionVm(run, service, want.name);
    }
  } catch (err) {
    await markUpFailed(run, record, failureOf(err));
    throw err;
  }
  await skiff.store.updateState(record.id, { upFailed: undefined });
  return done(action);
}

/** Remember on the VM that `up` did not bring it up, so that the next `up` starts it again. */
async function markUpFailed(run: ProjectRun, record: VmRecord, reason: string): Promise<void> {
  await run.skiff.store.updateState(record.id, { upFailed: { at: new Date().toISOString(), reason } }).catch(() => undefined);
}

function failureOf(err: unknown): string {
  return isSkiffError(err) ? err.code : err instanceof Error ? err.message : String(err);
}

/**
 * Cloud images take user-data as a file: user-data written inline in the
 * project file goes to one under the skiff home, per project and service.
 */
async function withInlineUserData(run: ProjectRun, service: ServiceSpec, want: DesiredVm): Promise<DesiredVm["options"]> {
  const text = service.cloudInit?.userData;
  if (text === undefined) return want.options;
  const dir = join(run.skiff.home, "projects", run.spec.name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `${service.name}.user-data`);
  await writeFile(path, text);
  return { ...want.options, userDataPath: path };
}

/** Every replica of `service` answers its healthcheck (no check: nothing to wait for). */
async function waitServiceHealthy(run: ProjectRun, service: ServiceSpec): Promise<void> {
  const check = service.healthcheck;
  if (check === undefined) return;
  const vms = await serviceVms(run.skiff, run.spec.name, service.name);
  await Promise.all(
    vms.map(async (vm) => {
      run.task(vm.name, "waiting", `${vm.name}: waiting to be healthy`);
      const conn = await run.skiff.connect(vm.name).catch(async (err: unknown) => {
        await markUpFailed(run, vm, failureOf(err));
        throw err;
      });
      try {
        const r = await waitHealthy(conn, check);
        if (!r.healthy) {
          run.task(vm.name, "unhealthy", `${vm.name} is unhealthy`);
          await markUpFailed(run, vm, "unhealthy");
          throw new SkiffError("ERR_SKIFF_UNHEALTHY", `${vm.name} is unhealthy: \`${check.test.join(" ")}\` failed ${r.attempts} times (last exit ${r.code}${r.output === "" ? "" : `: ${r.output.slice(0, 200)}`})`, {
            place: service.place,
            hint: `see \`skiff logs ${vm.name}\`; check the healthcheck's test, or give it a longer start_period`,
          });
        }
        run.task(vm.name, "healthy", `${vm.name} is healthy`);
      } finally {
        await conn.close();
      }
    }),
  );
}

/** Replicas beyond the service's count (it was scaled down) go. */
async function scaleDown(run: ProjectRun, service: ServiceSpec): Promise<void> {
  for (const vm of await serviceVms(run.skiff, run.spec.name, service.name)) {
    if (Number(vm.config.spec.labels[labels.replica]) <= service.replicas) continue;
    run.task(vm.name, "removing", `${vm.name}: beyond ${service.replicas} replicas, removing`);
    await run.skiff.remove(vm.name, { force: true });
    run.task(vm.name, "removed", `${vm.name} removed`);
  }
}

/** VMs of services no longer in the file: removed with --remove-orphans, else a warning (as compose does). */
async function handleOrphans(run: ProjectRun, remove: boolean): Promise<void> {
  const names = new Set(run.spec.services.map((s) => s.name));
  for (const vm of await projectVms(run.skiff, run.spec.name)) {
    if (names.has(vm.config.spec.labels[labels.service] ?? "")) continue;
    if (remove) {
      await run.skiff.remove(vm.name, { force: true });
      run.task(vm.name, "removed", `${vm.name} removed (its service is no longer in the project)`);
    } else {
      run.task(vm.name, "warning", `${vm.name} belongs to no service of the project any more; \`skiff up --remove-orphans\` removes it`);
    }
  }
}

/**
 * Memory too small for the VM's kernel is found at create, where the
 * library names its field (`memory`); in a project it is the service's.
 */
function memoryAtService(err: unknown, service: ServiceSpec): unknown {
  if (!isSkiffError(err) || err.code !== "ERR_SKIFF_BAD_MEMORY" || err.place !== "memory") return err;
  return new SkiffError(err.code, `services.${service.name}.memory: ${err.message}`, {
    place: service.place,
    cause: err,
    ...(err.hint === undefined ? {} : { hint: err.hint }),
    ...(err.details === undefined ? {} : { details: err.details }),
  });
}
