/** `skiff config`: the project as skiff understood it; `skiff config schema`: skiff.yml's JSON Schema. */
import type { Command } from "commander";
import { SkiffError } from "../../pure.js";
import type { CliContext } from "../context.js";
import { addProjectFlags, projectFlags } from "../project-open.js";

export function registerProjectConfig(parent: Command, ctx: CliContext, own: boolean): void {
  addProjectFlags(
    parent
      .command("config")
      .description("print the project as skiff reads it (any format, translated), or with `schema` skiff.yml's JSON Schema")
      .argument("[what]", "schema: print the JSON Schema of skiff.yml (for editors)")
      .option("--format <format>", "yaml (default) or json"),
    own,
  ).action(async (what: string | undefined, opts: { format?: string }, cmd: Command) => {
    const flags = { ...projectFlags(cmd), ...opts };
    const format = flags.format ?? (ctx.flags.json ? "json" : "yaml");
    if (format !== "yaml" && format !== "json") {
      throw new SkiffError("ERR_SKIFF_USAGE", `unknown format: ${format}`, { place: "--format", hint: "use yaml or json" });
    }
    let value: unknown;
    if (what === "schema") {
      const { skiffJsonSchema } = await import("../../index.js");
      value = await skiffJsonSchema();
    } else if (what === undefined) {
      const { loadProject, renderProject } = await import("../../index.js");
      const spec = await loadProject({
        cwd: process.cwd(),
        ...(flags.file.length === 0 ? {} : { files: flags.file }),
        ...(flags.projectName === undefined ? {} : { projectName: flags.projectName }),
      });
      for (const w of spec.warnings) process.stderr.write(`skiff: warning (${w.place}): ${w.message}\n`);
      value = await renderProject(spec);
    } else {
      throw new SkiffError("ERR_SKIFF_USAGE", `unknown argument: ${what}`, { place: "config", hint: "use `skiff config` or `skiff config schema`" });
    }
    process.stdout.write(format === "json" ? JSON.stringify(value, null, 2) + "\n" : await (await import("../../index.js")).toYaml(value));
  });
}
