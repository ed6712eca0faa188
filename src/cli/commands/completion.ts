/**
 * `skiff completion bash|zsh|fish` prints a completion script; the hidden
 * `skiff __complete KIND` lists the names those scripts offer at Tab time.
 * It reads the records only (no reconcile, no QEMU, no network setup), so a
 * Tab press costs one Node start.
 */
import { Argument, type Command } from "commander";
import { completionTree, nameKinds, type NameKind } from "../completion-spec.js";
import { bashScript, fishScript, zshScript } from "../completion-scripts.js";
import type { CliContext } from "../context.js";

const scripts = { bash: bashScript, zsh: zshScript, fish: fishScript } as const;

async function names(ctx: CliContext, kind: NameKind): Promise<string[]> {
  const skiff = await ctx.skiff();
  switch (kind) {
    case "vms":
      return (await skiff.store.list()).map((r) => r.name);
    case "images":
      return skiff.images.names();
    case "networks":
      return skiff.networks.names();
    case "volumes":
      return skiff.volumes.names();
  }
}

export function registerCompletion(program: Command, ctx: CliContext): void {
  program
    .command("completion")
    .description("print a shell completion script (commands, flags, VM, image, network and volume names)")
    .addArgument(new Argument("<shell>", "bash, zsh or fish").choices(Object.keys(scripts)))
    .action((shell: keyof typeof scripts) => {
      process.stdout.write(scripts[shell](completionTree(program)));
    });

  program
    .command("__complete", { hidden: true })
    .description("list names for shell completion, one a line")
    .addArgument(new Argument("<kind>").choices(nameKinds))
    .action(async (kind: NameKind) => {
      // Unreadable records are not worth an error under the user's cursor: offer what could be read.
      const found = await names(ctx, kind).catch(() => []);
      process.stdout.write([...new Set(found)].sort().map((n) => `${n}\n`).join(""));
    });
}
