/**
 * The library's errors name the option field they are about (`memory`,
 * `networks[1].ip`, `keep`), as the API and the SDK take them; a person at
 * the CLI typed flags. This turns a field into the flag (or argument) of
 * the command that ran: most flags are their field in kebab case
 * (`--project-name` fills `projectName`), so commander's own option list
 * answers; the table below holds the ones named otherwise. A place that
 * is no field of the command (a VM name, a file's line:column, a flag
 * already) is printed as it is.
 */
import type { Command } from "commander";

/** Fields filled by a flag of another name, wherever the command has that flag. */
const renamed: Readonly<Record<string, string>> = {
  networks: "--network",
  "networks.ip": "--ip",
  "network.forwards": "--publish",
  mounts: "--volume",
  userDataPath: "--user-data",
  sizeBytes: "--size",
  files: "--file",
  workingDir: "--workdir",
  labels: "--label",
  autoRemove: "--rm",
};

/** Where one command fills a field from a flag named for something else (by command path without `skiff`). */
const perCommand: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  run: { snapshot: "--from" },
  fork: { prefix: "--name" },
};

/** The command's path below the program (`snapshot gc`). */
export function pathOf(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent != null; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/** The command and the groups above it (`skiff compose logs` reads -f/-p of `compose`), not the program's global flags. */
function chain(cmd: Command): Command[] {
  const out: Command[] = [];
  for (let c: Command | null = cmd; c?.parent != null; c = c.parent) out.push(c);
  return out;
}

function hasFlag(cmd: Command, flag: string): boolean {
  return chain(cmd).some((c) => c.options.some((o) => o.long === flag || o.short === flag));
}

/** The flag or ARGUMENT that fills `place` in `cmd`, or `place` itself when it is no field there. */
export function cliPlace(place: string, cmd: Command | undefined): string {
  if (cmd === undefined) return place;
  // networks[1].ip is --ip whichever network it is about.
  const field = place.replace(/\[\d+\]/g, "");
  const named = perCommand[pathOf(cmd)]?.[field] ?? renamed[field];
  if (named !== undefined && hasFlag(cmd, named)) return named;
  for (const c of chain(cmd)) {
    const option = c.options.find((o) => o.attributeName() === field);
    if (option !== undefined) return option.long ?? option.short ?? place;
    // `snapshot` is one of `skiff snapshot rm <snapshots...>`.
    const argument = c.registeredArguments.find((a) => a.name() === field || a.name() === `${field}s`);
    if (argument !== undefined) return argument.name().toUpperCase();
  }
  return place;
}
