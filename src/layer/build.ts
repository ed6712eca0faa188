/**
 * Applying layers inside a running build VM, in order: for each layer its
 * packages (the image's own package manager), configs, binaries, `run`
 * commands and `start` script; then package caches are cleaned and the disk
 * synced. The VM itself (boot, power-off, turning its disk into an image)
 * is the engine's (engine/layers.ts): this file only talks to the guest.
 */
import { posix } from "node:path";
import { Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { SkiffError } from "../errors.js";
import type { BuildLog } from "./build-log.js";
import { aptMirrorCommands, cleanCommand, detectScript, installCommand, parseDetected, policyRcD, prepareCommand, shq, type PackageManager } from "./package-manager.js";
import type { LayerSpec } from "./schema.js";

/** What the build needs of the VM. */
export interface BuildVm {
  /** `command` by the image's /bin/sh as root in /; output to `out` (not ended: its last chunks may still be on their way); the exit code. */
  sh(command: string, out: Writable, input?: string): Promise<number>;
  /** docker cp semantics (guest/agent-copy.ts). */
  copyTo(hostPath: string, guestPath: string): Promise<void>;
}

export type LayerStep = "prepare" | "packages" | "configs" | "binary" | "run" | "start" | "finish";

export interface LayerStepEvent {
  /** "" for steps of the build as a whole (prepare, finish). */
  layer: string;
  /** 1-based position of the layer; 0 for the build's own steps. */
  index: number;
  count: number;
  step: LayerStep;
  /** What is being done ("apt-get install redis-server", "etc/redis/redis.conf"). */
  detail: string;
}

export interface ApplyOptions {
  log: BuildLog;
  /** apt only: a mirror the guest reaches (already rewritten to its guest-side URL). */
  aptMirror?: { url: string; flat: boolean; trusted: boolean };
  onStep?: (e: LayerStepEvent) => void;
}

/** Where start scripts go; skiff-init runs and supervises each file there at boot. */
export const startDir = "/etc/skiff/start.d";

export function startScriptPath(index: number, layer: string): string {
  return `${startDir}/${String(index).padStart(2, "0")}-${layer}`;
}

/** Init starts start.d in name order, so `100-x` would run before `11-y` (guest/start-scripts.c). */
export const maxStartLayers = 99;

/** Refuse, before a build VM boots, a start script init would run out of the layers' order. */
export function checkStartOrder(layers: readonly Pick<LayerSpec, "name" | "start">[]): void {
  const late = layers.findIndex((l, i) => i + 1 > maxStartLayers && l.start !== undefined);
  if (late < 0) return;
  throw new SkiffError("ERR_SKIFF_USAGE", `layer ${layers[late]!.name} has a start script at position ${late + 1}, after the ${maxStartLayers}th layer`, {
    place: "layers",
    hint: `start scripts are numbered by position in two digits: give layers with a start script among the first ${maxStartLayers}`,
  });
}

export async function applyLayers(vm: BuildVm, layers: readonly LayerSpec[], opts: ApplyOptions): Promise<void> {
  const count = layers.length;
  const step = (layer: LayerSpec | undefined, index: number, name: LayerStep, detail: string) => {
    opts.log.note(`${layer?.name ?? "build"}: ${name}: ${detail}`);
    opts.onStep?.({ layer: layer?.name ?? "", index, count, step: name, detail });
  };
  const sh = async (layer: LayerSpec | undefined, name: LayerStep, command: string, input?: string): Promise<void> => {
    opts.log.note(`$ ${command}`);
    const out = opts.log.output();
    const code = await vm.sh(command, out, input);
    await drained(out);
    if (code !== 0) throw buildFailed(layer?.name ?? "(build)", name, command, code, opts.log);
  };

  const needsPackages = layers.some((l) => l.packages.length > 0);
  let pm: PackageManager | undefined;
  let mirror: { use: string; restore: string } | undefined;
  if (needsPackages) {
    step(undefined, 0, "prepare", "detecting the package manager");
    const out = opts.log.output();
    let detected = "";
    const collect = new Writable({
      write(chunk: Buffer, _e, done) {
        detected += chunk.toString("utf8");
        out.write(chunk, () => done());
      },
    });
    await vm.sh(detectScript, collect);
    await drained(collect);
    pm = parseDetected(detected, layers.find((l) => l.packages.length > 0)!.name);
    if (pm === "apt") {
      await sh(undefined, "prepare", policyRcD.install);
      if (opts.aptMirror !== undefined) {
        mirror = aptMirrorCommands(opts.aptMirror.url, opts.aptMirror);
        step(undefined, 0, "prepare", `apt sources -> ${opts.aptMirror.url}`);
        await sh(undefined, "prepare", mirror.use);
      }
    }
    const prepare = prepareCommand(pm);
    if (prepare !== undefined) {
      step(undefined, 0, "prepare", prepare);
      await sh(undefined, "prepare", prepare);
    }
  }

  for (const [i, layer] of layers.entries()) {
    const index = i + 1;
    if (layer.packages.length > 0 && pm !== undefined) {
      const command = installCommand(pm, layer.packages);
      step(layer, index, "packages", layer.packages.join(" "));
      await sh(layer, "packages", command);
    }
    for (const rel of layer.configs) {
      const guest = `/${rel}`;
      step(layer, index, "configs", guest);
      await sh(layer, "configs", `mkdir -p ${shq(posix.dirname(guest))}`);
      await copy(vm, layer, "configs", posix.join(layer.dir, rel), posix.dirname(guest), opts.log);
    }
    for (const bin of layer.binaries) {
      step(layer, index, "binary", bin.dest);
      const intoDir = bin.dest.endsWith("/");
      const parent = intoDir ? bin.dest : posix.dirname(bin.dest);
      await sh(layer, "binary", `mkdir -p ${shq(parent)}`);
      await copy(vm, layer, "binary", bin.source, bin.dest, opts.log);
      const final = intoDir ? posix.join(bin.dest, posix.basename(bin.source)) : bin.dest;
      await sh(layer, "binary", `f=${shq(final)}; if [ -d "$f" ]; then f="$f/${posix.basename(bin.source)}"; fi; chmod 0755 "$f"`);
    }
    for (const command of layer.run) {
      step(layer, index, "run", firstLine(command));
      await sh(layer, "run", command);
    }
    if (layer.start !== undefined) {
      const path = startScriptPath(index, layer.name);
      step(layer, index, "start", path);
      const body = `#!/bin/sh\n# start script of layer ${layer.name} (skiff)\n${layer.start.endsWith("\n") ? layer.start : `${layer.start}\n`}`;
      await sh(layer, "start", `mkdir -p ${startDir} && cat > ${path} && chmod 0755 ${path}`, body);
    }
  }

  step(undefined, 0, "finish", "cleaning package caches");
  if (mirror !== undefined) await sh(undefined, "finish", mirror.restore);
  if (pm !== undefined) {
    await sh(undefined, "finish", cleanCommand(pm));
    if (pm === "apt") await sh(undefined, "finish", policyRcD.undo);
  }
  await sh(undefined, "finish", "sync");
}

async function copy(vm: BuildVm, layer: LayerSpec, step: LayerStep, host: string, guest: string, log: BuildLog): Promise<void> {
  log.note(`copy ${host} -> ${guest}`);
  try {
    await vm.copyTo(host, guest);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new SkiffError("ERR_SKIFF_BUILD_FAILED", `layer ${layer.name}: ${step}: copying ${host} to ${guest} failed: ${why}`, {
      hint: `see the build log: ${log.path}`,
      cause: err,
      details: { layer: layer.name, step, source: host, dest: guest, logPath: log.path },
    });
  }
}

/**
 * Once `out` has taken all a step wrote to it. A command's last output and
 * its exit come together, and the log's streams write to a file: without
 * this the log's next line (and the error's tail) came before the step's
 * last lines.
 */
async function drained(out: Writable): Promise<void> {
  out.end();
  await finished(out);
}

function firstLine(command: string): string {
  const line = command.trim().split("\n")[0] ?? "";
  return line.length > 70 ? `${line.slice(0, 67)}...` : line;
}

export function buildFailed(layer: string, step: LayerStep, command: string, exitCode: number, log: BuildLog): SkiffError {
  const tail = log.tail();
  return new SkiffError(
    "ERR_SKIFF_BUILD_FAILED",
    `layer ${layer}: ${step} failed: \`${firstLine(command)}\` exited ${exitCode}${tail === "" ? "" : `\n--- last lines of its output ---\n${tail}`}`,
    {
      hint: `the whole build log: ${log.path}`,
      details: { layer, step, command, exitCode, tail, logPath: log.path },
    },
  );
}
