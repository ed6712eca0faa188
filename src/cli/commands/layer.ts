/**
 * skiff layer ls|build, and skiff image bootstrap (the `debian` base layers build on).
 */
import type { Command } from "commander";
import { defaultSuite, formatDuration } from "../../pure.js";
import { cancellable } from "../cancel.js";
import type { CliContext } from "../context.js";
import { layerReporter } from "../layer-progress.js";
import { table } from "../output.js";

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function registerLayer(program: Command, ctx: CliContext): void {
  const layer = program.command("layer").description("layers: packages, configs and services built into an image");

  layer
    .command("ls")
    .description("list the layers found: the --path directories in order, then skiff's standard library")
    .option("--path <dir>", "a directory of layers, searched before the standard library (repeatable)", collect)
    .option("--json", "print JSON")
    .action(async (flags: { path?: string[] }) => {
      const found = await (await ctx.skiff()).layers.list(flags.path ?? []);
      const rows = found.map(({ spec, ...l }) => ({ ...l, packages: spec.packages, start: spec.start !== undefined, description: spec.description }));
      if (ctx.flags.json) {
        process.stdout.write(JSON.stringify(rows, null, 2) + "\n");
        return;
      }
      process.stdout.write(
        table(
          ["LAYER", "FROM", "START", "PACKAGES"],
          rows.map((r) => [r.name, r.stdlib ? "stdlib" : r.dir, r.start ? "yes" : "", r.packages.join(" ")]),
        ),
      );
    });

  layer
    .command("build")
    .description("build layers (in order) on an image into a new image; prints its name")
    .argument("<layers...>")
    .option("--from <image>", "the base image (default debian, see `skiff image bootstrap`)")
    .option("--path <dir>", "a directory of layers, searched before the standard library (repeatable)", collect)
    .option("--apt-mirror <url>", "apt mirror or flat repository for the build (default: $SKIFF_APT_MIRROR, else the image's sources)")
    .option("--force", "build again even if the image is cached")
    .action(async (layers: string[], flags: { from?: string; path?: string[]; aptMirror?: string; force?: boolean }) => {
      const skiff = await ctx.skiff();
      if (!ctx.flags.json) skiff.on("layer", layerReporter());
      // ^C or SIGTERM: the build VM is removed before skiff exits.
      const result = await cancellable("the layer build", (signal) =>
        skiff.buildLayers({
          layers,
          searchPaths: flags.path ?? [],
          ...(flags.from === undefined ? {} : { base: flags.from }),
          ...(flags.aptMirror === undefined ? {} : { aptMirror: flags.aptMirror }),
          ...(flags.force === true ? { force: true } : {}),
          signal,
        }),
      );
      process.stdout.write(ctx.flags.json ? JSON.stringify(result, null, 2) + "\n" : `${result.image}\n`);
    });

  const image = program.commands.find((c) => c.name() === "image") ?? program.command("image");
  image
    .command("bootstrap")
    .description("make the Debian base image `debian` on the host with mmdebstrap (minbase)")
    .option("--suite <suite>", `Debian suite (default ${defaultSuite})`)
    .option("--mirror <url>", "Debian mirror, or a flat repository (a Packages index at its top)")
    .option("--name <name>", "local image name (default debian)")
    .option("--include <pkgs>", "extra packages, comma-separated")
    .action(async (flags: { suite?: string; mirror?: string; name?: string; include?: string }) => {
      const skiff = await ctx.skiff();
      if (!ctx.flags.json) process.stderr.write(`bootstrapping Debian ${flags.suite ?? defaultSuite} with mmdebstrap…\n`);
      const r = await skiff.images.bootstrapDebian({
        ...(flags.suite === undefined ? {} : { suite: flags.suite }),
        ...(flags.mirror === undefined ? {} : { mirror: flags.mirror }),
        ...(flags.name === undefined ? {} : { name: flags.name }),
        ...(flags.include === undefined ? {} : { include: flags.include.split(",").map((p) => p.trim()).filter((p) => p !== "") }),
      });
      if (ctx.flags.json) process.stdout.write(JSON.stringify(r, null, 2) + "\n");
      else {
        // The files' date makes the image reproducible: a bootstrap again from the same mirror names the same image.
        const dated = r.sourceDateEpoch === undefined ? "" : `; dated ${new Date(r.sourceDateEpoch * 1000).toISOString().replace(".000Z", "Z")}`;
        process.stdout.write(`${r.name} (${r.digest.slice(0, 19)}${dated}; mmdebstrap ${formatDuration(r.bootstrapMs)}, import ${formatDuration(r.importMs)})\n`);
      }
    });
}
