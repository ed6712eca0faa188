/**
 * Broken VMs in the engine (a record failed its check, src/store/broken.ts):
 * what `ps -a` shows of them, and `rm`, the one verb they take. Their
 * state.json may be what is broken, so the QEMU that may still run for one
 * is found by its command line (the VM's pidfile path), not by the record.
 */
import { SkiffError } from "../errors.js";
import { processesWithArg } from "../process/cmdline.js";
import type { ProcessIdentity } from "../process/pid.js";
import { vmLockName, type BrokenVm } from "../store/store.js";
import { withLock } from "../store/lock.js";
import type { EngineContext } from "./context.js";
import { signalQemu } from "./stop.js";

/** What `ps` and `ps --json` show of a broken VM. */
export interface BrokenVmInfo {
  id: string;
  /** Its name when config.json still gives one, else its id: what `rm -f` takes. */
  name: string;
  state: "broken";
  /** Which file and what is wrong with it. */
  reason: string;
  hint: string;
  /** A QEMU still running for it. */
  pid: number | undefined;
  dir: string;
}

function qemuOf(vm: BrokenVm): ProcessIdentity[] {
  return processesWithArg(vm.paths.pidfile);
}

export function brokenInfo(vm: BrokenVm): BrokenVmInfo {
  const name = vm.name ?? vm.id;
  return {
    id: vm.id,
    name,
    state: "broken",
    reason: vm.reason,
    hint: `skiff rm -f ${name}`,
    pid: qemuOf(vm)[0]?.pid,
    dir: vm.paths.dir,
  };
}

/** Remove a broken VM: its QEMU, if one still runs, only with `force`. */
export async function removeBroken(ctx: EngineContext, vm: BrokenVm, opts: { force?: boolean }): Promise<void> {
  const name = vm.name ?? vm.id;
  await withLock(
    vmLockName(vm.id),
    async () => {
      const running = qemuOf(vm);
      if (running.length > 0 && opts.force !== true) {
        throw new SkiffError("ERR_SKIFF_VM_RUNNING", `${name} is broken (${vm.reason}) and its QEMU still runs (pid ${running.map((q) => q.pid).join(", ")})`, {
          hint: `\`skiff rm -f ${name}\` kills it and removes the VM`,
          place: name,
        });
      }
      for (const qemu of running) await signalQemu(qemu, 9);
      await ctx.store.remove(vm.id);
    },
    { home: ctx.home, purpose: `remove ${name}` },
  );
}
