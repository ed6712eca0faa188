/**
 * What the engine's verbs share: the store, the paths, the runner, host facts
 * and the event sink. `Skiff` is one; the verbs in their own modules take it
 * so the class stays a thin facade.
 */
import type { EventEmitter } from "node:events";
import { SkiffError } from "../errors.js";
import { asNoSpace } from "../image/unpack/errors.js";
import type { Runner } from "../process/runner.js";
import type { BrokenRecord } from "../store/record.js";
import type { VmStore } from "../store/store.js";
import type { Phase, SkiffEvents } from "./events.js";
import type { HostFacts } from "./host.js";

export interface EngineContext extends Pick<EventEmitter<SkiffEvents>, "emit"> {
  readonly store: VmStore;
  readonly home: string;
  readonly cacheDir: string;
  readonly runner: Runner;
  hostFacts(): Promise<HostFacts>;
}

export function progress(ctx: EngineContext, vm: string, phase: Phase, message: string, startedAt: number): void {
  ctx.emit("progress", { vm, phase, message, elapsedMs: Date.now() - startedAt });
}

/** Records that failed their check (a network's, a volume's), each a warning with its reason and how to remove it. */
export function warnBroken(ctx: EngineContext, broken: readonly BrokenRecord[]): void {
  for (const b of broken) progress(ctx, b.name, "warning", `${b.error.message}; ${b.error.hint ?? ""}`, Date.now());
}

/** A disk under the skiff home that filled up (an errno, or a tool's stderr), as ERR_SKIFF_NO_SPACE saying where to make room. */
export function homeNoSpace(err: unknown, dir: string, what: string): unknown {
  return asNoSpace(err, dir, what, { hint: `free space on the filesystem holding ${dir} (\`df -h ${dir}\`), or point SKIFF_HOME at a bigger disk` });
}

export function notRunning(name: string): SkiffError {
  return new SkiffError("ERR_SKIFF_VM_NOT_RUNNING", `${name} is not running`, {
    hint: `start it with \`skiff start ${name}\``,
    place: name,
  });
}
