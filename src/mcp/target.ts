/**
 * Which VM a tool call means: Pontoon's tools take a VM's name, one of its
 * IP addresses or its hostname. The answer is one VM, found before any
 * policy is looked up, so a VM addressed by IP or hostname gets its own
 * rule. An address or hostname that several VMs share (every VM on user
 * networking is 10.0.2.15) is an error, never a guess.
 */
import { SkiffError } from "../pure.js";
import type { VmInfo } from "../index.js";

export function resolveTarget(target: string, vms: readonly VmInfo[]): VmInfo {
  const byName = vms.find((vm) => vm.name === target);
  if (byName !== undefined) return byName;
  const byAddress = vms.filter((vm) => vm.interfaces.some((i) => i.address.split("/")[0] === target));
  const byHost = vms.filter((vm) => vm.hostname === target || vm.hostname.split(".")[0] === target);
  const matches = [...new Set([...byAddress, ...byHost])];
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) {
    throw new SkiffError("ERR_SKIFF_VM_AMBIGUOUS", `${target} is the address or hostname of ${matches.length} VMs: ${matches.map((v) => v.name).join(", ")}`, {
      place: "vm",
      hint: "name the VM",
      details: { vms: matches.map((v) => v.name) },
    });
  }
  throw new SkiffError("ERR_SKIFF_VM_NOT_FOUND", `no VM named ${target}, nor with that address or hostname`, { place: "vm", hint: "range_status or vm_helo list the VMs" });
}
