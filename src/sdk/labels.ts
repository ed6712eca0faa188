/**
 * A sandbox's metadata and deadline live in its VM's labels, where any
 * process sharing the home (or a server) reads them back: E2B's metadata as
 * labels of the same names, the deadline under a key of skiff's own.
 */
import { SkiffError, type VmInfo } from "../index.js";
import type { CreateSandboxRequest, SandboxInfo } from "./backend.js";
import { endOf, timeoutLabel } from "../api/deadline.js";

/** Labels under this prefix are the SDK's; metadata may not use it. */
export const reservedPrefix = "skiff.sdk.";
/** How long after it (last) started the sandbox is killed, in ms (src/api/deadline.ts, where the server reads it too). */
export { endOf, expired, timeoutLabel } from "../api/deadline.js";

export function labelsOf(metadata: Record<string, string>, timeoutMs: number | undefined): Record<string, string> {
  for (const [key, value] of Object.entries(metadata)) {
    if (key.startsWith(reservedPrefix)) {
      throw new SkiffError("ERR_SKIFF_USAGE", `metadata key ${JSON.stringify(key)} is reserved for skiff`, { place: "metadata", hint: `use keys not starting with ${reservedPrefix}` });
    }
    if (typeof value !== "string") throw new SkiffError("ERR_SKIFF_USAGE", `metadata ${JSON.stringify(key)} must be a string`, { place: "metadata" });
  }
  return timeoutMs === undefined ? { ...metadata } : { ...metadata, [timeoutLabel]: String(Math.round(timeoutMs)) };
}

export function sandboxInfo(vm: VmInfo): SandboxInfo {
  const metadata = Object.fromEntries(Object.entries(vm.labels).filter(([k]) => !k.startsWith(reservedPrefix)));
  return {
    sandboxId: vm.name,
    templateId: vm.image,
    state: vm.state,
    metadata,
    startedAt: vm.startedAt === undefined ? undefined : new Date(vm.startedAt),
    endAt: endOf(vm),
    cpuCount: vm.cpus,
    memoryMB: vm.memoryMiB,
  };
}

/** The labels of a new sandbox; refuses the image's options with a snapshot (those come from the snapshot). */
export function createLabels(req: CreateSandboxRequest): Record<string, string> {
  const labels = labelsOf(req.metadata ?? {}, req.timeoutMs);
  const extra = req.snapshot === undefined ? [] : (["image", "memory", "cpus", "envs"] as const).filter((k) => req[k] !== undefined);
  if (extra.length > 0) {
    throw new SkiffError("ERR_SKIFF_USAGE", `a sandbox restored from a snapshot takes its ${extra.join(", ")} from the snapshot`, {
      place: extra[0],
      hint: "leave these out with snapshot, or create from an image instead",
    });
  }
  return labels;
}

/** A fresh prefix for each fork: a second fork of one sandbox must not collide with the first's names. */
export function forkPrefix(id: string): string {
  return `${id}-f${Date.now().toString(36).slice(-4)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
}
