/**
 * Provisioning one VM of a project: connect, run the service's steps with
 * their output going to the VM's provision log and to the listeners, and
 * remember that they ran to the end.
 */
import type { ServiceSpec } from "./types.js";
import { runProvisioners } from "./provision.js";
import type { ProjectRun } from "./run.js";

export async function provisionVm(run: ProjectRun, service: ServiceSpec, vm: string): Promise<void> {
  const record = await run.skiff.store.get(vm);
  run.task(vm, "provisioning", `provisioning ${vm}`);
  const conn = await run.skiff.connect(vm);
  try {
    await runProvisioners(conn, service.provision, {
      vm,
      logPath: record.paths.provisionLog,
      onStep: (i, n, what) => run.task(vm, "provisioning", `${vm}: step ${i}/${n}: ${what}`),
      onOutput: (stream, text) => run.output(vm, stream, text),
    });
  } catch (err) {
    run.task(vm, "failed", `${vm}: provisioning failed`);
    throw err;
  } finally {
    await conn.close();
  }
  await run.skiff.store.updateState(record.id, { provisionedAt: new Date().toISOString() });
  run.task(vm, "provisioned", `${vm} provisioned`);
}
