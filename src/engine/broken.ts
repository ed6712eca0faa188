/**
 * Broken VMs in the engine (a record failed its check, src/store/broken.ts):
 * what `ps -a` shows of them, and `rm`, the one verb they take. Their
 * state.json may be what is broken, so the QEMU that may still run for one
 * is found by its command line (the VM's pidfile path), not by the record.
 */
import { SkiffError } from "../errors.js";
import { vmLockName, type BrokenVm } from "../store/store.js";
import { withLock } from "../store/lock.js";
import type { VmConfig } from "../store/vmdir.js";
import type { EngineContext } from "./context.js";
import { removeVm } from "./reconcile.js";
import { qemuOf } from "./vm-process.js";
import type { ProcTable } from "../process/procs.js";

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

/** What is known of its jail: config.json's, when that file is not the broken one. */
function jailOf(vm: BrokenVm): Pick<VmConfig, "jail"> {
  return vm.config?.jail === undefined ? {} : { jail: vm.config.jail };
}

/** Its QEMU, if one runs: by its jail uid when config.json still names it, else by its command line. */
function running(vm: BrokenVm, table?: ProcTable): ReturnType<typeof qemuOf> {
  return qemuOf({ paths: vm.paths, config: jailOf(vm) }, table);
}

export function brokenInfo(vm: BrokenVm, table?: ProcTable): BrokenVmInfo {
  const name = vm.name ?? vm.id;
  return {
    id: vm.id,
    name,
    state: "broken",
    reason: vm.reason,
    hint: `skiff rm -f ${name}`,
    pid: running(vm, table)?.pid,
    dir: vm.paths.dir,
  };
}

/** Remove a broken VM: its QEMU, if one still runs, only with `force`. */
export async function removeBroken(ctx: EngineContext, vm: BrokenVm, opts: { force?: boolean }): Promise<void> {
  const name = vm.name ?? vm.id;
  await withLock(
    vmLockName(vm.id),
    async () => {
      const qemu = running(vm);
      if (qemu !== undefined && opts.force !== true) {
        throw new SkiffError("ERR_SKIFF_VM_RUNNING", `${name} is broken (${vm.reason}) and its QEMU still runs (pid ${qemu.pid})`, {
          hint: `\`skiff rm -f ${name}\` kills it and removes the VM`,
          place: name,
        });
      }
      await removeVm(ctx, { id: vm.id, name, paths: vm.paths, config: jailOf(vm) });
    },
    { home: ctx.home, purpose: `remove ${name}` },
  );
}
