/**
 * A project's VMs, found by their labels (never by their names: a VM that
 * happens to be called like a service is not the project's).
 */
import type { Skiff, VmRecord } from "../index.js";
import { labels } from "./names.js";

export async function projectVms(skiff: Skiff, project: string): Promise<VmRecord[]> {
  const all = await skiff.store.list();
  return all
    .filter((vm) => vm.config.spec.labels[labels.project] === project)
    .sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }));
}

export async function serviceVms(skiff: Skiff, project: string, service: string): Promise<VmRecord[]> {
  return (await projectVms(skiff, project)).filter((vm) => vm.config.spec.labels[labels.service] === service);
}

/** The VMs of `services` (all the project's when none are given). */
export async function vmsOfServices(skiff: Skiff, project: string, services: readonly string[]): Promise<VmRecord[]> {
  const vms = await projectVms(skiff, project);
  if (services.length === 0) return vms;
  const wanted = new Set(services);
  return vms.filter((vm) => wanted.has(vm.config.spec.labels[labels.service] ?? ""));
}

export function serviceOf(vm: VmRecord): string {
  return vm.config.spec.labels[labels.service] ?? vm.name;
}
