/**
 * Router VMs of a topology: a service whose address other services name as
 * their gateway forwards IP, and one with `masquerade` on a network NATs
 * what it forwards out of that network's interface (pontoon's router). Done
 * in the guest with its own iptables (the `base` layer has it) after boot.
 */
import { SkiffError } from "../pure.js";
import { networkName } from "./names.js";
import type { ProjectRun } from "./run.js";
import type { ServiceSpec } from "./types.js";

export async function setUpRouting(run: ProjectRun, service: ServiceSpec, vm: string): Promise<void> {
  const info = await run.skiff.info(await run.skiff.store.get(vm));
  const myAddresses = new Set(info.interfaces.map((i) => i.address.split("/")[0]));
  const isGateway = run.spec.services.some((s) => s.networks.some((n) => n.gateway !== undefined && myAddresses.has(n.gateway)));
  const masquerade = service.networks.filter((n) => n.masquerade);
  if (!isGateway && masquerade.length === 0) return;
  const script = ["echo 1 > /proc/sys/net/ipv4/ip_forward"];
  for (const n of masquerade) {
    const nic = info.interfaces.find((i) => i.network === networkName(run.spec.name, n.network));
    if (nic === undefined) continue;
    // -C first: a restarted VM keeps no rules, but `up` on a running one must not add a second.
    script.push(`iptables -t nat -C POSTROUTING -o ${nic.name} -j MASQUERADE 2>/dev/null || iptables -t nat -A POSTROUTING -o ${nic.name} -j MASQUERADE`);
  }
  const conn = await run.skiff.connect(vm);
  try {
    const r = await conn.run(["/dev/.skiff/bin/busybox", "sh", "-c", script.join(" && ")], { timeoutMs: 30_000 });
    if (r.code !== 0) {
      throw new SkiffError("ERR_SKIFF_AGENT", `${vm}: cannot set up routing: ${r.stderr.trim() || `exit ${r.code}`}`, {
        place: service.place,
        hint: masquerade.length > 0 ? "masquerade needs iptables in the VM: add the `base` layer to the service" : "check the VM's kernel allows IP forwarding",
      });
    }
  } finally {
    await conn.close();
  }
}
