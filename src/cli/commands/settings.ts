/**
 * `skiff settings show|init`: the user's settings file (settings.ts). Not
 * `skiff config`, which is the project file's verb (as `docker compose
 * config`) and takes an argument of its own (`skiff config schema`).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { Command } from "commander";
import { errnoOf, SkiffError } from "../../pure.js";
import type { CliContext } from "../context.js";
import { loadSettings, settingsPath, settingsTemplate } from "../settings.js";

export function registerSettings(program: Command, ctx: CliContext): void {
  const settings = program.command("settings").description("the user settings file (defaults for run and create, registries): show, init");

  settings
    .command("show")
    .description("print where the settings file is and what it sets")
    .option("--json", "print JSON")
    .action(async () => {
      const path = settingsPath();
      const values = await loadSettings(path);
      if (ctx.flags.json) {
        process.stdout.write(JSON.stringify({ path, settings: values }, null, 2) + "\n");
        return;
      }
      const lines = Object.entries(values).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ") : String(v)}`);
      process.stdout.write(`# ${path}\n${lines.length === 0 ? "# (nothing set: skiff's defaults apply)\n" : lines.join("\n") + "\n"}`);
    });

  settings
    .command("init")
    .description("write a settings file with every setting commented out (refused if one exists, unless --force)")
    .option("--force", "replace an existing file")
    .action(async (flags: { force?: boolean }) => {
      const path = settingsPath();
      await mkdir(dirname(path), { recursive: true });
      try {
        await writeFile(path, settingsTemplate, { flag: flags.force === true ? "w" : "wx" });
      } catch (err) {
        if (errnoOf(err) !== "EEXIST") throw err;
        throw new SkiffError("ERR_SKIFF_USAGE", `${path} exists already`, { place: path, hint: "edit it, or `skiff settings init --force` to start again" });
      }
      process.stdout.write(`${path}\n`);
    });
}
