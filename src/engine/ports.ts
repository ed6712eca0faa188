/**
 * Port forwards of a VM's user networking: those given at create (`-p`,
 * kept in the spec) and those added to a running VM (`skiff port-forward`,
 * through HMP's hostfwd_add; kept in the VM's state and gone when it
 * stops, like kubectl's).
 */
import { readFileSync } from "node:fs";
import { SkiffError } from "../errors.js";
import { resolveForwards } from "../network/ports.js";
import { QmpClient } from "../qemu/qmp.js";
import type { PortForward } from "../spec/machine.js";
import { withLock } from "../store/lock.js";
import { vmLockName, type VmRecord } from "../store/store.js";
import { notRunning, type EngineContext } from "./context.js";
import { observeStatus } from "./status.js";
import { unprivilegedPortStart } from "../jail/prepare.js";

export interface ForwardInfo extends PortForward {
  /** "spec" (given at create) or "runtime" (added to the running VM). */
  origin: "spec" | "runtime";
}

export async function listForwards(ctx: EngineContext, name: string): Promise<ForwardInfo[]> {
  const record = await ctx.store.get(name);
  const state = await ctx.store.readState(record.id);
  const running = (await observeStatus(record, state)).state === "running";
  return [
    ...userForwards(record).map((f) => ({ ...f, origin: "spec" as const })),
    ...(running ? (state.forwards ?? []) : []).map((f) => ({ ...f, origin: "runtime" as const })),
  ];
}

function userForwards(record: VmRecord): PortForward[] {
  const spec = record.config.spec;
  if (spec.network.mode !== "user") {
    throw new SkiffError("ERR_SKIFF_USAGE", `${record.name} has no user networking to forward ports over`, {
      place: record.name,
      hint: "port forwards need user networking (it combines with named networks)",
    });
  }
  return spec.network.forwards;
}

async function hmp(record: VmRecord, line: string): Promise<void> {
  const qmp = await QmpClient.connect(record.paths.qmpSocket, { timeoutMs: 5_000 });
  try {
    // HMP answers errors as text, not as a QMP error; hostfwd_remove also reports success.
    const out = (await qmp.hmp(line, { timeoutMs: 5_000 })).trim();
    if (/could not|fail|invalid|not found|error/i.test(out)) {
      throw new SkiffError(/could not set up|failed/i.test(out) ? "ERR_SKIFF_PORT_IN_USE" : "ERR_SKIFF_QMP", `${line}: ${out}`, {
        place: record.name,
        hint: "pick another host port (`skiff port NAME` lists those in use)",
      });
    }
  } finally {
    qmp.close();
  }
}

/** Add a forward to a running VM, or (remove) drop one that was added so. */
export async function changeForward(ctx: EngineContext, name: string, forward: PortForward, opts: { remove?: boolean } = {}): Promise<ForwardInfo[]> {
  const record = await ctx.store.get(name);
  await withLock(
    "ports",
    () =>
      withLock(
        vmLockName(record.id),
        async () => {
          const state = await ctx.store.readState(record.id);
          const status = await observeStatus(record, state);
          if (status.state !== "running") throw notRunning(record.name);
          const fixed = userForwards(record);
          const runtime = state.forwards ?? [];
          const key = (f: PortForward) => `${f.protocol}:${f.hostAddress}:${f.hostPort}`;
          if (opts.remove === true) {
            const found = runtime.find((f) => key(f) === key(forward));
            if (found === undefined) {
              const fromSpec = fixed.some((f) => key(f) === key(forward));
              throw new SkiffError("ERR_SKIFF_USAGE", `${record.name} has no added forward from ${forward.hostAddress}:${forward.hostPort}/${forward.protocol}`, {
                place: record.name,
                hint: fromSpec ? "forwards given when the VM was made stay until it is removed" : `see \`skiff port ${record.name}\``,
              });
            }
            await hmp(record, `hostfwd_remove net0 ${forward.protocol}:${forward.hostAddress}:${forward.hostPort}`);
            await ctx.store.updateState(record.id, { forwards: runtime.filter((f) => f !== found) });
            return;
          }
          const taken = await takenForwards(ctx);
          const [resolved] = await resolveForwards([forward], taken, "forward");
          if (record.config.jail !== undefined && resolved!.hostPort < unprivilegedPortStart() && !mayBindLowPorts(status.pid)) {
            throw new SkiffError("ERR_SKIFF_USAGE", `${record.name}'s jailed QEMU may not listen on host port ${resolved!.hostPort} (below ${unprivilegedPortStart()})`, {
              place: record.name,
              hint: "publish ports below 1024 when the VM is made (its QEMU then keeps the one capability that needs), or use a higher host port",
            });
          }
          await hmp(record, `hostfwd_add net0 ${resolved!.protocol}:${resolved!.hostAddress}:${resolved!.hostPort}-:${resolved!.guestPort}`);
          await ctx.store.updateState(record.id, { forwards: [...runtime, resolved!] });
        },
        { home: ctx.home, purpose: `port-forward ${record.name}` },
      ),
    { home: ctx.home, purpose: "allocate ports" },
  );
  return listForwards(ctx, name);
}

/** Every host port a VM of this home has claimed: -p forwards, runtime forwards of running VMs, cloud SSH ports. */
export async function takenForwards(ctx: EngineContext): Promise<{ vm: string; forward: PortForward }[]> {
  const out: { vm: string; forward: PortForward }[] = [];
  for (const vm of await ctx.store.list({ includeIncomplete: true })) {
    const spec = vm.config.spec;
    const state = await ctx.store.readState(vm.id).catch(() => ({ forwards: undefined }));
    const fixed = spec.network.mode === "user" ? spec.network.forwards : [];
    const ssh = spec.boot?.kind === "cloud" ? [{ protocol: "tcp" as const, hostAddress: "127.0.0.1", hostPort: spec.boot.sshPort, guestPort: 22 }] : [];
    for (const forward of [...fixed, ...ssh, ...(state.forwards ?? [])]) out.push({ vm: vm.name, forward });
  }
  return out;
}


/** Whether the running QEMU kept CAP_NET_BIND_SERVICE (its VM published a low port at start). */
function mayBindLowPorts(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    const eff = /^CapEff:\s+([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return eff !== undefined && (BigInt(`0x${eff}`) & (1n << 10n)) !== 0n;
  } catch {
    return false;
  }
}
