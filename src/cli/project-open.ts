/**
 * The project a compose verb acts on: -f/-p (given to the verb or to the
 * `compose` group above it), the file loaded, and its verbs reporting to
 * stderr. Its own module: every compose verb's module needs it.
 */
import type { Command } from "commander";
import type { Project } from "../project/project.js";
import type { CliContext } from "./context.js";
import { taskReporter } from "./task-list.js";

export interface ProjectFlags {
  file: string[];
  projectName?: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/**
 * -f/-p on a top-level verb (`skiff up -f x.yml`); under `skiff compose`
 * they belong to the group, as in `docker compose -f x.yml logs -f`, and a
 * verb reads them with projectFlags(cmd).
 */
export function addProjectFlags(cmd: Command, own = true): Command {
  if (!own) return cmd;
  return cmd
    .option("-f, --file <path>", "project file (repeatable: later files override earlier ones; default: found upward from here)", collect, [])
    .option("-p, --project-name <name>", "project name (default: the project directory's name)");
}

/** -f/-p as given to the verb or to the `compose` group above it. */
export function projectFlags(cmd: Command): ProjectFlags {
  const o = cmd.optsWithGlobals<Partial<ProjectFlags>>();
  return { file: o.file ?? [], ...(o.projectName === undefined ? {} : { projectName: o.projectName }) };
}

/** The project of the flags, its verbs reporting to stderr (a live list on a terminal). */
export async function openProject(ctx: CliContext, flags: ProjectFlags): Promise<{ project: Project; finish: () => void }> {
  const [{ loadProject }, { Project }] = await Promise.all([import("../index.js"), import("../project/project.js")]);
  const spec = await loadProject({
    cwd: process.cwd(),
    ...(flags.file.length === 0 ? {} : { files: flags.file }),
    ...(flags.projectName === undefined ? {} : { projectName: flags.projectName }),
  });
  if (!ctx.flags.json) for (const w of spec.warnings) process.stderr.write(`skiff: warning (${w.place}): ${w.message}\n`);
  const project = new Project(await ctx.skiff(), spec);
  if (ctx.flags.json) return { project, finish: () => undefined };
  const reporter = taskReporter();
  project.on("task", (e) => reporter.task(e));
  project.on("output", (e) => reporter.output(e));
  return { project, finish: () => reporter.close() };
}

/** Run `fn` on the project, closing the task list however it ends. */
export async function withProject<T>(ctx: CliContext, flags: ProjectFlags, fn: (p: Project) => Promise<T>): Promise<T> {
  const { project, finish } = await openProject(ctx, flags);
  try {
    return await fn(project);
  } finally {
    finish();
  }
}
