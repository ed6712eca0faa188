/**
 * Broken VMs: a directory whose config.json, state.json or creating.json
 * fails its schema. It is listed apart with the reason, every verb but `rm`
 * refuses it with that reason, and it is never in the way of other VMs.
 */
import type { SkiffError } from "../errors.js";
import { namePattern } from "../util/names.js";
import { corruptRecord } from "./record.js";
import type { VmConfig, VmPaths } from "./vmdir.js";

/** A VM directory with a record that fails its check; reported, never hidden, removable with `rm -f`. */
export interface BrokenVm {
  broken: true;
  id: string;
  /** The name config.json still gives, if it gives one. */
  name: string | undefined;
  paths: VmPaths;
  /** config.json when it passed and another file failed: the VM still holds its name, addresses, ports and volumes. */
  config: VmConfig | undefined;
  /** Which file and what is wrong with it: "state.json: not valid JSON (truncated or garbage)". */
  reason: string;
  /** ERR_SKIFF_STATE_CORRUPT saying so, with the hint to remove the VM. */
  error: SkiffError;
}

export function isBroken(vm: { id: string }): vm is BrokenVm {
  return "broken" in vm;
}

/** A broken VM, with the error every verb but `rm` meets. */
export function brokenVm(id: string, paths: VmPaths, reason: string, known: { name?: string | undefined; config?: VmConfig } = {}): BrokenVm {
  const ref = known.name ?? id;
  const error = corruptRecord(`VM ${known.name === undefined ? id : `${known.name} (id ${id})`}`, reason, {
    hint: `remove it with \`skiff rm -f ${ref}\` (skiff cannot repair it; its files are in ${paths.dir})`,
    place: ref,
    details: { id, dir: paths.dir },
  });
  return { broken: true, id, name: known.name, paths, config: known.config, reason, error };
}

/** The name a config.json that failed its check still gives, when it is a usable one. */
export function nameIn(raw: unknown): string | undefined {
  const spec = typeof raw === "object" && raw !== null ? (raw as { spec?: unknown }).spec : undefined;
  const name = typeof spec === "object" && spec !== null ? (spec as { name?: unknown }).name : undefined;
  return typeof name === "string" && namePattern.test(name) ? name : undefined;
}

