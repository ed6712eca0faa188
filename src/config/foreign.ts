/**
 * What the loaders of files written for other tools (docker-compose.yml,
 * pontoon.yml, VMFile.kdl) share: errors and warnings with places, and
 * memory sizes that skiff's guests can boot in.
 */
import { SkiffError } from "../errors.js";
import type { ConfigWarning, Place, ServiceSpec } from "../project/types.js";

/** ERR_SKIFF_CONFIG at `place`. */
export function configFail(message: string, place: Place, hint?: string): never {
  throw new SkiffError("ERR_SKIFF_CONFIG", message, { place, ...(hint === undefined ? {} : { hint }) });
}

/** A parser of units.ts or ports.ts failed on a file's value: the same words, as ERR_SKIFF_CONFIG at the value's place. */
export function asConfigError<T>(place: Place, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof SkiffError && err.code !== "ERR_SKIFF_CONFIG") {
      throw new SkiffError("ERR_SKIFF_CONFIG", err.message, { place, ...(err.hint === undefined ? {} : { hint: err.hint }) });
    }
    throw err;
  }
}

/**
 * Warnings, one per key per file: a compose file with `privileged: true` in
 * ten services says so once, naming the ten services, not ten times.
 */
export class Warnings {
  private readonly byKey = new Map<string, { place: Place; why: string; services: string[] }>();

  /** `key` (in `service`, if any) has no meaning here, because `why`. */
  add(key: string, place: Place, why: string, service?: string): void {
    const id = `${fileOf(place)}\0${key}`;
    const seen = this.byKey.get(id);
    if (seen === undefined) this.byKey.set(id, { place, why, services: service === undefined ? [] : [service] });
    else if (service !== undefined && !seen.services.includes(service)) seen.services.push(service);
  }

  list(): ConfigWarning[] {
    return [...this.byKey.entries()].map(([id, w]) => {
      const key = id.slice(id.indexOf("\0") + 1);
      const where = w.services.length === 0 ? "" : ` (service${w.services.length > 1 ? "s" : ""} ${w.services.join(", ")})`;
      return { message: `${key}${where}: ${w.why}`, place: w.place };
    });
  }
}

function fileOf(place: Place): string {
  const m = /^(.*):\d+:\d+$/.exec(place);
  return m === null ? place : m[1]!;
}

/**
 * What a service of a foreign file gets when the file asks for less: tools
 * written for tiny Alpine kernels ask for 64 or 128 MiB, in which skiff's
 * Debian kernel does not boot (it needs ~144 MiB, kernel/boot-memory.ts;
 * `skiff doctor` shows it). 160 boots it with some room for the service.
 * A file is parsed before any kernel is chosen, so this is a fixed figure;
 * skiff.yml's `memory:` is taken as written and checked at create.
 */
export const foreignMemoryFloorMiB = 160;

/**
 * Memory for a guest: below foreignMemoryFloorMiB the file still loads,
 * with that floor applied and a warning.
 */
export function guestMemoryMiB(mib: number, key: string, place: Place, warnings: Warnings, service: string): number {
  if (mib >= foreignMemoryFloorMiB) return mib;
  warnings.add(
    `${key} below ${foreignMemoryFloorMiB} MiB`,
    place,
    `skiff's guest kernel needs at least ${foreignMemoryFloorMiB} MiB; those VMs get ${foreignMemoryFloorMiB} MiB`,
    service,
  );
  return foreignMemoryFloorMiB;
}

/**
 * A size such as 512m or 1g in MiB (rounded up): units b/k/m/g/t, binary, an
 * optional trailing b. A bare number is bytes in compose (Docker's rule) and
 * MiB in pontoon (as skiff reads `--memory`).
 */
export function sizeToMiB(v: string | number, place: Place, bare: "bytes" | "MiB"): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?$/i.exec(String(v).trim());
  if (m === null) configFail(`not a size: ${JSON.stringify(v)}`, place, `give a size such as 512m or 1g (a bare number is ${bare === "bytes" ? "bytes, as in compose" : "MiB"})`);
  const unit = m[2]!.toLowerCase() || (bare === "bytes" ? "b" : "m");
  const exp = { b: 0, k: 1, m: 2, g: 3, t: 4 }[unit] ?? 0;
  return Math.ceil((Number(m[1]) * 1024 ** exp) / 1024 ** 2);
}

/** What a service is when its format has nothing to say about it (fresh lists each call). */
export function serviceBlanks(): Pick<ServiceSpec, "layers" | "kernelArgs" | "environment" | "ports" | "dns" | "volumes" | "dependsOn" | "restart" | "replicas" | "provision"> {
  return { layers: [], kernelArgs: [], environment: {}, ports: [], dns: [], volumes: [], dependsOn: [], restart: "no", replicas: 1, provision: [] };
}
