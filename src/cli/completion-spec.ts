/**
 * What shell completion needs to know about the command tree, read from the
 * commander program itself (so a new flag or verb completes without anyone
 * touching the scripts): for each command path its verbs, flags, which flags
 * take a value, and what kind of name each positional argument and valued
 * flag takes. The names themselves (VMs, images, …) are listed at Tab time
 * by `skiff __complete KIND`.
 */
import type { Command } from "commander";

/** Names `skiff __complete` lists. */
export const nameKinds = ["vms", "images", "networks", "volumes"] as const;
export type NameKind = (typeof nameKinds)[number];

export interface CompletionNode {
  /** `image ls`; "" for the program itself. */
  path: string;
  verbs: string[];
  /** Every flag spelling (-m and --memory). */
  flags: string[];
  /** Flags that take a value (the next word is not a verb or argument). */
  valued: string[];
  /** The kind of name each positional takes ("-" for none); a trailing `*` repeats the last. */
  args: string[];
  /** Valued flags whose value is a name: `--network` → networks. */
  flagKinds: Record<string, NameKind>;
  description: string;
}

function isHidden(cmd: Command): boolean {
  return (cmd as unknown as { _hidden?: boolean })._hidden === true;
}

/** The kind of name a positional of `path` called `arg` takes. */
function argumentKind(path: string[], arg: string): NameKind | "-" {
  const group = path.length > 1 ? path[0] : undefined;
  const isName = arg === "name" || arg === "names";
  // `network create NAME` and the like want a new name; a tcpdump filter is free text.
  if ((group !== undefined && path[1] === "create") || arg === "filter") return "-";
  if (group === "network") return isName ? "networks" : "-";
  if (group === "volume") return isName ? "volumes" : "-";
  if (arg === "image" || arg === "images") return "images";
  if (isName && (group === undefined || group === "autostart")) return "vms";
  return "-";
}

const flagKindsByLong: Record<string, NameKind> = { "--network": "networks", "--from": "images" };

export function completionTree(program: Command): CompletionNode[] {
  const nodes: CompletionNode[] = [];
  const walk = (cmd: Command, path: string[]): void => {
    const options = cmd.options.filter((o) => !o.hidden);
    const spell = (o: (typeof options)[number]) => [o.short, o.long].filter((f): f is string => f !== undefined);
    const flags = [...options.flatMap(spell), "-h", "--help"];
    const valued = options.filter((o) => o.required || o.optional).flatMap(spell);
    const flagKinds: Record<string, NameKind> = {};
    for (const o of options) {
      const kind = o.long === undefined ? undefined : flagKindsByLong[o.long];
      if (kind !== undefined) for (const f of spell(o)) flagKinds[f] = kind;
    }
    const args = cmd.registeredArguments.map((a) => argumentKind(path, a.name()) + (a.variadic ? "*" : ""));
    const subs = cmd.commands.filter((c) => !isHidden(c) && c.name() !== "help");
    nodes.push({ path: path.join(" "), verbs: subs.map((c) => c.name()), flags, valued, args, flagKinds, description: cmd.description() });
    for (const sub of subs) walk(sub, [...path, sub.name()]);
  };
  walk(program, []);
  return nodes;
}
